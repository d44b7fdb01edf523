/**
 * Graceful drain of the real entry point (`node worker/main.ts`) with many jobs in flight on two
 * queues at once — worker/main.test.ts covers one email. The jobs are held by their dependencies,
 * not by sleeps: the audit batch waits on a Postgres row lock the test holds (an uncommitted row
 * with the same unique event id), the emails on a Resend stand-in that holds its answers. SIGTERM
 * arrives while they are held; then the lock is released. Every job must finish once: one row per
 * event, one Resend request per idempotency key, one attempt per email, exit code 0.
 */
import { Queue } from "bullmq";
import { inArray } from "drizzle-orm";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import { emailMessages } from "../../shared/db/email-messages.ts";
import { auditContract } from "../../shared/jobs/audit.ts";
import { emailContract } from "../../shared/jobs/email.ts";
import type { Database } from "../../worker/db.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { startFakeResend } from "../testing/fake-resend.ts";
import { deleteKeys, eventually, testDb, uniqueId } from "../testing/fixtures.ts";
import { runMain } from "../testing/main-process.ts";

let database: Database;
beforeAll(() => {
  database = testDb();
});
afterAll(() => database.close());

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const AUDIT_JOBS = 40;
const EMAIL_JOBS = 5;

describe("graceful drain of node worker/main.ts", () => {
  it("on SIGTERM with audit writes and emails in flight, finishes each exactly once and exits 0", async () => {
    const prefix = uniqueId("drain");
    const resend = await startFakeResend();
    cleanups.push(() => resend.close());
    const connection = redisOptions(inject("redisUrl"));
    const audit = new Queue(auditContract.queue, { connection, prefix });
    const email = new Queue(emailContract.queue, { connection, prefix });
    cleanups.push(async () => {
      await Promise.all([audit.close(), email.close()]);
      await deleteKeys(inject("redisUrl"), prefix);
    });

    // The holder: an uncommitted row with the first event's id. The worker's insert of that id
    // (ON CONFLICT DO NOTHING on the unique key) waits for this transaction to end.
    const holder = new pg.Client({ connectionString: inject("databaseUrl") });
    await holder.connect();
    cleanups.push(() => holder.end());
    const auditIds = Array.from({ length: AUDIT_JOBS }, (_, i) => `${prefix}-evt-${i}`);
    const [heldId = ""] = auditIds;
    await holder.query("BEGIN");
    await holder.query(
      "INSERT INTO audit_logs (event_id, event_name, event_type, occurred_at, payload) VALUES ($1, 'held', 'domain', now(), '{}')",
      [heldId],
    );
    const { rows: [{ pid: holderPid } = { pid: 0 }] } = await holder.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");

    const main = runMain({
      REDIS_URL: inject("redisUrl"),
      DATABASE_URL: inject("databaseUrl"),
      QUEUE_PREFIX: prefix,
      WORKER_QUEUES: "audit,email",
      WORKER_CONCURRENCY_AUDIT: "50",
      WORKER_CONCURRENCY_EMAIL: String(EMAIL_JOBS),
      PORT: "0",
      RESEND_API_KEY: "re_test",
      RESEND_BASE_URL: resend.url,
      EMAIL_RATE_PER_SECOND: "50",
      WORKER_DRAIN_DELAY_SECONDS: "1",
      SHUTDOWN_TIMEOUT_MS: "60000",
    });
    cleanups.push(async () => void main.child.kill("SIGKILL"));
    await main.waitForLine("worker ready");

    // Resend holds every answer well past the signal; the test does not wait on the clock for it.
    resend.respond(...Array.from({ length: EMAIL_JOBS }, () => ({ status: 200, delayMs: 3_000 })));
    const emailIds = Array.from({ length: EMAIL_JOBS }, (_, i) => `${prefix}-mail-${i}`);
    await email.addBulk(emailIds.map((jobId, i) => ({
      name: emailContract.name,
      data: { to: `user${i}@example.com`, subject: "drain", text: "t" },
      opts: { ...emailContract.defaults, jobId },
    })));
    await audit.addBulk(auditIds.map((jobId, i) => ({
      name: auditContract.name,
      data: { id: jobId, name: "drain.tested", type: "domain" as const, occurredAt: new Date().toISOString(), payload: { n: i } },
      opts: { ...auditContract.defaults, jobId },
    })));

    // In flight: every email is at Resend, and the worker's audit insert waits on the holder's lock.
    await resend.waitForRequests(EMAIL_JOBS, 30_000);
    await eventually("an audit insert blocked by the held row", async () => {
      const { rows } = await holder.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
        [holderPid],
      );
      return (rows[0]?.n ?? 0) > 0 ? true : undefined;
    });
    expect(await audit.getJobState(heldId)).toBe("active");

    main.child.kill("SIGTERM");
    await main.waitForLine("worker stopping");
    await holder.query("ROLLBACK");

    expect(await main.exitedWithin(60_000)).toBe(0);
    expect(main.lines.find((l) => l.msg === "worker stopped")).toMatchObject({ drained: true });

    // Every audit event: one row, written by the worker (the holder's row was rolled back).
    const rows = await database.db.select().from(auditLogs).where(inArray(auditLogs.eventId, auditIds));
    expect(rows).toHaveLength(AUDIT_JOBS);
    expect(new Set(rows.map((r) => r.eventId)).size).toBe(AUDIT_JOBS);
    expect(rows.find((r) => r.eventId === heldId)).toMatchObject({ eventName: "drain.tested", payload: { n: 0 } });
    expect(await audit.getJobState(heldId)).toBe("completed");

    // Every email: sent once, one attempt, one request per idempotency key.
    const mails = await database.db.select().from(emailMessages).where(inArray(emailMessages.jobId, emailIds));
    expect(mails.map((m) => [m.jobId, m.status, m.attempts]).sort()).toEqual(emailIds.map((id) => [id, "sent", 1]).sort());
    expect(resend.requests.map((r) => r.headers["idempotency-key"]).sort()).toEqual([...emailIds].sort());
    expect(await Promise.all(emailIds.map((id) => email.getJobState(id)))).toEqual(emailIds.map(() => "completed"));
    // Nothing is left for another process to run again.
    expect(await audit.getJobCounts("active", "waiting", "delayed")).toEqual({ active: 0, waiting: 0, delayed: 0 });
    expect(await email.getJobCounts("active", "waiting", "delayed")).toEqual({ active: 0, waiting: 0, delayed: 0 });
  }, 120_000);
});
