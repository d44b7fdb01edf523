// A probe for the enqueue benchmark: one Redis round trip through the edge's own transport, without
// the app. `pipeline([["PING"]])` opens the socket and sends AUTH + PING in one write (the
// transport prepends AUTH to the first pipeline), then waits for OK + PONG. Its gap to the socket-
// open probe is that round trip; the gap from here to the edge is the app itself (routing, auth,
// validation, the EVALSHA instead of PING).
import { createSocketTransport } from "../../edge/queue/socket-transport.ts";

// The class wrangler.toml binds (see probe-durable-objects.ts); unused here.
export { RedisConnection } from "./probe-durable-objects.ts";

export default {
  async fetch(request, env, ctx) {
    await request.arrayBuffer();
    const transport = createSocketTransport(env.REDIS_URL);
    const [reply] = await transport.pipeline([["PING"]]);
    ctx.waitUntil(transport.close());
    if (reply !== "PONG") return new Response(`expected PONG, got ${String(reply)}`, { status: 500 });
    return Response.json({ jobs: [{ id: "socket-ping", queue: "audit" }] }, { status: 202 });
  },
} satisfies ExportedHandler<{ REDIS_URL: string }>;
