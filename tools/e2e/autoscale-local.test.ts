/**
 * Local scaling as `npm run dev` runs it (tools/dev/local-autoscaler.ts): the autoscaler's loop and
 * policy with the process driver, starting at zero. A burst and a wake call (as the edge sends)
 * scale the fleet to more than one `node worker/main.ts` process; a second burst arrives while it
 * scales down; then it returns to its minimum, zero. Every job is processed exactly once while
 * replicas come and go: one row per event, one `job completed` per job across all processes.
 */
import { Queue } from "bullmq";
import { inArray } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import { auditContract } from "../../shared/jobs/audit.ts";
import type { Database } from "../../worker/db.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { secret } from "../dev/local-services.ts";
import { startLocalAutoscaler } from "../dev/local-autoscaler.ts";
import { deleteKeys, eventually, memoryLog, testDb, uniqueId } from "../testing/fixtures.ts";

let database: Database;
beforeAll(() => {
  database = testDb();
});
afterAll(() => database.close());

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

describe("npm run dev's local autoscaler", () => {
  it("scales a burst from zero to several processes and back to zero, each job processed once", async () => {
    const prefix = uniqueId("scale");
    const audit = new Queue(auditContract.queue, { connection: redisOptions(inject("redisUrl")), prefix });
    cleanups.push(async () => {
      await audit.close();
      await deleteKeys(inject("redisUrl"), prefix);
    });
    const { log, lines } = memoryLog();
    const wakeToken = secret();
    const local = await startLocalAutoscaler({
      redisUrl: inject("redisUrl"),
      queuePrefix: prefix,
      wakeToken,
      log,
      workerEnv: {
        PATH: process.env.PATH ?? "",
        REDIS_URL: inject("redisUrl"),
        DATABASE_URL: inject("databaseUrl"),
        QUEUE_PREFIX: prefix,
        EMAIL_CAPTURE: "1",
        WORKER_DRAIN_DELAY_SECONDS: "1",
        SHUTDOWN_TIMEOUT_MS: "10000",
        // Every completed job logged (not sampled): the test counts them per process.
        JOB_LOG_RATE: "all",
      },
      // The local policy with its windows in seconds, so the test sees up and down quickly.
      settings: { maxReplicas: 3, jobsPerReplica: 500, stabilizationSeconds: 1, scaleDownCooldownSeconds: 1, idleSeconds: 2, pollingIntervalSeconds: 1 },
    });
    cleanups.push(() => local.close());
    const timeline = () => local.autoscaler.status().timeline;
    expect(local.driver.current()).toBe(0);

    let n = 0;
    const burst = async (count: number) => {
      const ids = Array.from({ length: count }, () => `${prefix}-evt-${n++}`);
      const occurredAt = new Date().toISOString();
      for (let i = 0; i < ids.length; i += 500) {
        await audit.addBulk(ids.slice(i, i + 500).map((jobId) => ({
          name: auditContract.name,
          data: { id: jobId, name: "scale.tested", type: "domain" as const, occurredAt, payload: {} },
          opts: { ...auditContract.defaults, jobId },
        })));
      }
      // What the edge sends after an accepted enqueue.
      const res = await fetch(local.wakeUrl, {
        method: "POST",
        headers: { authorization: `Bearer ${wakeToken}`, "content-type": "application/json" },
        body: JSON.stringify({ queues: ["audit"] }),
      });
      expect(res.status).toBe(202);
      return ids;
    };

    const first = await burst(3_000);
    // Up: straight from zero to more than one process (3 000 waiting / 500 per replica, max 3).
    await eventually("a scale-up past one replica", async () => (timeline().some((t) => t.applied && t.to > 1) ? true : undefined), 120_000);
    // A second burst once the fleet has begun to step down: replicas stop while others take it.
    await eventually("a first scale-down", async () => (timeline().some((t) => t.applied && t.to < t.from) ? true : undefined), 120_000);
    const second = await burst(1_000);
    const ids = [...first, ...second];
    // Down: back to the minimum, zero processes, with everything done.
    await eventually("back to zero replicas", async () => {
      const last = timeline().at(-1);
      return local.driver.current() === 0 && last?.to === 0 && last.applied ? true : undefined;
    }, 180_000);

    const rows = await database.db.select({ eventId: auditLogs.eventId }).from(auditLogs).where(inArray(auditLogs.eventId, ids));
    expect(rows).toHaveLength(ids.length);
    const completed = lines.filter((l) => l.msg === "job completed");
    expect(completed).toHaveLength(ids.length);
    expect(new Set(completed.map((l) => l.jobId)).size).toBe(ids.length);
    // The work really was spread: more than one process completed jobs.
    expect(new Set(completed.map((l) => l.replica)).size).toBeGreaterThan(1);
    expect(lines.filter((l) => l.msg === "replica exited unexpectedly")).toEqual([]);
    expect(Math.max(...timeline().map((t) => t.to))).toBeGreaterThan(1);

    console.log(JSON.stringify({
      localScaling: timeline().map((t) => `${t.from}→${t.to} (${t.reason}, backlog ${t.backlog})`),
      perReplica: Object.fromEntries([...new Set(completed.map((l) => l.replica))].map((r) => [r, completed.filter((l) => l.replica === r).length])),
    }));
  }, 300_000);
});
