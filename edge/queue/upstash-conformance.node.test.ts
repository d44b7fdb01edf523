/**
 * The Upstash REST transport, in Node against the REST stand-in over a real Redis: jobs it
 * enqueues must leave the same Redis state as bullmq's `Queue.add` and be processed by a real
 * BullMQ Worker — the base64 + Lua-decoder detour must be invisible to BullMQ. Upstream trouble
 * (5xx, 429, no answer, reset) is scripted on the stand-in, so the real fetch sees it on the wire.
 * This file flushes scripts, so it runs on a Redis (and stand-in) of its own.
 */
import { randomBytes } from "node:crypto";
import { Worker } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { auditContract } from "../../shared/jobs/audit.ts";
import { EDGE_SCRIPTS } from "../../shared/jobs/bullmq-scripts.ts";
import { startRedisForFile, type LocalRedis } from "../../tools/dev/local-services.ts";
import { addWithBullmq, auditData, bareContract, cases, deleteKeys, T } from "./conformance-cases.test-helper.ts";
import { buildAddJob } from "./job-args.ts";
import { createProducer } from "./producer.ts";
import { snapshotRedis, uniquePrefix } from "./redis-state.test-helper.ts";
import { BINARY_ARGV, UnencodableArgumentError, upstashScript } from "./upstash-args.ts";
import { startUpstashStandIn, type UpstashStandIn } from "./upstash-stand-in.test-helper.ts";
import { createUpstashTransport } from "./upstash-transport.ts";
import { TransportError, type RedisTransport } from "./transport.ts";

let server: LocalRedis;
let redisUrl: string;
let client: Redis;
let rest: UpstashStandIn;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  server = await startRedisForFile(inject("testDataDir"), "upstash-conformance");
  redisUrl = server.url;
  client = new Redis(redisUrl, { maxRetriesPerRequest: null });
  rest = await startUpstashStandIn({ redisUrl, token: randomBytes(16).toString("hex") });
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await rest?.stop();
  await client?.quit();
  await server?.stop();
});

function upstash(): RedisTransport {
  const transport = createUpstashTransport(rest.url, rest.token, { timeoutMs: 2000 });
  cleanup.push(() => transport.close());
  return transport;
}

function prefixed(tag: string): string {
  const prefix = uniquePrefix(tag);
  cleanup.push(() => deleteKeys(client, prefix));
  return prefix;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => undefined, (err: unknown) => err);
}

describe("Upstash REST producer vs bullmq Queue.add", () => {
  it.each(cases)("leaves identical Redis state: $title", async (c) => {
    const bullPrefix = prefixed("b");
    const edgePrefix = prefixed("u");
    const bull = await addWithBullmq(client, bullPrefix, c, (close) => cleanup.push(close));

    const producer = createProducer(upstash(), { prefix: edgePrefix, now: () => T });
    expect(await producer.add({ contract: c.contract, data: c.data, opts: c.opts })).toEqual({ id: bull.id, queue: c.contract.queue });

    const ignore = { meta: ["version"] };
    const edgeState = await snapshotRedis(client, edgePrefix, ignore);
    expect(Object.keys(edgeState).length).toBeGreaterThan(2);
    expect(edgeState).toEqual(await snapshotRedis(client, bullPrefix, ignore));
  });

  it("encodes exactly the ARGV that hold binary, for every script the edge runs", () => {
    const calls = [{}, { delay: 5 }, { priority: 3 }].map((opts) =>
      buildAddJob({ prefix: "p", queue: "q", name: "n", data: {}, opts, timestamp: T }));
    expect(new Set(calls.map((c) => c.script.name))).toEqual(new Set(Object.keys(BINARY_ARGV)));
    for (const call of calls) {
      const binary = call.args.flatMap((arg, i) => (arg instanceof Uint8Array ? [i + 1] : []));
      expect(binary).toEqual(BINARY_ARGV[call.script.name]);
    }
    // Scripts with text-only ARGV (getState) run unchanged, with the SHA the fleet preloads.
    for (const script of EDGE_SCRIPTS.filter((s) => !BINARY_ARGV[s.name])) expect(upstashScript(script)).toBe(script);
  });
});

describe("Upstash REST transport", () => {
  it("produces jobs a real BullMQ Worker processes, and reads their status", async () => {
    const prefix = prefixed("w");
    const producer = createProducer(upstash(), { prefix });
    const unicode = { ...auditData, id: "evt-ü", payload: { s: "zoë 🚀 \u0000" } };
    await producer.add([
      { contract: auditContract, data: unicode, opts: { jobId: "evt-u" } },
      { contract: auditContract, data: auditData, opts: { jobId: "evt-prio", priority: 4, attempts: 1, backoff: 300 } },
    ]);
    expect(await producer.getJob("audit", "evt-prio")).toMatchObject({ state: "prioritized", name: "record-event" });

    const seen = new Map<string, unknown>();
    const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    cleanup.push(() => connection.quit());
    const worker = new Worker("audit", async (job) => void seen.set(job.id ?? "", job.data), { connection, prefix });
    cleanup.push(() => worker.close());
    await new Promise<void>((done) => worker.on("completed", () => seen.size === 2 && done()));

    expect(seen.get("evt-u")).toEqual(unicode);
    expect(await producer.getJob("audit", "evt-u")).toMatchObject({ state: "completed", attemptsMade: 1 });
    await expect(producer.ping()).resolves.toBeUndefined();
  });

  it("falls back to EVAL after SCRIPT FLUSH, then sends a 100-job batch as one HTTP request", async () => {
    const prefix = prefixed("f");
    await client.script("FLUSH");
    const producer = createProducer(upstash(), { prefix });
    const before = rest.requests;
    const added = await producer.add([
      { contract: auditContract, data: auditData, opts: { jobId: "evt-a" } },
      { contract: auditContract, data: auditData, opts: { jobId: "evt-b" } },
    ]);
    expect(added.map((j) => j.id)).toEqual(["evt-a", "evt-b"]);
    expect(rest.requests - before).toBe(2); // EVALSHA batch → NOSCRIPT → one EVAL batch

    const batch = Array.from({ length: 100 }, (_, i) => ({ contract: bareContract, data: { i } }));
    const start = rest.requests;
    expect(await producer.add(batch)).toHaveLength(100);
    expect(rest.requests - start).toBe(1);
    expect(await client.llen(`${prefix}:audit:wait`)).toBe(102);
  });

  it("refuses a binary argument JSON cannot carry, before sending anything", async () => {
    const before = rest.requests;
    const err = await rejection(upstash().pipeline([["SET", "k", new Uint8Array([0xff, 0xfe])]]));
    expect(err).toBeInstanceOf(UnencodableArgumentError);
    expect(rest.requests).toBe(before);
  });

  it("fails with a TransportError, maybe enqueued, when the connection is reset", async () => {
    rest.interpose({ reset: true });
    const timeoutMs = 20_000;
    const started = Date.now();
    const err = await rejection(createProducer(createUpstashTransport(rest.url, rest.token, { timeoutMs })).ping());
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).message).toMatch(/failed: fetch failed/);
    expect((err as TransportError).maybeEnqueued).toBe(true); // fetch cannot say nothing was sent
    // A reset is reported at once; only a wait for the timer could take this long.
    expect(Date.now() - started).toBeLessThan(timeoutMs / 2);
  });

  it("reports a wrong token as misconfiguration, not enqueued, without echoing it", async () => {
    const token = "wrong-token-do-not-log";
    const err = await rejection(createProducer(createUpstashTransport(rest.url, token)).ping());
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).message).toMatch(/rejected the token \(HTTP 401\).*UPSTASH_REDIS_REST_TOKEN/);
    expect((err as TransportError).maybeEnqueued).toBe(false);
    expect(String((err as Error).message) + String((err as Error).stack)).not.toContain(token);
  });

  it("treats a 5xx as maybe enqueued: the commands may have run before the answer was lost", async () => {
    const prefix = prefixed("g");
    rest.interpose({ status: 502, error: "ERR upstream", afterRunning: true });
    const producer = createProducer(upstash(), { prefix });
    const err = await rejection(producer.add({ contract: auditContract, data: auditData, opts: { jobId: "evt-502" } }));
    expect(err).toMatchObject({ name: "TransportError", maybeEnqueued: true, message: expect.stringMatching(/HTTP 502: ERR upstream/) });
    // It did run: a retry with the same id must (and does) collapse into this job.
    expect(await client.lrange(`${prefix}:audit:wait`, 0, -1)).toEqual(["evt-502"]);
    expect(await producer.add({ contract: auditContract, data: auditData, opts: { jobId: "evt-502" } })).toEqual({ id: "evt-502", queue: "audit" });
    expect(await client.llen(`${prefix}:audit:wait`)).toBe(1);
  });

  it("treats a 429 refusal as not enqueued, and nothing was written", async () => {
    const prefix = prefixed("l");
    rest.interpose({ status: 429, error: "ERR max requests limit exceeded" });
    const err = await rejection(createProducer(upstash(), { prefix }).add({ contract: auditContract, data: auditData, opts: { jobId: "evt-429" } }));
    expect(err).toMatchObject({ name: "TransportError", maybeEnqueued: false, message: expect.stringMatching(/HTTP 429: ERR max requests limit exceeded/) });
    expect(await client.keys(`${prefix}:*`)).toEqual([]);
  });

  it("gives up after the timeout when no answer comes, as maybe enqueued", async () => {
    rest.interpose({ hang: true });
    const started = Date.now();
    const err = await rejection(createUpstashTransport(rest.url, rest.token, { timeoutMs: 300 }).pipeline([["PING"]]));
    // The message names the timer that fired; without one this test would hang to its own timeout.
    expect(err).toMatchObject({ name: "TransportError", maybeEnqueued: true, message: expect.stringMatching(/no answer within 300 ms/) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });
});
