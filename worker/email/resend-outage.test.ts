// Resend unreachable while emails keep arriving: connections refused (nothing listens) or reset
// (accepted, then RST). The real BullMQ Worker, Redis and Postgres; the real Resend SDK against the
// local stand-in. Every job is started more often than its attempts allow during the outage, so
// counting outage runs as attempts would fail them; afterwards each email is sent exactly once.
import { inArray } from "drizzle-orm";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { emailMessages } from "../../shared/db/email-messages.ts";
import { emailContract } from "../../shared/jobs/email.ts";
import { createAuditHandler } from "../audit/handler.ts";
import type { Database } from "../db.ts";
import { redisOptions } from "../fleet.ts";
import { createStripeWebhookHandler } from "../stripe/handler.ts";
import { startFakeResend, type FakeResend, type ResendOutage } from "../../tools/testing/fake-resend.ts";
import { memoryLog, settled, startTestFleet, testDb, uniqueId, type TestFleet } from "../../tools/testing/fixtures.ts";
import { createEmailHandler } from "./handler.ts";

const ATTEMPTS = 3;

let database: Database;
let resend: FakeResend;
let redis: Redis;
let t: TestFleet | undefined;
/** The running test's log lines, quoted when a wait times out. */
let lastLogs: unknown[] = [];

beforeAll(async () => {
  database = testDb();
  resend = await startFakeResend();
  redis = new Redis(redisOptions(inject("redisUrl")));
});
afterAll(async () => {
  await resend.close();
  redis.disconnect();
  await database.close();
});
afterEach(async () => {
  await resend.outage(undefined);
  await t?.stop();
  t = undefined;
});

/** BullMQ's job hash: `ats` counts starts, `atm` counts spent attempts. */
async function counters(fleet: TestFleet, id: string): Promise<{ started: number; spent: number }> {
  const [ats, atm] = await redis.hmget(`${fleet.config.queuePrefix}:email:${id}`, "ats", "atm");
  return { started: Number(ats ?? 0), spent: Number(atm ?? 0) };
}

async function until(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}; ${JSON.stringify(lastLogs.slice(-8))}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.each<ResendOutage>(["refuse", "reset"])("Resend unreachable (%s) while emails flow", (mode) => {
  it("spends no attempt, fails nothing, and sends every email exactly once when Resend is back", { timeout: 90_000 }, async () => {
    const logs = memoryLog();
    lastLogs = logs.lines;
    const fleet = (t = await startTestFleet(
      {
        handlers: {
          audit: createAuditHandler(database.db).handle,
          email: createEmailHandler(database.db, { resendApiKey: "re_test_key", resendBaseUrl: resend.url, emailFrom: "t@example.com" }),
          "stripe-webhook": createStripeWebhookHandler(database.db),
        },
        scripts: [],
        log: logs.log,
      },
      { queues: ["email"], emailRatePerSecond: 100, outageBackoffMinMs: 50, outageBackoffMaxMs: 250 },
    ));
    const queue = fleet.queue("email");
    // A fast backoff: if outage runs counted, every job would be failed within a fraction of a second.
    const add = async (label: string) => {
      const id = uniqueId(label);
      await fleet.add(emailContract, { to: `${id}@example.com`, subject: "s", text: "t" }, { jobId: id, attempts: ATTEMPTS, backoff: { type: "fixed", delay: 20 } });
      return id;
    };

    const before = [await add("before")];
    await settled(queue, before[0]!);
    const requestsBefore = resend.requests.length;

    await resend.outage(mode);
    const during: string[] = [];
    for (let i = 0; i < 6; i++) during.push(await add("during"));
    // More traffic once the outage is under way (the queue is already held off).
    await until("the outage is seen", () => logs.lines.some((l) => l.outcome === "returned"));
    for (let i = 0; i < 6; i++) during.push(await add("during"));
    const all = [...before, ...during];

    // Jobs handed back go to the head of the wait list, so the same few are probed again and again:
    // wait until every job that was tried has been started more often than its attempts allow.
    await until("the probed jobs outlived their attempts", async () => {
      const probed = (await Promise.all(during.map((id) => counters(fleet, id)))).filter((c) => c.started > 0);
      return probed.length > 0 && probed.every((c) => c.started > ATTEMPTS);
    });
    for (const id of during) expect((await counters(fleet, id)).spent, id).toBe(0);
    expect(await queue.getFailedCount()).toBe(0);
    expect(fleet.fleet.outages().email).toMatchObject({ dependency: "resend" });
    if (mode === "refuse") expect(resend.requests.length).toBe(requestsBefore);
    else expect(resend.resets).toBeGreaterThan(ATTEMPTS);
    const [queued] = await database.db.select().from(emailMessages).where(inArray(emailMessages.jobId, during.slice(0, 1)));
    expect(queued).toMatchObject({ status: "queued", error: "resend unreachable application_error" });

    await resend.outage(undefined);
    for (const id of all) {
      const job = await settled(queue, id, 60_000);
      expect(await job.getState(), `${id}: ${job.failedReason}`).toBe("completed");
      expect(job.attemptsMade, id).toBe(1);
    }
    const rows = await database.db.select().from(emailMessages).where(inArray(emailMessages.jobId, all));
    expect(rows.map((r) => [r.jobId, r.status, r.error]).sort()).toEqual(all.map((id) => [id, "sent", null]).sort());
    // Exactly one message per email reached Resend, under the job id as Idempotency-Key.
    const sent = resend.accepted.filter((m) => all.includes(String(m.idempotencyKey)));
    expect(sent.map((m) => m.idempotencyKey).sort()).toEqual([...all].sort());
    expect(fleet.fleet.outages()).toEqual({});
    expect(logs.lines.some((l) => l.msg === "dependency back; queue resumed" && l.dependency === "resend")).toBe(true);
  });
});
