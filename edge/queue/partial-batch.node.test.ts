// A batch is one pipeline, not a transaction: when Redis refuses some adds (here: OOM under a low
// maxmemory, on a Redis of this test's own) the 503 must say, per job, what happened, and retrying
// with the Idempotency-Key it returns must leave each event as exactly one job.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EDGE_SCRIPTS } from "../../shared/jobs/bullmq-scripts.ts";
import { ROOT, startRedis, type LocalRedis } from "../../tools/dev/local-services.ts";
import { createApp } from "../app.ts";
import { sha256Hex } from "../auth.ts";
import { createNodeTransport } from "./node-transport.test-helper.ts";
import { createProducer } from "./producer.ts";
import { uniquePrefix } from "./redis-state.test-helper.ts";
import { TransportError, type RedisTransport } from "./transport.ts";

const API_KEY = "partial-batch-key";
const dataDir = join(ROOT, ".data/test", `partial-${process.pid}-${Date.now()}`);
let redis: LocalRedis;
let client: Redis;

beforeAll(async () => {
  redis = await startRedis({ dataDir });
  client = new Redis(redis.url, { maxRetriesPerRequest: null });
  // What the fleet does at start-up, so the batch is the usual single EVALSHA round trip.
  for (const script of EDGE_SCRIPTS) await client.script("LOAD", script.content);
});
afterEach(async () => {
  await client.config("SET", "maxmemory", "0");
});
afterAll(async () => {
  await client?.quit();
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

interface Outcome {
  id: string;
  queue: string;
  outcome: "accepted" | "not_accepted" | "unknown";
}
interface Refusal {
  error: { code: string; message: string; requestId: string; jobs: Outcome[]; retry: { idempotencyKey: string } };
}

async function appFor(prefix: string, wrap: (t: RedisTransport) => RedisTransport = (t) => t) {
  const app = createApp({
    apiKeyHashes: [await sha256Hex(API_KEY)],
    openQueue: () => {
      const transport = wrap(createNodeTransport(redis.url));
      return { producer: createProducer(transport, { prefix }), close: () => transport.close() };
    },
  });
  return (path: string, body: unknown, headers: Record<string, string> = {}) =>
    app.request(path, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
}

async function usedMemory(): Promise<number> {
  const match = /^used_memory:(\d+)/m.exec(await client.info("memory"));
  return Number(match?.[1]);
}

async function exists(prefix: string, queue: string, id: string): Promise<boolean> {
  return (await client.exists(`${prefix}:${queue}:${id}`)) === 1;
}

async function cleanup(prefix: string) {
  const keys = await client.keys(`${prefix}:*`);
  if (keys.length > 0) await client.del(...keys);
}

const event = (i: number) => ({ name: "order.paid", type: "domain", payload: { i, note: "x".repeat(4000) } });

describe("a batch Redis accepts only in part", () => {
  it("answers 503 with each job's true outcome, and a retry with the returned key makes each event one job", async () => {
    const prefix = uniquePrefix("pb");
    const post = await appFor(prefix);
    try {
      const events = Array.from({ length: 100 }, (_, i) => event(i));
      // Room for roughly a quarter of the batch (each job stores its 4 KB payload and more).
      await client.config("SET", "maxmemory", String((await usedMemory()) + 100 * 1024));
      const res = await post("/v1/events", { events });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
      const body = (await res.json()) as Refusal;
      expect(body.error.code).toBe("queue_unavailable");
      const key = body.error.retry.idempotencyKey;
      expect(key).toMatch(/^[\w-]+$/);
      expect(body.error.jobs.map((j) => j.id)).toEqual(events.map((_, i) => `${key}.${i}`));

      const accepted = body.error.jobs.filter((j) => j.outcome === "accepted");
      const refused = body.error.jobs.filter((j) => j.outcome === "not_accepted");
      expect(accepted.length).toBeGreaterThan(0);
      expect(refused.length).toBeGreaterThan(0);
      expect(accepted.length + refused.length).toBe(100);
      expect(body.error.message).toContain(`accepted ${accepted.length} of 100`);
      // The body is the truth: exactly the accepted jobs exist in Redis.
      for (const job of body.error.jobs) {
        expect({ id: job.id, stored: await exists(prefix, "audit", job.id) }).toEqual({ id: job.id, stored: job.outcome === "accepted" });
      }
      expect(await client.llen(`${prefix}:audit:wait`)).toBe(accepted.length);

      await client.config("SET", "maxmemory", "0");
      const retry = await post("/v1/events", { events }, { "Idempotency-Key": key });
      expect(retry.status).toBe(202);
      const retried = (await retry.json()) as { jobs: Array<{ id: string }> };
      expect(retried.jobs.map((j) => j.id)).toEqual(body.error.jobs.map((j) => j.id));
      const waiting = await client.lrange(`${prefix}:audit:wait`, 0, -1);
      expect(waiting).toHaveLength(100);
      expect(new Set(waiting)).toEqual(new Set(body.error.jobs.map((j) => j.id)));
      // Each event's data is in exactly one job.
      const stored = await Promise.all(waiting.map(async (id) => JSON.parse((await client.hget(`${prefix}:audit:${id}`, "data")) ?? "{}") as { payload: { i: number } }));
      expect(stored.map((d) => d.payload.i).sort((a, b) => a - b)).toEqual(events.map((_, i) => i));
    } finally {
      await client.config("SET", "maxmemory", "0");
      await cleanup(prefix);
    }
  });

  it("returns the generated key for an email Redis refused, and the retry with it sends exactly one job", async () => {
    const prefix = uniquePrefix("pe");
    const post = await appFor(prefix);
    try {
      const email = { to: "ada@example.com", subject: "Hi", text: "Hello" };
      await client.config("SET", "maxmemory", "1");
      const res = await post("/v1/emails", email);
      expect(res.status).toBe(503);
      const body = (await res.json()) as Refusal;
      const key = body.error.retry.idempotencyKey;
      expect(body.error.jobs).toEqual([{ id: key, queue: "email", outcome: "not_accepted" }]);
      expect(body.error.message).toMatch(/nothing was accepted/);
      expect(await client.keys(`${prefix}:*`)).toEqual([]);

      await client.config("SET", "maxmemory", "0");
      const retry = await post("/v1/emails", email, { "Idempotency-Key": key });
      expect(retry.status).toBe(202);
      expect(await retry.json()).toEqual({ id: key, queue: "email" });
      expect(await client.lrange(`${prefix}:email:wait`, 0, -1)).toEqual([key]);
    } finally {
      await client.config("SET", "maxmemory", "0");
      await cleanup(prefix);
    }
  });

  it("reports every job as unknown when the connection drops after sending, and the retry adds nothing twice", async () => {
    const prefix = uniquePrefix("pu");
    let drop = true;
    // Redis executes the pipeline; its answer is lost on the way back.
    const post = await appFor(prefix, (t) => ({
      ...t,
      pipeline: async (commands) => {
        const replies = await t.pipeline(commands);
        if (drop) throw new TransportError("connection reset after sending", true);
        return replies;
      },
    }));
    try {
      const events = Array.from({ length: 5 }, (_, i) => event(i));
      const res = await post("/v1/events", { events });
      expect(res.status).toBe(503);
      const body = (await res.json()) as Refusal;
      expect(body.error.jobs.map((j) => j.outcome)).toEqual(Array(5).fill("unknown"));
      expect(body.error.message).toMatch(/5 may have been accepted/);
      expect(await client.llen(`${prefix}:audit:wait`)).toBe(5);

      drop = false;
      const retry = await post("/v1/events", { events }, { "Idempotency-Key": body.error.retry.idempotencyKey });
      expect(retry.status).toBe(202);
      expect(await client.llen(`${prefix}:audit:wait`)).toBe(5);
    } finally {
      await cleanup(prefix);
    }
  });
});
