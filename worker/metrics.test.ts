import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { reportContract } from "../shared/jobs/report.ts";
import { auditContract } from "../shared/jobs/audit.ts";
import { createAuditHandler } from "./audit/handler.ts";
import { createDb, type Database } from "./db.ts";
import { redisOptions } from "./fleet.ts";
import { startHealthServer, type Check } from "./health.ts";
import { backlogCommands, createMetrics } from "./metrics.ts";
import { PermanentError, type Handler } from "./runner.ts";
import { startRedisForFile } from "../tools/dev/local-services.ts";
import { startFaultProxy, type FaultProxy } from "../tools/testing/fault-proxy.ts";
import { eventually, settled, startTestFleet, uniqueId, type TestFleet } from "../tools/testing/fixtures.ts";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Prometheus text → value of one series (labels matched exactly, in any order). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.keys(found).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(m[3]);
  }
  return undefined;
}

async function serveMetrics(t: TestFleet, checks: Record<string, Check>, metricsToken?: string) {
  const metrics = createMetrics({ queues: t.config.queues, jobs: t.fleet.jobs, backlog: t.fleet.backlog, outages: t.fleet.outages, checks, checkTimeoutMs: 1_000 });
  const server = await startHealthServer({ port: 0, checks, metrics, metricsToken });
  cleanups.push(() => server.close());
  const scrape = async (headers: Record<string, string> = {}) => {
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`, { headers, signal: AbortSignal.timeout(20_000) });
    return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
  };
  return { scrape };
}

describe("/metrics", () => {
  it("counts completed, failed and retried jobs per queue and name, with their durations, and no job ids", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const report: Handler<typeof reportContract> = async ({ accountId }) => {
      if (accountId.startsWith("perm")) throw new PermanentError("refused for the test");
      if (accountId.startsWith("flaky")) throw new Error("transient for the test");
      if (accountId.startsWith("block")) await gate;
    };
    const t = await startTestFleet({ handlers: { report }, scripts: [], log: () => {} }, { queues: ["report"] });
    cleanups.push(() => t.stop());
    const { scrape } = await serveMetrics(t, { redis: t.fleet.ping });

    const ids: string[] = [];
    const add = async (accountId: string, opts = {}) =>
      ids.push((await t.add(reportContract, { accountId, month: "2026-11" }, { jobId: uniqueId("job"), ...opts })).id!);
    for (let i = 0; i < 5; i++) await add(`ok-${i}`);
    for (let i = 0; i < 2; i++) await add(`perm-${i}`);
    // Two attempts, no backoff: one retry, then failed for good.
    await add("flaky-0", { attempts: 2, backoff: { type: "fixed", delay: 0 } });
    await add("block-0");
    await add("block-1");
    for (const id of ids.slice(0, 8)) await settled(t.queue("report"), id);

    const busy = await eventually("two blocked jobs active", async () => {
      const r = await scrape();
      return sample(r.text, "edgefleet_queue_jobs", { queue: "report", state: "active" }) === 2 ? r : undefined;
    });
    expect(busy.status).toBe(200);
    expect(busy.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const at = { queue: "report", name: "generate-report" };
    expect(sample(busy.text, "edgefleet_jobs_total", { ...at, outcome: "completed" })).toBe(5);
    expect(sample(busy.text, "edgefleet_jobs_total", { ...at, outcome: "failed" })).toBe(3);
    expect(sample(busy.text, "edgefleet_jobs_total", { ...at, outcome: "retried" })).toBe(1);
    expect(sample(busy.text, "edgefleet_jobs_total", { ...at, outcome: "held_off" })).toBe(0);
    // 9 attempts ended (5 + 3 + 1); every one is in the +Inf bucket.
    expect(sample(busy.text, "edgefleet_job_duration_seconds_count", { queue: "report" })).toBe(9);
    expect(sample(busy.text, "edgefleet_job_duration_seconds_bucket", { queue: "report", le: "+Inf" })).toBe(9);
    expect(sample(busy.text, "edgefleet_dependency_up", { dependency: "redis" })).toBe(1);
    expect(sample(busy.text, "edgefleet_queue_outage", { queue: "report" })).toBe(0);
    expect(sample(busy.text, "process_resident_memory_bytes")).toBeGreaterThan(0);
    for (const id of ids) expect(busy.text).not.toContain(id);

    release();
    for (const id of ids.slice(8)) await settled(t.queue("report"), id);
    const after = await eventually("the blocked jobs counted", async () => {
      const r = await scrape();
      return sample(r.text, "edgefleet_jobs_total", { ...at, outcome: "completed" }) === 7 ? r : undefined;
    });
    expect(sample(after.text, "edgefleet_queue_jobs", { queue: "report", state: "active" })).toBe(0);
    expect(sample(after.text, "edgefleet_queue_backlog", { queue: "report" })).toBe(0);
  });

  it("reads backlog, delayed (due and not) and the oldest waiting job from what is in Redis, in one script call", async () => {
    // A Redis of its own, so its command counter sees this scrape alone.
    const server = await startRedisForFile(inject("testDataDir"), "metrics-backlog");
    cleanups.push(() => server.stop());
    const t = await startTestFleet({ handlers: { report: async () => {} }, scripts: [], log: () => {} }, { queues: ["report"], redisUrl: server.url });
    cleanups.push(() => t.stop());
    const { scrape } = await serveMetrics(t, { redis: t.fleet.ping });
    // With the queue's worker stopped nothing moves the jobs while we count (a paused queue's worker
    // would still promote due delayed jobs); the fleet's backlog reader is its own connection.
    await t.fleet.workers.get("report")!.close();
    const q = t.queue("report");
    const now = Date.now();
    const job = (accountId: string) => ({ accountId, month: "2026-11" });
    // Oldest first: it was added 60 s ago (BullMQ's `timestamp` option), the rest now.
    await t.add(reportContract, job("w-old"), { timestamp: now - 60_000 });
    await t.add(reportContract, job("w-1"));
    await t.add(reportContract, job("w-2"));
    await t.add(reportContract, job("p-1"), { priority: 5 });
    await t.add(reportContract, job("p-2"), { priority: 1 });
    const due = await t.add(reportContract, job("d-due"), { delay: 1 });
    await t.add(reportContract, job("d-later-1"), { delay: 3_600_000 });
    await t.add(reportContract, job("d-later-2"), { delay: 3_600_000 });
    await eventually("the short delay to pass", async () => (Date.now() > due.timestamp + 1 ? true : undefined));

    // What BullMQ itself reports, to compare with.
    const counts = await q.getJobCounts("waiting", "prioritized", "delayed", "active");
    expect(counts).toEqual({ waiting: 3, prioritized: 2, delayed: 3, active: 0 });

    const admin = new Redis(redisOptions(server.url));
    cleanups.push(async () => void admin.disconnect());
    await scrape(); // loads the script (a first EVALSHA may fall back to EVAL once)
    const before = Number(/total_commands_processed:(\d+)/.exec(await admin.info("stats"))![1]);
    const { text } = await scrape();
    const commands = Number(/total_commands_processed:(\d+)/.exec(await admin.info("stats"))![1]) - before;

    const at = { queue: "report" };
    expect(sample(text, "edgefleet_queue_backlog", at)).toBe(3 + 2 + 1);
    expect(sample(text, "edgefleet_queue_jobs", { ...at, state: "waiting" })).toBe(3);
    expect(sample(text, "edgefleet_queue_jobs", { ...at, state: "prioritized" })).toBe(2);
    expect(sample(text, "edgefleet_queue_jobs", { ...at, state: "delayed_due" })).toBe(1);
    expect(sample(text, "edgefleet_queue_jobs", { ...at, state: "delayed_later" })).toBe(2);
    expect(sample(text, "edgefleet_queue_jobs", { ...at, state: "active" })).toBe(0);
    const age = sample(text, "edgefleet_queue_oldest_waiting_seconds", at)!;
    expect(age).toBeGreaterThanOrEqual(60);
    expect(age).toBeLessThan(60 + (Date.now() - now) / 1000 + 1);
    expect(sample(text, "edgefleet_backlog_read_ok")).toBe(1);
    // Redis counts the commands a script runs too: the first INFO, then the scrape's EVALSHA with
    // its 7 commands for this one queue, and the readiness check's PING.
    expect(backlogCommands(1)).toEqual({ roundTrips: 1, client: 1, inScript: 7 });
    expect(commands).toBe(1 + 1 + 7 + 1);
  });

  it("shows a queue held off while Postgres is down, postgres down, and both back once it returns", async () => {
    const url = new URL(inject("databaseUrl"));
    const proxy: FaultProxy = await startFaultProxy({ host: url.hostname, port: Number(url.port) });
    cleanups.push(() => proxy.close());
    const db: Database = createDb(proxy.rewrite(url.toString()), { driver: "pg", max: 2, connectTimeoutMs: 500, queryTimeoutMs: 700 });
    cleanups.push(() => db.close());
    const prefix = uniqueId("metrics-outage");
    const t = await startTestFleet(
      { handlers: { audit: createAuditHandler(db.db).handle }, scripts: [], log: () => {} },
      { queues: ["audit"], queuePrefix: prefix, outageBackoffMinMs: 50, outageBackoffMaxMs: 250 },
    );
    // Before the fleet stops: let the proxy pass so nothing is left hanging.
    cleanups.push(async () => {
      proxy.set("pass");
      await t.stop();
    });
    const { scrape } = await serveMetrics(t, { redis: t.fleet.ping, postgres: db.ping });

    proxy.set("refuse");
    const eventId = uniqueId("evt");
    const job = await t.add(auditContract, { id: eventId, name: "metrics.outage", type: "domain", occurredAt: new Date().toISOString(), payload: {} }, { jobId: eventId });
    const down = await eventually("the audit queue held off", async () => {
      const r = await scrape();
      return sample(r.text, "edgefleet_queue_outage", { queue: "audit" }) === 1 ? r : undefined;
    });
    expect(sample(down.text, "edgefleet_dependency_up", { dependency: "postgres" })).toBe(0);
    expect(sample(down.text, "edgefleet_dependency_up", { dependency: "redis" })).toBe(1);
    expect(sample(down.text, "edgefleet_jobs_total", { queue: "audit", name: "record-event", outcome: "held_off" })).toBeGreaterThanOrEqual(1);
    expect(sample(down.text, "edgefleet_jobs_total", { queue: "audit", name: "record-event", outcome: "failed" })).toBe(0);
    expect(sample(down.text, "edgefleet_queue_outage_seconds", { queue: "audit" })).toBeGreaterThanOrEqual(0);

    proxy.set("pass");
    expect((await settled(t.queue("audit"), job.id!)).finishedOn).toBeTypeOf("number");
    const up = await eventually("the outage over", async () => {
      const r = await scrape();
      return sample(r.text, "edgefleet_queue_outage", { queue: "audit" }) === 0 ? r : undefined;
    });
    expect(sample(up.text, "edgefleet_dependency_up", { dependency: "postgres" })).toBe(1);
    expect(sample(up.text, "edgefleet_jobs_total", { queue: "audit", name: "record-event", outcome: "completed" })).toBe(1);
  });

  it("asks for the bearer token when one is configured", async () => {
    const t = await startTestFleet({ handlers: { report: async () => {} }, scripts: [], log: () => {} }, { queues: ["report"] });
    cleanups.push(() => t.stop());
    const { scrape } = await serveMetrics(t, { redis: t.fleet.ping }, "metrics-token-0123456789");
    expect((await scrape()).status).toBe(401);
    expect((await scrape({ authorization: "Bearer wrong-token-0123456789" })).status).toBe(401);
    const ok = await scrape({ authorization: "Bearer metrics-token-0123456789" });
    expect(ok.status).toBe(200);
    expect(sample(ok.text, "edgefleet_queue_backlog", { queue: "report" })).toBe(0);
  });
});
