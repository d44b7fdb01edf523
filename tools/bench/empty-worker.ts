// The benchmark's floor: a Worker that does nothing but read the request and answer 202 with a
// body shaped like the edge's (`{ jobs: [{ id, queue }] }`). Run under the same `wrangler dev`
// as the edge, the gap between the two is what the edge's own work (auth, validation, the Redis
// round trip) costs. Reading the body matters: the edge must, and an unread upload is cheaper.
// The class wrangler.toml binds (see probe-durable-objects.ts); unused here.
export { RedisConnection } from "./probe-durable-objects.ts";

export default {
  async fetch(request) {
    await request.arrayBuffer();
    return Response.json({ jobs: [{ id: "empty", queue: "audit" }] }, { status: 202 });
  },
} satisfies ExportedHandler;
