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
import type { JobContract, JobOptions } from "../../shared/jobs/contract.ts";
import { reportContract } from "../../shared/jobs/report.ts";
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

describe("deduplication vs bullmq Queue.add", () => {
  /** Runs the same adds through Queue.add and the edge producer; returns each side's job ids. */
  async function both(adds: ReadonlyArray<{ contract: JobContract; data: unknown; opts: JobOptions; bullOpts?: JobOptions }>) {
    const bullPrefix = uniquePrefix("b");
    const edgePrefix = uniquePrefix("e");
    cleanup.push(() => deleteKeys(bullPrefix), () => deleteKeys(edgePrefix));
    const bullIds: Array<string | undefined> = [];
    for (const add of adds) {
      const c = { title: "", contract: add.contract, data: add.data, opts: add.bullOpts ?? add.opts };
      bullIds.push((await addWithBullmq(client, bullPrefix, c, (close) => cleanup.push(close))).id);
    }
    const producer = createProducer(edgeTransport(), { prefix: edgePrefix, now: () => T });
    const edgeIds: string[] = [];
    for (const add of adds) edgeIds.push((await producer.add({ contract: add.contract, data: add.data, opts: add.opts })).id);
    const ignore = { meta: ["version"] };
    return { bullIds, edgeIds, edgeState: await snapshotRedis(client, edgePrefix, ignore), bullState: await snapshotRedis(client, bullPrefix, ignore) };
  }

  it.each([
    ["simple", { id: "acct-1.2026-11" }],
    ["throttle", { id: "acct-1.2026-11", ttl: 60_000 }],
  ] as const)("a second add with the same id (%s mode) returns the first job and adds nothing, as Queue.add does", async (_mode, deduplication) => {
    const r = await both([
      { contract: bareContract, data: { n: 1 }, opts: { jobId: "first", deduplication } },
      { contract: bareContract, data: { n: 2 }, opts: { jobId: "second", deduplication } },
    ]);
    expect(r.edgeIds).toEqual(["first", "first"]);
    expect(r.bullIds).toEqual(r.edgeIds);
    expect(r.edgeState).toEqual(r.bullState);
    // The deduplication key holds the first job; throttle mode gives it the ttl.
    expect(r.edgeState["<p>:audit:de:acct-1.2026-11"]).toEqual({ type: "string", value: "first", expires: "ttl" in deduplication });
    expect(r.edgeState["<p>:audit:second"]).toBeUndefined();
  });

  it("derives deduplication from the contract: the same as Queue.add given {deduplication: {id}} by hand", async () => {
    const data = { accountId: "acct-9", month: "2026-11" };
    const r = await both([
      { contract: reportContract, data, opts: { jobId: "r1" }, bullOpts: { jobId: "r1", deduplication: { id: "acct-9.2026-11" } } },
      { contract: reportContract, data, opts: { jobId: "r2" }, bullOpts: { jobId: "r2", deduplication: { id: "acct-9.2026-11" } } },
    ]);
    expect(r.edgeIds).toEqual(["r1", "r1"]);
    expect(r.bullIds).toEqual(r.edgeIds);
    expect(r.edgeState).toEqual(r.bullState);
    expect(r.edgeState["<p>:report:de:acct-9.2026-11"]).toMatchObject({ value: "r1", expires: false });
  });

  it("refuses deduplication options the edge does not support, before sending anything", async () => {
    const transport = edgeTransport();
    const producer = createProducer(transport, { prefix: uniquePrefix("x") });
    const opts = (deduplication: unknown) => ({ deduplication }) as JobOptions;
    await expect(producer.add({ contract: bareContract, data: {}, opts: opts({ id: "" }) })).rejects.toThrow(/id must be provided/);
    await expect(producer.add({ contract: bareContract, data: {}, opts: opts({ id: "k", extend: true }) })).rejects.toThrow(/not supported.*extend/);
    await expect(producer.add({ contract: bareContract, data: {}, opts: opts({ id: "k", ttl: 1.5 }) })).rejects.toThrow(/ttl/);
    expect(transport.sent).toHaveLength(0);
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
