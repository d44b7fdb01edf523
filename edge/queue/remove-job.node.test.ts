// Cancelling a job from the edge runs BullMQ's own removeJob with exactly what Queue.remove(id)
// sends, and leaves the same Redis state; a job a real Worker is running is refused, as BullMQ
// refuses it. This file flushes the script cache, so it runs on a Redis of its own.
import { Queue, Worker, type Job } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { getStateScript, removeJobScript } from "../../shared/jobs/bullmq-scripts.ts";
import type { JobOptions } from "../../shared/jobs/contract.ts";
import { startRedisForFile, type LocalRedis } from "../../tools/dev/local-services.ts";
import { bareContract, deleteKeys, T } from "./conformance-cases.test-helper.ts";
import { createNodeTransport, type NodeTransport } from "./node-transport.test-helper.ts";
import { createProducer } from "./producer.ts";
import { snapshotRedis, toBytes, uniquePrefix } from "./redis-state.test-helper.ts";
import { startUpstashStandIn } from "./upstash-stand-in.test-helper.ts";
import { createUpstashTransport } from "./upstash-transport.ts";

let server: LocalRedis;
let redisUrl: string;
let client: Redis;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  server = await startRedisForFile(inject("testDataDir"), "remove-job");
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

function transport(): NodeTransport {
  const t = createNodeTransport(redisUrl);
  cleanup.push(() => t.close());
  return t;
}

function queue(prefix: string): Queue {
  const q = new Queue(bareContract.queue, { connection: client, prefix });
  cleanup.push(() => q.close());
  return q;
}

/** Queue.remove(id), capturing the EVALSHA it sends. */
async function removeWithBullmq(prefix: string, id: string): Promise<{ code: number; args: unknown[] }> {
  const q = queue(prefix);
  await q.waitUntilReady();
  const sent: unknown[][] = [];
  const original = client.sendCommand.bind(client);
  vi.spyOn(client, "sendCommand").mockImplementation((command, stream) => {
    if (command.name === "evalsha") sent.push([...command.args]);
    return original(command, stream);
  });
  const code = await q.remove(id);
  vi.restoreAllMocks();
  expect(sent).toHaveLength(1);
  return { code, args: sent[0] ?? [] };
}

/** Runs a Worker until `id` settles (as `event`), then closes it. */
async function work(prefix: string, id: string, event: "completed" | "failed") {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const worker = new Worker(bareContract.queue, async () => {
    if (event === "failed") throw new Error("boom");
    return "ok";
  }, { connection, prefix });
  try {
    await new Promise<void>((resolve) => worker.on(event, (job: Job | undefined) => job?.id === id && resolve()));
  } finally {
    await worker.close();
    await connection.quit();
  }
}

const states: Array<{ state: string; opts: JobOptions; then?: "completed" | "failed" }> = [
  { state: "waiting", opts: {} },
  { state: "delayed", opts: { delay: 60_000 } },
  { state: "prioritized", opts: { priority: 3 } },
  { state: "completed", opts: { removeOnComplete: false }, then: "completed" },
  { state: "failed", opts: { attempts: 1, removeOnFail: false }, then: "failed" },
];

describe("removing a job: edge vs bullmq Queue.remove", () => {
  it.each(states)("sends the same KEYS/ARGV and leaves the same Redis state for a $state job", async ({ state, opts, then }) => {
    const bullPrefix = uniquePrefix("rb");
    const edgePrefix = uniquePrefix("re");
    cleanup.push(() => deleteKeys(client, bullPrefix), () => deleteKeys(client, edgePrefix));
    // Deduplicated too, so removal of the deduplication key is compared as well.
    const job = { contract: bareContract, data: { n: 1 }, opts: { ...opts, jobId: "job-1", deduplication: { id: "d1" } } };
    for (const prefix of [bullPrefix, edgePrefix]) {
      await createProducer(transport(), { prefix, now: () => T }).add(job);
      if (then) await work(prefix, "job-1", then);
    }
    // A worker's last stalled check (its clock) is not part of what is compared.
    await client.del(`${bullPrefix}:audit:stalled-check`, `${edgePrefix}:audit:stalled-check`);

    const bull = await removeWithBullmq(bullPrefix, "job-1");
    expect(bull.code).toBe(1);

    const t = transport();
    const result = await createProducer(t, { prefix: edgePrefix }).remove("audit", "job-1");
    expect(result).toEqual({ removed: true, state });
    // One round trip: the state read, then removeJob exactly as Queue.remove sent it (against
    // bullmq's own prefix for the byte comparison).
    expect(t.sent).toHaveLength(1);
    const [read, remove] = t.sent[0] ?? [];
    expect(read?.slice(0, 2)).toEqual(["EVAL", getStateScript.content]);
    const [sha, numKeys, ...rest] = bull.args;
    expect(remove?.slice(0, 3)).toEqual(["EVALSHA", sha, String(numKeys)]);
    expect(sha).toBe(await removeJobScript.sha1());
    const swap = (a: unknown) => String(a).split(edgePrefix).join(bullPrefix);
    expect(remove?.slice(3).map(swap).map(toBytes)).toEqual(rest.map(toBytes));

    expect(await client.exists(`${edgePrefix}:audit:job-1`, `${edgePrefix}:audit:de:d1`)).toBe(0);
    const ignore = { meta: ["version"] };
    expect(await snapshotRedis(client, edgePrefix, ignore)).toEqual(await snapshotRedis(client, bullPrefix, ignore));
  });

  it("refuses a job a real Worker is running (Queue.remove answers 0) and leaves it running to completion", async () => {
    const prefix = uniquePrefix("ra");
    cleanup.push(() => deleteKeys(client, prefix));
    const producer = createProducer(transport(), { prefix });
    await producer.add({ contract: bareContract, data: {}, opts: { jobId: "busy" } });

    let release: () => void = () => {};
    const running = new Promise<void>((resolve) => (release = resolve));
    const started = new Promise<void>((resolve) => {
      const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
      const worker = new Worker(bareContract.queue, async () => {
        resolve();
        await running;
        return "done";
      }, { connection, prefix });
      cleanup.push(async () => {
        release();
        await worker.close();
        await connection.quit();
      });
    });
    await started;

    expect(await producer.remove("audit", "busy")).toEqual({ removed: false, reason: "active" });
    expect(await queue(prefix).remove("busy")).toBe(0);
    expect(await client.exists(`${prefix}:audit:busy`)).toBe(1);
    release();
    const deadline = Date.now() + 15_000;
    while ((await producer.getJob("audit", "busy"))?.state !== "completed") {
      if (Date.now() > deadline) throw new Error("the job did not complete");
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it("reads the state before removing even when Redis has no script cached (SCRIPT FLUSH)", async () => {
    const prefix = uniquePrefix("rf");
    cleanup.push(() => deleteKeys(client, prefix));
    await createProducer(transport(), { prefix }).add({ contract: bareContract, data: {}, opts: { jobId: "j", delay: 60_000 } });
    expect(await client.script("FLUSH")).toBe("OK");
    const t = transport();
    expect(await createProducer(t, { prefix }).remove("audit", "j")).toEqual({ removed: true, state: "delayed" });
    // removeJob came back NOSCRIPT and went again with its body; the state read never needed to.
    expect(t.sent.map((round) => round.map((c) => c[0]))).toEqual([["EVAL", "EVALSHA"], ["EVAL"]]);
    expect(await client.exists(`${prefix}:audit:j`)).toBe(0);
  });

  it("removes over Upstash REST too, also right after a script flush", async () => {
    const rest = await startUpstashStandIn({ redisUrl, token: "t0ken-for-remove" });
    cleanup.push(() => rest.stop());
    const prefix = uniquePrefix("ru");
    cleanup.push(() => deleteKeys(client, prefix));
    const upstash = createUpstashTransport(rest.url, rest.token, { timeoutMs: 2000 });
    cleanup.push(() => upstash.close());
    const producer = createProducer(upstash, { prefix });
    await producer.add({ contract: bareContract, data: {}, opts: { jobId: "u1", priority: 2 } });
    await producer.add({ contract: bareContract, data: {}, opts: { jobId: "u2" } });
    expect(await producer.remove("audit", "u1")).toEqual({ removed: true, state: "prioritized" });
    expect(await client.script("FLUSH")).toBe("OK");
    expect(await producer.remove("audit", "u2")).toEqual({ removed: true, state: "waiting" });
    expect(await producer.remove("audit", "u2")).toEqual({ removed: false, reason: "not_found" });
    expect(await client.exists(`${prefix}:audit:u1`, `${prefix}:audit:u2`)).toBe(0);
  });

  it("reports an unknown job as not found and writes nothing", async () => {
    const prefix = uniquePrefix("rn");
    cleanup.push(() => deleteKeys(client, prefix));
    const producer = createProducer(transport(), { prefix });
    await producer.add({ contract: bareContract, data: {}, opts: { jobId: "other" } });
    const before = await snapshotRedis(client, prefix);
    expect(await producer.remove("audit", "missing")).toEqual({ removed: false, reason: "not_found" });
    expect(await producer.remove("audit", "meta")).toEqual({ removed: false, reason: "not_found" });
    expect(await snapshotRedis(client, prefix)).toEqual(before);
  });
});
