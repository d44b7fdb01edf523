// A probe for the enqueue benchmark: the floor of REDIS_TRANSPORT=durable-object. Each request makes
// one RPC to the edge's own RedisConnection object (redis-connection-object.ts, the real class, bound
// by wrangler.toml), which PINGs on the connection it holds to Redis and answers with the reply. The
// gap to the empty Worker is the hop to the object plus one round trip on its held connection; the
// gap from here to edge-do is the app itself (routing, auth, validation, the EVALSHA instead of PING).
import type { RedisConnection } from "../../edge/queue/redis-connection-object.ts";
import { encodeCommands } from "../../edge/queue/resp.ts";

export { RedisConnection } from "../../edge/queue/redis-connection-object.ts";

type Stub = Pick<RedisConnection, "send">;
/** The RPC the edge's transport makes (durable-object-transport.ts): the pipeline RESP-encoded, its replies as bytes. */
const PING = encodeCommands([["PING"]]);
const PONG = "+PONG\r\n";

export default {
  async fetch(request, env) {
    await request.arrayBuffer();
    // The object the edge's transport uses with REDIS_DO_SHARDS=1.
    const stub = env.REDIS_CONNECTION.get(env.REDIS_CONNECTION.idFromName("redis-0")) as unknown as Stub;
    const result = await stub.send(PING, 1);
    const reply = result instanceof Uint8Array ? new TextDecoder().decode(result) : JSON.stringify(result);
    if (reply !== PONG) return new Response(`expected PONG, got ${reply}`, { status: 500 });
    return Response.json({ jobs: [{ id: "do-ping", queue: "audit" }] }, { status: 202 });
  },
} satisfies ExportedHandler<{ REDIS_URL: string; REDIS_CONNECTION: DurableObjectNamespace }>;
