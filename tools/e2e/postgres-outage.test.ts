// Postgres goes away — refused, then hung — for longer than any contract's retry budget while audit
// events, emails and Stripe events flow through the real fleet (BullMQ Workers, handlers, Resend SDK
// against a local stand-in). Every job must be started more often than its attempts allow without
// spending one, and once Postgres is back everything lands exactly once and nothing is failed.
import { inArray } from "drizzle-orm";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import { emailMessages } from "../../shared/db/email-messages.ts";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import { auditContract } from "../../shared/jobs/audit.ts";
import type { JobContract } from "../../shared/jobs/contract.ts";
import { emailContract } from "../../shared/jobs/email.ts";
import { StripeWebhookJob, stripeWebhookContract } from "../../shared/jobs/stripe-webhook.ts";
import { createAuditHandler } from "../../worker/audit/handler.ts";
import { createDb, type Database } from "../../worker/db.ts";
import { createEmailHandler } from "../../worker/email/handler.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { createStripeWebhookHandler } from "../../worker/stripe/handler.ts";
import { createReportHandler } from "../../worker/report/handler.ts";
import { customerLifecycle, lifecycleIds } from "../testing/stripe-fixtures.ts";
import { startFakeResend, type FakeResend } from "../testing/fake-resend.ts";
import { startFaultProxy, type FaultMode, type FaultProxy } from "../testing/fault-proxy.ts";
import { memoryLog, settled, startTestFleet, testDb, uniqueId, type TestFleet } from "../testing/fixtures.ts";

let direct: Database; // the test's own view of Postgres, never through the proxy
let resend: FakeResend;
let proxy: FaultProxy | undefined;
let fleetDb: Database | undefined;
let t: TestFleet | undefined;
let redis: Redis;

beforeAll(async () => {
  direct = testDb();
  resend = await startFakeResend();
  redis = new Redis(redisOptions(inject("redisUrl")));
});
afterAll(async () => {
  await direct.close();
  await resend.close();
  redis.disconnect();
});
afterEach(async () => {
  proxy?.set("pass");
  await t?.stop();
  await fleetDb?.close().catch(() => undefined);
  await proxy?.close();
  t = undefined;
  fleetDb = undefined;
  proxy = undefined;
});

async function startFleetBehindProxy(): Promise<{ fleet: TestFleet; logs: ReturnType<typeof memoryLog> }> {
  const url = new URL(inject("databaseUrl"));
  proxy = await startFaultProxy({ host: url.hostname, port: Number(url.port) });
  // Tight client bounds so a hung connection is noticed within the test's window; production
  // defaults are 5 s / 15 s (worker/env.ts).
  fleetDb = createDb(proxy.rewrite(url.toString()), { driver: "pg", max: 5, connectTimeoutMs: 500, queryTimeoutMs: 700 });
  const logs = memoryLog();
  const fleet = await startTestFleet(
    {
      handlers: {
        audit: createAuditHandler(fleetDb.db, { concurrency: 50 }).handle, // the shipped inserts in flight, at this concurrency
        email: createEmailHandler(fleetDb.db, { resendApiKey: "re_test_key", resendBaseUrl: resend.url, emailFrom: "t@example.com" }),
        "stripe-webhook": createStripeWebhookHandler(fleetDb.db),
        report: createReportHandler(fleetDb.db),
      },
      scripts: [],
      log: logs.log,
    },
    { outageBackoffMinMs: 50, outageBackoffMaxMs: 250, concurrency: { audit: 50, email: 5, "stripe-webhook": 5, report: 5 } },
  );
  t = fleet;
  return { fleet, logs };
}

interface Sent {
  contract: JobContract;
  id: string;
}

/** Adds the traffic the way the edge does: contract defaults, caller ids. */
async function sendTraffic(fleet: TestFleet, label: string): Promise<{ sent: Sent[]; events: string[]; emails: string[]; stripe: string[] }> {
  const events = Array.from({ length: 40 }, (_, i) => uniqueId(`${label}-ev${i}`));
  const emails = Array.from({ length: 4 }, (_, i) => uniqueId(`${label}-em${i}`));
  const lifecycle = customerLifecycle(lifecycleIds());
  const sent: Sent[] = [];
  for (const id of events) {
    await fleet.add(auditContract, { id, name: "order.paid", type: "domain", occurredAt: new Date().toISOString(), payload: { n: 1 } }, { jobId: id });
    sent.push({ contract: auditContract, id });
  }
  for (const id of emails) {
    await fleet.add(emailContract, { to: "someone@example.com", subject: "Receipt", text: "Thanks" }, { jobId: id });
    sent.push({ contract: emailContract, id });
  }
  for (const e of lifecycle) {
    const id = e.id as string;
    const data = StripeWebhookJob.parse({ id, type: e.type, created: e.created, livemode: false, event: e });
    await fleet.add(stripeWebhookContract, data, { jobId: id });
    sent.push({ contract: stripeWebhookContract, id });
  }
  return { sent, events, emails, stripe: lifecycle.map((e) => e.id as string) };
}

/** Job hash fields BullMQ keeps: `ats` counts starts, `atm` counts spent attempts. */
async function counters(fleet: TestFleet, s: Sent): Promise<{ started: number; spent: number }> {
  const [ats, atm] = await redis.hmget(`${fleet.config.queuePrefix}:${s.contract.queue}:${s.id}`, "ats", "atm");
  return { started: Number(ats ?? 0), spent: Number(atm ?? 0) };
}

/**
 * Polls (no fixed sleeps) until every job that was picked up has been started more often than its
 * attempts allow, on every queue. A returned job goes back to the head of the line (BullMQ's
 * moveJobFromActiveToWait), so with more jobs than concurrency some are never picked up during the
 * outage — they wait, which costs them nothing either.
 */
async function untilEveryJobOutlivedItsAttempts(fleet: TestFleet, sent: Sent[], deadlineMs = 60_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const all = await Promise.all(sent.map(async (s) => ({ s, c: await counters(fleet, s) })));
    const spent = all.find(({ c }) => c.spent > 0);
    if (spent) throw new Error(`${spent.s.contract.queue}/${spent.s.id} spent an attempt during the outage`);
    const behind = all.filter(({ s, c }) => c.started > 0 && c.started <= (s.contract.defaults.attempts ?? 1));
    const queues = new Set(all.filter(({ c }) => c.started > 0).map(({ s }) => s.contract.queue));
    if (behind.length === 0 && queues.size === 3) return;
    if (Date.now() > deadline) throw new Error(`${behind.length} jobs not yet retried past their attempts, e.g. ${behind[0]?.s.id}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.each<FaultMode>(["refuse", "hang"])("Postgres outage (%s) longer than every retry budget", (mode) => {
  it("spends no attempts, then stores every event, email and Stripe event exactly once with nothing failed", { timeout: 120_000 }, async () => {
    const { fleet, logs } = await startFleetBehindProxy();
    proxy!.set(mode);
    const { sent, events, emails, stripe } = await sendTraffic(fleet, mode);
    const mine = () => resend.requests.filter((r) => emails.includes(String(r.headers["idempotency-key"])));

    await untilEveryJobOutlivedItsAttempts(fleet, sent);
    for (const s of sent) expect((await counters(fleet, s)).spent, `${s.contract.queue}/${s.id}`).toBe(0);
    for (const q of ["audit", "email", "stripe-webhook"] as const) expect(await fleet.queue(q).getFailedCount()).toBe(0);
    expect(Object.keys(fleet.fleet.outages()).sort()).toEqual(["audit", "email", "stripe-webhook"]);
    expect(mine()).toHaveLength(0); // the email row comes first: nothing sent blind

    proxy!.set("pass");
    for (const s of sent) {
      const job = await settled(fleet.queue(s.contract.queue), s.id, 60_000);
      expect(job.finishedOn && !job.failedReason, `${s.contract.queue}/${s.id}: ${job.failedReason}`).toBeTruthy();
    }

    const audit = await direct.db.select({ id: auditLogs.eventId }).from(auditLogs).where(inArray(auditLogs.eventId, events));
    expect(audit.map((r) => r.id).sort()).toEqual([...events].sort());
    const mails = await direct.db.select().from(emailMessages).where(inArray(emailMessages.jobId, emails));
    expect(mails.map((m) => [m.jobId, m.status]).sort()).toEqual(emails.map((id) => [id, "sent"]).sort());
    // One request per email reached Resend, each under its own idempotency key.
    expect(mine().map((r) => String(r.headers["idempotency-key"])).sort()).toEqual([...emails].sort());
    const hooks = await direct.db.select().from(webhookEvents).where(inArray(webhookEvents.stripeEventId, stripe));
    expect(hooks.map((h) => [h.stripeEventId, h.status]).sort()).toEqual(stripe.map((id) => [id, "PROCESSED"]).sort());
    expect(fleet.fleet.outages()).toEqual({});

    // The log tells the story without a payload value in it.
    expect(logs.lines.some((l) => l.outcome === "returned" && l.dependency === "postgres")).toBe(true);
    expect(logs.lines.some((l) => l.msg === "dependency back; queue resumed")).toBe(true);
    expect(JSON.stringify(logs.lines)).not.toContain("someone@example.com");
  });
});
