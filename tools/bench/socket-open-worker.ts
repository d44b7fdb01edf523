// A probe for the enqueue benchmark: the empty Worker plus the one thing every edge request must
// do first, open its own TCP connection to Redis (a socket cannot outlive the request that opened
// it). Nothing is sent; the close runs after the response, as the edge's does. The gap to the
// empty Worker is what `cloudflare:sockets` connect costs in workerd.
import { connect } from "cloudflare:sockets";

// The class wrangler.toml binds (see probe-durable-objects.ts); unused here.
export { RedisConnection } from "./probe-durable-objects.ts";

export default {
  async fetch(request, env, ctx) {
    await request.arrayBuffer();
    const url = new URL(env.REDIS_URL);
    const socket = connect({ hostname: url.hostname, port: Number(url.port || 6379) });
    await socket.opened;
    ctx.waitUntil(socket.close());
    return Response.json({ jobs: [{ id: "socket-open", queue: "audit" }] }, { status: 202 });
  },
} satisfies ExportedHandler<{ REDIS_URL: string }>;
