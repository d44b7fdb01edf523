/**
 * The edge producer must be indistinguishable from bullmq's own `Queue.add`: same script, same
 * KEYS/ARGV bytes, same Redis state, and a real BullMQ Worker consumes what it writes. This test is
 * what makes bumping the pinned bullmq version safe.
 *
 * The edge side runs through the PRODUCTION socket transport (socket-transport.ts; in Node its
 * `cloudflare:sockets` import resolves to node-sockets.test-helper.ts). This file flushes and
 * counts scripts, so it runs on a Redis of its own.
 */
import { Worker } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { auditContract, type AuditJob } from "../../shared/jobs/audit.ts";
import { EDGE_SCRIPTS } from "../../shared/jobs/bullmq-scripts.ts";
import { startRedisForFile, type LocalRedis } from "../../tools/dev/local-services.ts";
import { addWithBullmq, auditData, bareContract, cases, deleteKeys as deleteKeysIn, T } from "./conformance-cases.test-helper.ts";
import { buildAddJob, InvalidJobOptionsError } from "./job-args.ts";
import { createProducer } from "./producer.ts";
import { snapshotRedis, toBytes, uniquePrefix } from "./redis-state.test-helper.ts";
import type { RedisCommand } from "./resp.ts";
import { createSocketTransport } from "./socket-transport.ts";
import type { RedisTransport } from "./transport.ts";

let server: LocalRedis;
let redisUrl: string;
let client: Redis;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  server = await startRedisForFile(inject("testDataDir"), "conformance");
  redisUrl = server.url;
  client = new Redis(redisUrl, { maxRetriesPerRequest: null });
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await client?.quit();
  await server?.stop();
});

/** The production socket transport, recording each pipeline it sends (one per round trip). */
function edgeTransport(): RedisTransport & { sent: RedisCommand[][] } {
  const inner = createSocketTransport(redisUrl);
  const sent: RedisCommand[][] = [];
  cleanup.push(() => inner.close());
  return {
    sent,
    pipeline(commands) {
      sent.push([...commands]);
      return inner.pipeline(commands);
    },
    close: () => inner.close(),
  };
}

const job = (id: string): AuditJob => ({ ...auditData, id });

describe("edge producer vs bullmq Queue.add", () => {
  it.each(cases)("sends byte-identical KEYS/ARGV and leaves identical Redis state: $title", async (c) => {
    const bullPrefix = uniquePrefix("b");
    const edgePrefix = uniquePrefix("e");
    cleanup.push(() => deleteKeys(bullPrefix), () => deleteKeys(edgePrefix));

    const bull = await addWithBullmq(client, bullPrefix, c, (close) => cleanup.push(close));
    const call = buildAddJob({
      prefix: bullPrefix, queue: c.contract.queue, name: c.contract.name, data: c.data,
      defaults: c.contract.defaults, opts: c.opts, timestamp: T,
    });
    const [sha, numKeys, ...rest] = bull.args;
    expect(sha).toBe(await call.script.sha1());
    expect(String(numKeys)).toBe(String(call.keys.length));
    expect(rest.map(toBytes)).toEqual([...call.keys, ...call.args].map(toBytes));

    const transport = edgeTransport();
    const producer = createProducer(transport, { prefix: edgePrefix, now: () => T });
    const added = await producer.add({ contract: c.contract, data: c.data, opts: c.opts });
    expect(added).toEqual({ id: bull.id, queue: c.contract.queue });

    // Queue instances write `meta.version` (and nothing else the workers need); ignore it.
    const ignore = { meta: ["version"] };
    const edgeState = await snapshotRedis(client, edgePrefix, ignore);
    expect(Object.keys(edgeState).length).toBeGreaterThan(2);
    expect(edgeState).toEqual(await snapshotRedis(client, bullPrefix, ignore));
  });
});

describe("edge producer with real Redis", () => {
  it("returns the existing id for a duplicate jobId and creates no second job", async () => {
    const prefix = uniquePrefix("d");
    cleanup.push(() => deleteKeys(prefix));
    const producer = createProducer(edgeTransport(), { prefix });
    const first = await producer.add({ contract: auditContract, data: auditData, opts: { jobId: "evt-dup" } });
    const again = await producer.add({ contract: auditContract, data: { ...auditData, name: "changed" }, opts: { jobId: "evt-dup" } });
    expect(again).toEqual(first);
    expect(first.id).toBe("evt-dup");
    expect(await client.lrange(`${prefix}:audit:wait`, 0, -1)).toEqual(["evt-dup"]);
    expect(JSON.parse((await client.hget(`${prefix}:audit:evt-dup`, "data")) ?? "")).toMatchObject({ name: "user.signed_up" });
  });

  it("sends a batch of 100 jobs in one round trip once the fleet has loaded the scripts", async () => {
    const prefix = uniquePrefix("n");
    cleanup.push(() => deleteKeys(prefix));
    // What the worker fleet does at start-up; the SHA Redis reports must be the one the edge uses.
    for (const script of EDGE_SCRIPTS) expect(await client.script("LOAD", script.content)).toBe(await script.sha1());
    const transport = edgeTransport();
    const producer = createProducer(transport, { prefix });
    const jobs = Array.from({ length: 100 }, (_, i) => ({ contract: bareContract, data: { i } }));
    const added = await producer.add(jobs);
    expect(transport.sent).toHaveLength(1);
    expect(added.map((j) => j.id)).toEqual(jobs.map((_, i) => String(i + 1)));
    expect(await client.llen(`${prefix}:audit:wait`)).toBe(100);
  });

  it("rejects options bullmq would reject, before sending anything", async () => {
    const transport = edgeTransport();
    const producer = createProducer(transport, { prefix: uniquePrefix("x") });
    await expect(producer.add({ contract: bareContract, data: {}, opts: { jobId: "123" } })).rejects.toThrow(InvalidJobOptionsError);
    await expect(producer.add({ contract: bareContract, data: {}, opts: { priority: 1.5 } })).rejects.toThrow(/float/);
    expect(transport.sent).toHaveLength(0);
  });

  it("falls back to EVAL once when Redis has no cached script, and the job still lands", async () => {
    const prefix = uniquePrefix("f");
    cleanup.push(() => deleteKeys(prefix));
    expect(await client.script("FLUSH")).toBe("OK");
    const transport = edgeTransport();
    const producer = createProducer(transport, { prefix });
    const added = await producer.add([
      { contract: auditContract, data: job("evt-a"), opts: { jobId: "evt-a" } },
      { contract: auditContract, data: job("evt-b"), opts: { jobId: "evt-b" } },
    ]);
    expect(added.map((j) => j.id)).toEqual(["evt-a", "evt-b"]);
    // The EVALSHA batch (each add followed by its failed-set check), then the NOSCRIPT items again:
    // the script's body once, EVALSHA behind it.
    expect(transport.sent.map((cmds) => cmds.map((c) => c[0]))).toEqual([["EVALSHA", "ZSCORE", "EVALSHA", "ZSCORE"], ["EVAL", "EVALSHA"]]);
    expect(await client.lrange(`${prefix}:audit:wait`, 0, -1)).toEqual(["evt-b", "evt-a"]);
    // Now cached: the next add is a single EVALSHA round trip.
    await producer.add({ contract: auditContract, data: job("evt-c"), opts: { jobId: "evt-c" } });
    expect(transport.sent.at(-1)?.map((c) => c[0])).toEqual(["EVALSHA", "ZSCORE"]);
    expect(transport.sent).toHaveLength(3);
  });

  it("answers ping", async () => {
    await expect(createProducer(edgeTransport()).ping()).resolves.toBeUndefined();
  });

  it("produces jobs a real BullMQ Worker processes, and reports their status", async () => {
    const prefix = uniquePrefix("w");
    cleanup.push(() => deleteKeys(prefix));
    const producer = createProducer(edgeTransport(), { prefix });
    const added = await producer.add([
      { contract: auditContract, data: auditData, opts: { jobId: "evt-ok" } },
      { contract: auditContract, data: { ...auditData, id: "evt-bad" }, opts: { jobId: "evt-bad", attempts: 1 } },
      { contract: auditContract, data: { ...auditData, id: "evt-prio" }, opts: { jobId: "evt-prio", priority: 3 } },
    ]);
    expect(await producer.getJob("audit", "evt-ok")).toMatchObject({ state: "waiting", attemptsMade: 0, name: "record-event" });
    expect(await producer.getJob("audit", "evt-prio")).toMatchObject({ state: "prioritized" });

    const workerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    cleanup.push(() => workerConnection.quit());
    const seen: unknown[] = [];
    const settled = new Set<string>();
    const worker = new Worker(
      "audit",
      async (job) => {
        seen.push(job.data);
        if (job.id === "evt-bad") throw new Error("boom");
        return "ok";
      },
      { connection: workerConnection, prefix },
    );
    cleanup.push(() => worker.close());
    await new Promise<void>((done) => {
      const track = (id: string | undefined) => id && settled.add(id) && settled.size === added.length && done();
      worker.on("completed", (job) => track(job.id));
      worker.on("failed", (job) => track(job?.id));
    });

    expect(seen).toContainEqual(auditData);
    expect(seen).toHaveLength(3);
    const ok = await producer.getJob("audit", "evt-ok");
    expect(ok).toMatchObject({ id: "evt-ok", queue: "audit", state: "completed", attemptsMade: 1 });
    expect(Date.parse(ok?.finishedAt ?? "")).toBeGreaterThanOrEqual(Date.parse(ok?.createdAt ?? ""));
    expect(ok?.processedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(await producer.getJob("audit", "evt-bad")).toMatchObject({ state: "failed", failedReason: "boom", attemptsMade: 1 });
    expect(await producer.getJob("audit", "missing")).toBeNull();
  });
});

function deleteKeys(prefix: string): Promise<void> {
  return deleteKeysIn(client, prefix);
}
