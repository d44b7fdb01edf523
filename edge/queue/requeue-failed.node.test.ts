// Re-sending the id of a job that failed re-queues it, so the caller can still get the work done:
// the edge runs BullMQ's own reprocessJob with exactly what `job.retry("failed")` sends.
import { Job, Queue, UnrecoverableError, Worker } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { auditContract } from "../../shared/jobs/audit.ts";
import { reprocessJobScript } from "../../shared/jobs/bullmq-scripts.ts";
import { createApp } from "../app.ts";
import { sha256Hex } from "../auth.ts";
import { auditData, bareContract, deleteKeys, T } from "./conformance-cases.test-helper.ts";
import { createNodeTransport, type NodeTransport } from "./node-transport.test-helper.ts";
import { createProducer } from "./producer.ts";
import { snapshotRedis, toBytes, uniquePrefix } from "./redis-state.test-helper.ts";

const redisUrl = inject("redisUrl");
let client: Redis;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(() => {
  client = new Redis(redisUrl, { maxRetriesPerRequest: null });
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await client.quit();
});

function transport(): NodeTransport {
  const t = createNodeTransport(redisUrl);
  cleanup.push(() => t.close());
  return t;
}

/** Runs a Worker on `prefix` until `ids` all reached `event`, then closes it. */
async function work(prefix: string, ids: string[], event: "completed" | "failed", processor: (job: Job) => Promise<unknown>) {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const done = new Set<string>();
  const worker = new Worker("audit", processor, { connection, prefix });
  try {
    await new Promise<void>((resolve) => {
      worker.on(event, (job: Job | undefined) => {
        if (job?.id && ids.includes(job.id)) done.add(job.id);
        if (done.size === ids.length) resolve();
      });
    });
  } finally {
    await worker.close();
    await connection.quit();
  }
}

const fail = async () => {
  throw new UnrecoverableError("boom");
};

describe("re-sending the id of a failed job", () => {
  it("sends the KEYS/ARGV job.retry('failed') sends, leaves the same Redis state, and a real Worker then completes the job", async () => {
    const bullPrefix = uniquePrefix("rb");
    const edgePrefix = uniquePrefix("re");
    cleanup.push(() => deleteKeys(client, bullPrefix), () => deleteKeys(client, edgePrefix));
    const job = { contract: bareContract, data: { n: 1 }, opts: { jobId: "evt-f", attempts: 2 } };

    // The same failed job under both prefixes.
    for (const prefix of [bullPrefix, edgePrefix]) {
      await createProducer(transport(), { prefix, now: () => T }).add(job);
      await work(prefix, ["evt-f"], "failed", fail);
    }

    // The workers' last stalled check (their clock) is not part of what is compared.
    await client.del(`${bullPrefix}:audit:stalled-check`, `${edgePrefix}:audit:stalled-check`);

    // Reference: what a bullmq client does with the same request — Queue.add (a duplicate, which
    // changes nothing but the id counter and a "duplicated" event), then retry the failed job.
    const queue = new Queue("audit", { connection: client, prefix: bullPrefix });
    cleanup.push(() => queue.close());
    vi.spyOn(Date, "now").mockReturnValue(T);
    await queue.add(job.contract.name, job.data, job.opts);
    vi.restoreAllMocks();
    const failed = await Job.fromId(queue, "evt-f");
    expect(await failed?.getState()).toBe("failed");
    const sent: unknown[][] = [];
    const original = client.sendCommand.bind(client);
    vi.spyOn(client, "sendCommand").mockImplementation((command, stream) => {
      if (command.name === "evalsha") sent.push([...command.args]);
      return original(command, stream);
    });
    await failed?.retry("failed");
    vi.restoreAllMocks();
    expect(sent).toHaveLength(1);

    // The edge: the same add again.
    const edge = transport();
    const added = await createProducer(edge, { prefix: edgePrefix, now: () => T }).add(job);
    expect(added).toEqual({ id: "evt-f", queue: "audit", requeued: true });
    expect(edge.sent).toHaveLength(2);
    const [[evalsha, sha, ...args] = []] = edge.sent[1] ?? [];
    expect(evalsha).toBe("EVALSHA");
    expect(sha).toBe(await reprocessJobScript.sha1());
    const swap = (value: unknown) => (typeof value === "string" ? value.split(`${bullPrefix}:`).join(`${edgePrefix}:`) : value);
    expect(args.map(toBytes)).toEqual(sent[0]?.slice(1).map(swap).map(toBytes));

    // Same state, apart from what a Queue instance writes (meta.version) and the failure's time.
    const ignore = { meta: ["version"], "evt-f": ["stacktrace"] };
    const edgeState = await snapshotRedis(client, edgePrefix, ignore);
    expect(edgeState["<p>:audit:wait"]).toEqual({ type: "list", value: ["evt-f"], expires: false });
    expect(edgeState).toEqual(await snapshotRedis(client, bullPrefix, ignore));

    await work(edgePrefix, ["evt-f"], "completed", async () => "ok");
    expect(await createProducer(transport(), { prefix: edgePrefix }).getJob("audit", "evt-f")).toMatchObject({ state: "completed" });
  });

  it("answers 202 with requeued: true on POST /v1/events, and the event then gets processed", async () => {
    const prefix = uniquePrefix("ra");
    cleanup.push(() => deleteKeys(client, prefix));
    const key = "requeue-api-key";
    const app = createApp({
      apiKeyHashes: [await sha256Hex(key)],
      openQueue: () => {
        const t = createNodeTransport(redisUrl);
        return { producer: createProducer(t, { prefix }), close: () => t.close() };
      },
    });
    const post = (body: unknown) =>
      app.request("/v1/events", {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const events = { events: [{ ...auditData, id: "evt-failed" }, { ...auditData, id: "evt-new" }] };
    delete (events.events[0] as { occurredAt?: string }).occurredAt;

    const first = await post({ events: [events.events[0]] });
    expect(await first.json()).toEqual({ jobs: [{ id: "evt-failed", queue: "audit" }] });
    await work(prefix, ["evt-failed"], "failed", fail);

    const again = await post(events);
    expect(again.status).toBe(202);
    expect(await again.json()).toEqual({
      jobs: [{ id: "evt-failed", queue: "audit", requeued: true }, { id: "evt-new", queue: "audit" }],
    });
    expect((await client.lrange(`${prefix}:audit:wait`, 0, -1)).sort()).toEqual(["evt-failed", "evt-new"]);
    expect(await client.zcard(`${prefix}:audit:failed`)).toBe(0);

    // A waiting (not failed) job is left alone: no second round trip, no requeued flag.
    expect(await (await post({ events: [events.events[1]] })).json()).toEqual({ jobs: [{ id: "evt-new", queue: "audit" }] });

    const seen: string[] = [];
    await work(prefix, ["evt-failed", "evt-new"], "completed", async (job) => seen.push(job.id ?? ""));
    expect(seen.sort()).toEqual(["evt-failed", "evt-new"]);
    expect(auditContract.defaults.attempts).toBeGreaterThan(1);
  });
});
