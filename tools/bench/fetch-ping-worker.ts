// A probe for the enqueue benchmark: the floor of REDIS_TRANSPORT=upstash. Each request sends one
// pipelined PING through the edge's own REST transport (createUpstashTransport: one fetch() to
// `/pipeline`, the connection kept by workerd) to ping-server.ts, which answers at once with no
// Redis behind it. The gap to the empty Worker is one subrequest; on Upstash the Redis work happens
// on Upstash's machines, so this is the least any REST enqueue can cost the Worker here.
import { createUpstashTransport } from "../../edge/queue/upstash-transport.ts";

// The class wrangler.toml binds (see probe-durable-objects.ts); unused here.
export { RedisConnection } from "./probe-durable-objects.ts";

export default {
  async fetch(request, env) {
    await request.arrayBuffer();
    const transport = createUpstashTransport(env.PING_URL, env.PING_TOKEN);
    const [reply] = await transport.pipeline([["PING"]]);
    if (reply !== "PONG") return new Response(`expected PONG, got ${String(reply)}`, { status: 500 });
    return Response.json({ jobs: [{ id: "fetch-ping", queue: "audit" }] }, { status: 202 });
  },
} satisfies ExportedHandler<{ PING_URL: string; PING_TOKEN: string }>;
