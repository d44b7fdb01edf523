/**
 * Horizontal scaling: three `node worker/main.ts` processes on the same queues, and a burst on
 * every queue at once (3 000 audit events, 60 emails, 35 Stripe events, with the ids the edge
 * gives them). Every side effect happens exactly once — one row per event, one Resend request per
 * idempotency key, one PROCESSED webhook event per Stripe event — and each process took a share.
 */
import { Queue } from "bullmq";
import { inArray } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import { emailMessages } from "../../shared/db/email-messages.ts";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import { auditContract } from "../../shared/jobs/audit.ts";
import { emailContract } from "../../shared/jobs/email.ts";
import { stripeWebhookContract } from "../../shared/jobs/stripe-webhook.ts";
import type { Database } from "../../worker/db.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { startFakeResend } from "../testing/fake-resend.ts";
import { deleteKeys, eventually, testDb, uniqueId } from "../testing/fixtures.ts";
import { customerLifecycle, lifecycleIds } from "../testing/stripe-fixtures.ts";
import { startFleetProcess, type FleetProcess } from "./stack.ts";

const AUDIT_JOBS = 3_000;
const EMAIL_JOBS = 60;
const LIFECYCLES = 5; // 7 Stripe events each

let database: Database;
beforeAll(() => {
  database = testDb();
});
afterAll(() => database.close());

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** The jobs each process logged as completed (one `job completed` line per finished job). */
function completedBy(process: FleetProcess): string[] {
  return process.output().split("\n").flatMap((line) => {
    if (!line.includes('"msg":"job completed"')) return [];
    const { queue, jobId } = JSON.parse(line) as { queue: string; jobId: string };
    return [`${queue}/${jobId}`];
  });
}

describe("three worker processes on the same queues", () => {
  it("run a burst on every queue with each side effect exactly once", async () => {
    const prefix = uniqueId("horiz");
    const resend = await startFakeResend();
    cleanups.push(() => resend.close());
    const connection = redisOptions(inject("redisUrl"));
    const queues = [auditContract, emailContract, stripeWebhookContract].map((c) => new Queue(c.queue, { connection, prefix }));
    const [audit, email, stripe] = queues as [Queue, Queue, Queue];
    cleanups.push(async () => {
      await Promise.all(queues.map((q) => q.close()));
      await deleteKeys(inject("redisUrl"), prefix);
    });

    const env = {
      REDIS_URL: inject("redisUrl"),
      DATABASE_URL: inject("databaseUrl"),
      QUEUE_PREFIX: prefix,
      RESEND_API_KEY: "re_test",
      RESEND_BASE_URL: resend.url,
      EMAIL_RATE_PER_SECOND: "1000",
      WORKER_DRAIN_DELAY_SECONDS: "1",
      SHUTDOWN_TIMEOUT_MS: "10000",
      // Every completed job logged (not sampled): the test counts them per process.
      JOB_LOG_RATE: "all",
    };
    // A generous start bound: three processes loading at once on a busy 2-core machine are slow.
    const fleet = await Promise.all([0, 1, 2].map(() => startFleetProcess(env, 180_000)));
    cleanups.push(async () => void (await Promise.all(fleet.map((p) => p.stop("SIGKILL")))));

    // Ids as the edge makes them: the caller's event id, the email's Idempotency-Key, Stripe's event id.
    const auditIds = Array.from({ length: AUDIT_JOBS }, (_, i) => `${prefix}-evt-${i}`);
    const emailIds = Array.from({ length: EMAIL_JOBS }, (_, i) => `${prefix}-mail-${i}`);
    const stripeEvents = Array.from({ length: LIFECYCLES }, () => customerLifecycle(lifecycleIds())).flat();
    const occurredAt = new Date().toISOString();
    for (let i = 0; i < AUDIT_JOBS; i += 500) {
      await audit.addBulk(auditIds.slice(i, i + 500).map((jobId, n) => ({
        name: auditContract.name,
        data: { id: jobId, name: "burst.tested", type: "domain" as const, occurredAt, payload: { n: i + n } },
        opts: { ...auditContract.defaults, jobId },
      })));
    }
    await email.addBulk(emailIds.map((jobId, i) => ({
      name: emailContract.name,
      data: { to: `user${i}@example.com`, subject: "burst", text: "t" },
      opts: { ...emailContract.defaults, jobId },
    })));
    await stripe.addBulk(stripeEvents.map((event) => ({
      name: stripeWebhookContract.name,
      data: { id: event.id, type: event.type, created: event.created, livemode: false, event },
      opts: { ...stripeWebhookContract.defaults, jobId: event.id },
    })));

    const stripeIds = stripeEvents.map((e) => e.id);
    const total = AUDIT_JOBS + EMAIL_JOBS + stripeIds.length;
    const done = () => fleet.flatMap(completedBy);
    await eventually("every job completed", async () => (done().length >= total ? true : undefined), 180_000);

    // Each job finished once, across the three processes, and each process took a share.
    // BullMQ is at-least-once: on a loaded machine a job whose lock lapsed may run again; what must
    // hold is that each side effect below happens once.
    const completed = done();
    expect(new Set(completed).size).toBe(total);
    for (const p of fleet) expect(completedBy(p).length).toBeGreaterThan(0);

    const rows = await database.db.select({ eventId: auditLogs.eventId }).from(auditLogs).where(inArray(auditLogs.eventId, auditIds));
    expect(rows).toHaveLength(AUDIT_JOBS);
    const mails = await database.db.select().from(emailMessages).where(inArray(emailMessages.jobId, emailIds));
    expect(mails.filter((m) => m.status === "sent")).toHaveLength(EMAIL_JOBS);
    // One delivery per email: Resend accepted each idempotency key once (a rerun reuses the key).
    expect(resend.accepted.map((a) => String(a.idempotencyKey)).sort()).toEqual([...emailIds].sort());
    const requestKeys = resend.requests.map((r) => String(r.headers["idempotency-key"]));
    expect(new Set(requestKeys).size).toBe(EMAIL_JOBS);
    const events = await database.db.select().from(webhookEvents).where(inArray(webhookEvents.stripeEventId, stripeIds));
    expect(events.map((e) => e.status)).toEqual(stripeIds.map(() => "PROCESSED"));

    // Per-process shares, for the README's figures.
    console.log(JSON.stringify({
      horizontal: fleet.map((p) => completedBy(p).length), total, reruns: completed.length - total,
      resendRequests: requestKeys.length, emailAttempts: mails.map((m) => m.attempts).filter((a) => a !== 1),
    }));
  }, 420_000);
});
