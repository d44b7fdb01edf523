import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { auditContract } from "../../shared/jobs/audit.ts";
import { deleteKeys, memoryLog, startTestFleet, uniqueId } from "../../tools/testing/fixtures.ts";
import { redisOptions } from "../fleet.ts";
import { commandsPerPoll, createRateTracker, readSnapshot } from "./observe.ts";
import { completedKey, createThroughputCounter } from "./throughput.ts";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

function auditEvent() {
  return { id: uniqueId("evt"), name: "x", type: "domain" as const, occurredAt: "2026-11-23T10:00:00Z", payload: {} };
}

async function setup() {
  const prefix = uniqueId("obs");
  const redis = new Redis(redisOptions(inject("redisUrl")));
  const queue = new Queue("audit", { connection: redisOptions(inject("redisUrl")), prefix });
  const email = new Queue("email", { connection: redisOptions(inject("redisUrl")), prefix });
  cleanups.push(async () => {
    await queue.close();
    await email.close();
    redis.disconnect();
    await deleteKeys(inject("redisUrl"), prefix);
  });
  return { prefix, redis, queue, email };
}

describe("readSnapshot", () => {
  it("counts waiting, prioritized, due delayed and active jobs, and when the next delayed job is due", async () => {
    const { prefix, redis, queue, email } = await setup();
    const add = (opts: object = {}) => queue.add(auditContract.name, auditEvent(), opts);
    await add();
    await add();
    await add({ priority: 3 });
    const soon = await add({ delay: 60_000 });
    await add({ delay: 600_000 });
    await email.add("send", { to: "a@example.com", subject: "s", text: "t" });
    // One job taken by a worker (fetched by hand, so nothing runs it): active.
    const worker = new Worker("audit", null, { connection: redisOptions(inject("redisUrl")), prefix, autorun: false });
    cleanups.push(() => worker.close());
    const taken = await worker.getNextJob("token-1");
    expect(taken).toBeDefined();

    const now = Date.now();
    const s = await readSnapshot(redis, prefix, ["audit", "email"], now);
    // BullMQ takes from wait before prioritized: one plain job went active.
    expect(s.queues.audit).toMatchObject({ waiting: 1, prioritized: 1, dueDelayed: 0, active: 1, completed: 0 });
    expect(s.queues.email).toMatchObject({ waiting: 1, active: 0 });
    expect(s).toMatchObject({ at: now, backlog: 3, active: 1, completed: 0 });
    expect(s.nextDelayedAt).toBe(soon.timestamp + 60_000);

    // Ten minutes on, both delayed jobs are due: part of the backlog, and nothing is due later.
    const later = await readSnapshot(redis, prefix, ["audit"], now + 601_000);
    expect(later.queues.audit).toMatchObject({ waiting: 1, prioritized: 1, dueDelayed: 2 });
    expect(later.backlog).toBe(4);
    expect(later.nextDelayedAt).toBeUndefined();
  });

  it("counts a prioritized job in the backlog", async () => {
    const { prefix, redis, queue } = await setup();
    await queue.add(auditContract.name, auditEvent(), { priority: 1 });
    await queue.add(auditContract.name, auditEvent(), { priority: 2 });
    const s = await readSnapshot(redis, prefix, ["audit"], Date.now());
    expect(s.queues.audit).toMatchObject({ waiting: 0, prioritized: 2 });
    expect(s.backlog).toBe(2);
  });

  it("costs 5 commands per queue + 1 in one round trip", async () => {
    const { prefix, redis } = await setup();
    const pipelines: number[] = [];
    const counting = {
      pipeline: () => {
        const p = redis.pipeline();
        const exec = p.exec.bind(p);
        p.exec = () => (pipelines.push(p.length), exec());
        return p;
      },
    };
    await readSnapshot(counting as unknown as Redis, prefix, ["audit", "email", "report"], Date.now());
    expect(pipelines).toEqual([commandsPerPoll(3)]);
    expect(commandsPerPoll(3)).toBe(16);
  });
});

describe("the fleet's throughput counters", () => {
  it("are flushed as one HINCRBY per queue that completed something, and read back by the snapshot", async () => {
    const t = await startTestFleet({ handlers: { audit: async () => undefined }, scripts: [], log: () => {} }, { queues: ["audit"] });
    cleanups.push(() => t.stop());
    for (let i = 0; i < 7; i++) {
      const e = auditEvent();
      await t.add(auditContract, e, { jobId: e.id });
    }
    const redis = new Redis(redisOptions(inject("redisUrl")));
    cleanups.push(async () => redis.disconnect());
    await expect.poll(async () => (await readSnapshot(redis, t.config.queuePrefix, ["audit"], Date.now())).queues.audit?.waiting).toBe(0);
    // The fleet flushes every 15 s and on close: close it and the count is there.
    await t.fleet.close(5_000);
    expect(await redis.hget(completedKey(t.config.queuePrefix), "audit")).toBe("7");
    expect((await readSnapshot(redis, t.config.queuePrefix, ["audit"], Date.now())).completed).toBe(7);
  });

  it("sends nothing when nothing completed, and keeps the counts of a failed flush for the next", async () => {
    const prefix = uniqueId("tp");
    cleanups.push(() => deleteKeys(inject("redisUrl"), prefix));
    const redis = new Redis(redisOptions(inject("redisUrl")));
    cleanups.push(async () => redis.disconnect());
    let pipelines = 0;
    let fail = false;
    const { log, lines } = memoryLog();
    const counter = createThroughputCounter({
      redis: {
        pipeline: () => {
          pipelines++;
          if (fail) return { hincrby: () => undefined, exec: async () => Promise.reject(new Error("down")) } as never;
          return redis.pipeline();
        },
      },
      prefix,
      log,
    });
    await counter.flush();
    expect(pipelines).toBe(0);
    counter.completed("email");
    counter.completed("email");
    fail = true;
    await counter.flush();
    expect(lines).toEqual([expect.objectContaining({ level: "warn", msg: "throughput flush failed", error: "down" })]);
    fail = false;
    counter.completed("email");
    await counter.close();
    expect(await redis.hget(completedKey(prefix), "email")).toBe("3");
  });
});

describe("createRateTracker", () => {
  it("knows no rate until the samples span the window, then reports completions and arrivals per second", () => {
    const rates = createRateTracker(30_000);
    expect(rates.add({ at: 0, completed: 100, backlog: 50 })).toEqual({});
    expect(rates.add({ at: 15_000, completed: 400, backlog: 80 })).toEqual({});
    // 30 s: 600 done (20/s); the backlog grew by 60 (2/s): 22 arrived per second.
    expect(rates.add({ at: 30_000, completed: 700, backlog: 110 })).toEqual({ completedPerSecond: 20, arrivalPerSecond: 22 });
    // The window slides to 15 s → 45 s: 300 done (10/s), the backlog shrank by 60 (2/s): 8 arrived per second.
    expect(rates.add({ at: 45_000, completed: 700, backlog: 20 })).toEqual({ completedPerSecond: 10, arrivalPerSecond: 8 });
  });

  it("restarts when the counter goes backwards", () => {
    const rates = createRateTracker(10_000);
    rates.add({ at: 0, completed: 100, backlog: 0 });
    expect(rates.add({ at: 10_000, completed: 5, backlog: 0 })).toEqual({});
    expect(rates.add({ at: 20_000, completed: 25, backlog: 0 })).toEqual({ completedPerSecond: 2, arrivalPerSecond: 2 });
  });
});
