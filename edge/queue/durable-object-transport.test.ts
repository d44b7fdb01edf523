/**
 * REDIS_TRANSPORT=durable-object inside workerd: the Worker entry sends its pipelines to the
 * RedisConnection object (bound by wrangler.toml), which holds one connection to the test Redis
 * (its own REDIS_URL binding) across requests. What must hold: the jobs land as over a socket,
 * concurrent requests share the object's one connection, and the status read works through it.
 * Failure paths (Redis killed mid-stream, hung, refused) are tested on the held connection itself
 * in held-connection.node.test.ts, where a test can break the network.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, inject, it } from "vitest";
import { sha256Hex } from "../auth.ts";
import { ConfigError, parseEdgeEnv } from "../env.ts";
import worker from "../worker.ts";
import { CLIENT_NAME } from "./redis-connection-object.ts";
import { encodeCommands } from "./resp.ts";
import { createSocketTransport } from "./socket-transport.ts";

const API_KEY = "do-transport-test-key-0123456789";
const { REDIS_CONNECTION } = env as unknown as { REDIS_CONNECTION: DurableObjectNamespace };

async function call(bindings: Record<string, unknown>, path: string, init: RequestInit = {}): Promise<Response> {
  const pending: Promise<unknown>[] = [];
  const ctx = { waitUntil: (p: Promise<unknown>) => void pending.push(p), passThroughOnException: () => {}, props: {} } as unknown as ExecutionContext;
  const response = await worker.fetch(new Request(`https://edge.example${path}`, init) as Parameters<typeof worker.fetch>[0], bindings, ctx);
  await Promise.allSettled(pending);
  return response;
}

const prefixes: string[] = [];
afterEach(async () => {
  const redis = createSocketTransport(inject("redisUrl"));
  for (const prefix of prefixes.splice(0)) {
    const [keys] = await redis.pipeline([["KEYS", `${prefix}:*`]]);
    if (Array.isArray(keys) && keys.length > 0) await redis.pipeline([["DEL", ...keys.map(String)]]);
  }
  await redis.close();
});

async function bindingsFor(shards = 1) {
  const prefix = `tdo${crypto.randomUUID().slice(0, 8)}`;
  prefixes.push(prefix);
  const bindings = {
    API_KEY_HASHES: await sha256Hex(API_KEY), QUEUE_PREFIX: prefix, REDIS_URL: inject("redisUrl"),
    REDIS_TRANSPORT: "durable-object", REDIS_DO_SHARDS: String(shards), REDIS_CONNECTION, RATE_LIMITS: "off",
  };
  return { prefix, bindings };
}

const postEvent = (id: string): RequestInit => ({
  method: "POST",
  headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
  body: JSON.stringify({ id, name: "user.signed_up", type: "domain", payload: {} }),
});

async function redis(command: string[]): Promise<unknown> {
  const transport = createSocketTransport(inject("redisUrl"));
  try {
    return (await transport.pipeline([command]))[0];
  } finally {
    await transport.close();
  }
}

/** The connections the RedisConnection objects hold right now, by CLIENT LIST's name field. */
async function heldConnections(): Promise<number> {
  const list = String(await redis(["CLIENT", "LIST"]));
  return list.split("\n").filter((line) => line.includes(` name=${CLIENT_NAME} `)).length;
}

describe("REDIS_TRANSPORT=durable-object", () => {
  it("enqueues through the RedisConnection object, and the status read finds the job waiting", async () => {
    const { prefix, bindings } = await bindingsFor();
    const res = await call(bindings, "/v1/events", postEvent("evt-do-1"));
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ jobs: [{ id: "evt-do-1", queue: "audit" }] });
    expect(await redis(["LRANGE", `${prefix}:audit:wait`, "0", "-1"])).toEqual(["evt-do-1"]);

    const status = await call(bindings, "/v1/jobs/audit/evt-do-1", { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ id: "evt-do-1", state: "waiting" });
  });

  it("serves concurrent requests over the one connection the object holds", async () => {
    const { prefix, bindings } = await bindingsFor();
    await call(bindings, "/v1/events", postEvent("evt-do-warm"));
    const ids = Array.from({ length: 20 }, (_, i) => `evt-do-c${i}`);
    const responses = await Promise.all(ids.map((id) => call(bindings, "/v1/events", postEvent(id))));
    expect(responses.map((r) => r.status)).toEqual(ids.map(() => 202));
    const waiting = (await redis(["LRANGE", `${prefix}:audit:wait`, "0", "-1"])) as string[];
    expect([...waiting].sort()).toEqual(["evt-do-warm", ...ids].sort());
    expect(await heldConnections()).toBe(1);
  });

  it("spreads requests over REDIS_DO_SHARDS objects, each holding one connection", async () => {
    const { prefix, bindings } = await bindingsFor(3);
    const ids = Array.from({ length: 12 }, (_, i) => `evt-do-s${i}`);
    const responses = await Promise.all(ids.map((id) => call(bindings, "/v1/events", postEvent(id))));
    expect(responses.map((r) => r.status)).toEqual(ids.map(() => 202));
    expect(((await redis(["LRANGE", `${prefix}:audit:wait`, "0", "-1"])) as string[]).length).toBe(12);
    // Shard 0 may be the object the other tests in this file already use; none holds more than one.
    const held = await heldConnections();
    expect(held).toBeGreaterThanOrEqual(1);
    expect(held).toBeLessThanOrEqual(3);
  });

  it("answers the RPC with the replies' bytes, and still answers the previous RPC (commands in, values out)", async () => {
    const key = `tdo${crypto.randomUUID().slice(0, 8)}:k`;
    prefixes.push(key.split(":")[0] as string);
    const stub = REDIS_CONNECTION.get(REDIS_CONNECTION.idFromName("redis-0")) as unknown as {
      send(request: Uint8Array, count: number): Promise<unknown>;
      pipeline(commands: string[][]): Promise<unknown>;
    };
    const sent = await stub.send(encodeCommands([["SET", key, "v"], ["GET", key], ["HGET", key, "f"]]), 3);
    expect(sent).toBeInstanceOf(Uint8Array);
    expect(new TextDecoder().decode(sent as Uint8Array)).toBe("+OK\r\n$1\r\nv\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    expect(await stub.pipeline([["GET", key], ["HGET", key, "f"]])).toEqual({
      ok: true, replies: ["v", { error: "WRONGTYPE Operation against a key holding the wrong kind of value" }],
    });
  });

  it("refuses REDIS_TRANSPORT=durable-object without REDIS_URL (Upstash REST has no connection to hold)", async () => {
    const err = (() => {
      try {
        parseEdgeEnv({ API_KEY_HASHES: "0".repeat(64), UPSTASH_REDIS_REST_URL: "https://x.upstash.io", UPSTASH_REDIS_REST_TOKEN: "t", REDIS_TRANSPORT: "durable-object" });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/REDIS_TRANSPORT: durable-object needs REDIS_URL/);
  });

  it("answers 500 internal_error when REDIS_TRANSPORT=durable-object has no REDIS_CONNECTION binding", async () => {
    const { bindings } = await bindingsFor();
    const { REDIS_CONNECTION: _, ...unbound } = bindings;
    const original = console.error;
    console.error = () => {};
    try {
      const res = await call(unbound, "/v1/events", postEvent("evt-do-x"));
      expect(res.status).toBe(500);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("internal_error");
    } finally {
      console.error = original;
    }
  });
});
