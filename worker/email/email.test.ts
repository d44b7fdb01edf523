import { eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { emailMessages } from "../../shared/db/email-messages.ts";
import { emailContract, type EmailRequest } from "../../shared/jobs/email.ts";
import { createAuditHandler } from "../audit/handler.ts";
import type { Database } from "../db.ts";
import { createStripeWebhookHandler } from "../stripe/handler.ts";
import { resendError, startFakeResend, type FakeResend } from "../../tools/testing/fake-resend.ts";
import { memoryLog, settled, startTestFleet, testDb, uniqueId, type TestFleet } from "../../tools/testing/fixtures.ts";
import { DependencyDownError, PermanentError, type Log } from "../runner.ts";
import { createEmailHandler, parseRetryAfter, QUOTA_HOLD_MS, resendFailure, type EmailSettings } from "./handler.ts";

let database: Database;
let resend: FakeResend;
let t: TestFleet | undefined;
const logs = memoryLog();

beforeAll(async () => {
  database = testDb();
  resend = await startFakeResend();
});
afterAll(async () => {
  await resend.close();
  await database.close();
});
afterEach(async () => {
  await t?.stop();
  t = undefined;
  resend.requests.length = 0;
  resend.accepted.length = 0;
});

async function start(settings: Partial<EmailSettings> = {}, emailRatePerSecond = 100, log: Log = logs.log) {
  t = await startTestFleet(
    {
      handlers: {
        audit: createAuditHandler(database.db).handle,
        email: createEmailHandler(database.db, {
          resendApiKey: "re_test_key",
          resendBaseUrl: resend.url,
          emailFrom: "Edgefleet <noreply@example.com>",
          ...settings,
        }),
        "stripe-webhook": createStripeWebhookHandler(database.db),
      },
      scripts: [],
      log,
    },
    // Outages hold the queue off briefly here, so a returned job is tried again within the test.
    { queues: ["email"], emailRatePerSecond, outageBackoffMinMs: 20, outageBackoffMaxMs: 200 },
  );
  return t;
}

/** Adds an email job with a fast fixed backoff so retries happen within the test. */
async function send(fleet: TestFleet, email: EmailRequest, opts: { attempts?: number } = {}) {
  const jobId = uniqueId("mail");
  await fleet.add(emailContract, email, { jobId, backoff: { type: "fixed", delay: 50 }, ...opts });
  const job = await settled(fleet.queue("email"), jobId);
  const [row] = await database.db.select().from(emailMessages).where(eq(emailMessages.jobId, jobId));
  return { jobId, job, row };
}

/** The runner's "returned to wait" lines for one job: one per run handed back during an outage. */
function returned(jobId: string) {
  return logs.lines.filter((l) => l.jobId === jobId && l.outcome === "returned");
}

const hello: EmailRequest = { to: "ada@example.com", subject: "Hello", text: "Hi Ada" };

describe("email queue", () => {
  it("sends through Resend with the job id as Idempotency-Key and records the provider id", async () => {
    const fleet = await start();
    resend.respond({ status: 200, body: { id: "re_msg_1" } });
    const { jobId, job, row } = await send(fleet, hello);
    expect(await job.getState()).toBe("completed");
    expect(resend.requests).toHaveLength(1);
    const [req] = resend.requests;
    expect(req).toMatchObject({ method: "POST", path: "/emails" });
    expect(req?.headers["idempotency-key"]).toBe(jobId);
    expect(req?.headers.authorization).toBe("Bearer re_test_key");
    expect(req?.body).toMatchObject({ from: "Edgefleet <noreply@example.com>", to: ["ada@example.com"], subject: "Hello", text: "Hi Ada" });
    expect(row).toMatchObject({ status: "sent", provider: "resend", providerId: "re_msg_1", attempts: 1, error: null });
    expect(row?.sentAt).toBeInstanceOf(Date);
  });

  it("hands the job back after a Resend 500 without spending an attempt, then sends once", async () => {
    const fleet = await start();
    resend.respond(resendError(500, "internal_server_error"), { status: 200, body: { id: "re_msg_2" } });
    const { jobId, job, row } = await send(fleet, hello);
    expect(await job.getState()).toBe("completed");
    // attemptsMade counts finished attempts, the successful one included: the 500 spent none.
    expect(job.attemptsMade).toBe(1);
    expect(resend.requests).toHaveLength(2);
    expect(resend.requests.map((r) => r.headers["idempotency-key"])).toEqual([jobId, jobId]);
    // The row counts the handler's runs.
    expect(row).toMatchObject({ status: "sent", providerId: "re_msg_2", attempts: 2, error: null });
    expect(returned(jobId).map((l) => [l.dependency, l.error])).toEqual([["resend", "resend 500 internal_server_error"]]);
  });

  it("waits out a 429 for Resend's retry-after and a concurrent_idempotent_requests 409, spending no attempt", async () => {
    const fleet = await start();
    resend.respond(
      resendError(429, "rate_limit_exceeded", "Too many requests", { "retry-after": "1" }),
      resendError(409, "concurrent_idempotent_requests"),
    );
    const { jobId, job, row } = await send(fleet, hello);
    expect(await job.getState()).toBe("completed");
    expect(job.attemptsMade).toBe(1);
    expect(resend.requests).toHaveLength(3);
    expect(row).toMatchObject({ status: "sent", attempts: 3 });
    const lines = returned(jobId);
    expect(lines.map((l) => l.error)).toEqual(["resend 429 rate_limit_exceeded", "resend 409 concurrent_idempotent_requests"]);
    // Resend's retry-after (1 s) beats the test's 20–200 ms hold-off, and the queue really waited.
    expect(lines[0]?.holdMs).toBe(1_000);
    expect(resend.requests[1]!.at - resend.requests[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it("holds the queue for an hour on a used-up daily quota instead of failing the email", async () => {
    const fleet = await start();
    resend.respond(resendError(429, "daily_quota_exceeded", "You have reached your daily email sending quota."));
    const jobId = uniqueId("quota");
    await fleet.add(emailContract, hello, { jobId, attempts: 1 });
    await resend.waitForRequests(1);
    await until(() => returned(jobId).length === 1);
    expect(returned(jobId)[0]).toMatchObject({ holdMs: QUOTA_HOLD_MS, error: "resend 429 daily_quota_exceeded: sending quota used up" });
    const job = await fleet.queue("email").getJob(jobId);
    expect(await job?.getState()).toBe("waiting");
    expect(job?.attemptsMade).toBe(0);
    expect(fleet.fleet.outages().email).toMatchObject({ dependency: "resend", backoffMs: QUOTA_HOLD_MS });
    const [row] = await database.db.select().from(emailMessages).where(eq(emailMessages.jobId, jobId));
    expect(row).toMatchObject({ status: "queued", error: "resend 429 daily_quota_exceeded: sending quota used up" });
    expect(resend.requests).toHaveLength(1);
  });

  it("fails permanently on a 422 validation error and marks the row failed", async () => {
    const fleet = await start();
    resend.respond(resendError(422, "validation_error", "Invalid `to` field."));
    const { job, row } = await send(fleet, hello);
    expect(await job.getState()).toBe("failed");
    expect(job.attemptsMade).toBe(1);
    expect(job.failedReason).toBe("resend 422 validation_error");
    expect(resend.requests).toHaveLength(1);
    expect(row).toMatchObject({ status: "failed", attempts: 1, providerId: null, error: "resend 422 validation_error" });
  });

  it("a Resend outage longer than the retry budget spends no attempt: the email is sent once Resend answers", async () => {
    const fleet = await start();
    // Five 503s for a job with 3 attempts: counted as attempts, it would fail at the third.
    resend.respond(...Array.from({ length: 5 }, () => resendError(503, "application_error")));
    const { jobId, job, row } = await send(fleet, hello, { attempts: 3 });
    expect(await job.getState()).toBe("completed");
    expect(job.attemptsMade).toBe(1);
    expect(resend.requests).toHaveLength(6);
    expect(new Set(resend.requests.map((r) => r.headers["idempotency-key"]))).toEqual(new Set([jobId]));
    expect(resend.accepted.map((m) => m.idempotencyKey)).toEqual([jobId]);
    expect(returned(jobId).map((l) => l.error)).toEqual(Array.from({ length: 5 }, () => "resend 503 application_error"));
    expect(row).toMatchObject({ status: "sent", attempts: 6, error: null });
  });

  it("an email whose answer is lost after Resend accepted it ends sent, sent once (last attempt)", async () => {
    const fleet = await start();
    resend.respond({ status: 200, body: { id: "re_accepted" }, dropAfterAccept: true });
    const { jobId, job, row } = await send(fleet, hello, { attempts: 1 });
    expect(await job.getState()).toBe("completed");
    expect(job.attemptsMade).toBe(1);
    // The replay under the same Idempotency-Key got Resend's first answer back.
    expect(resend.requests.map((r) => r.headers["idempotency-key"])).toEqual([jobId, jobId]);
    expect(resend.accepted).toEqual([expect.objectContaining({ id: "re_accepted", idempotencyKey: jobId })]);
    expect(returned(jobId).map((l) => l.error)).toEqual(["resend unreachable application_error"]);
    expect(row).toMatchObject({ status: "sent", providerId: "re_accepted", error: null });
  });

  it("treats a Resend call that outlives its timeout as unreachable and sends the email once", async () => {
    const fleet = await start({ requestTimeoutMs: 300 });
    resend.respond({ status: 200, body: { id: "re_slow" }, delayMs: 1_500 });
    const { jobId, job, row } = await send(fleet, hello, { attempts: 1 });
    expect(await job.getState()).toBe("completed");
    expect(resend.accepted.map((m) => [m.id, m.idempotencyKey])).toEqual([["re_slow", jobId]]);
    expect(returned(jobId)[0]?.error).toBe("resend unreachable application_error");
    expect(row).toMatchObject({ status: "sent", providerId: "re_slow" });
  });

  it("renders a built-in template with the data HTML-escaped", async () => {
    const fleet = await start();
    const { row } = await send(fleet, {
      to: ["bob@example.com"],
      subject: "Welcome",
      template: { name: "welcome", data: { name: "<Bob & co>", loginUrl: "https://app.example.com/login" } },
    });
    expect(row?.status).toBe("sent");
    const html = String(resend.requests[0]?.body.html);
    expect(html).toContain("&lt;Bob &amp; co&gt;");
    expect(html).not.toContain("<Bob");
    expect(html).toContain('href="https://app.example.com/login"');
    expect(resend.requests[0]?.body.text).toContain("Welcome to edgefleet, <Bob & co>!");
  });

  it("fails an unknown template permanently without calling Resend", async () => {
    const fleet = await start();
    const { job, row } = await send(fleet, { to: "c@example.com", subject: "x", template: { name: "nope", data: {} } });
    expect(await job.getState()).toBe("failed");
    expect(job.attemptsMade).toBe(1);
    expect(job.failedReason).toBe("unknown email template (known: welcome, password-reset)");
    expect(resend.requests).toHaveLength(0);
    expect(row).toMatchObject({ status: "failed" });
  });

  it("captures the message locally when no API key is set", async () => {
    const fleet = await start({ resendApiKey: undefined });
    const { jobId, job, row } = await send(fleet, { ...hello, html: undefined, text: "Captured body" });
    expect(await job.getState()).toBe("completed");
    expect(resend.requests).toHaveLength(0);
    expect(row).toMatchObject({
      status: "sent",
      provider: "capture",
      providerId: `capture-${jobId}`,
      toAddresses: ["ada@example.com"],
      message: { subject: "Hello", text: "Captured body", to: ["ada@example.com"] },
    });
    const line = logs.lines.find((l) => l.msg === "email captured (EMAIL_CAPTURE=1)" && l.jobId === jobId);
    expect(line).toEqual({ level: "info", msg: "email captured (EMAIL_CAPTURE=1)", jobId, storedIn: "email_messages.message" });
  });

  it("limits the email queue to EMAIL_RATE_PER_SECOND", async () => {
    const fleet = await start({}, 2);
    const started = Date.now();
    const ids = await Promise.all(
      [1, 2, 3, 4, 5].map(async () => (await fleet.add(emailContract, hello, { jobId: uniqueId("rl") })).id!),
    );
    await Promise.all(ids.map((id) => settled(fleet.queue("email"), id)));
    // 5 jobs at 2 per second need at least two full windows after the first two.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
    expect(resend.requests).toHaveLength(5);
  });
});

/** Polls for a condition (no fixed sleeps). */
async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("what a failing email leaves behind", () => {
  // Distinctive strings from the job's payload; none may leave the process.
  const to = "leak-canary-7f3a@secret.example";
  const subject = "Subject canary 91b2";
  const html = "<p>Body canary c44e</p>";
  const sensitive = [to, "leak-canary-7f3a", subject, "canary 91b2", "Body canary c44e"];

  function expectNoLeak(texts: Array<string | null | undefined>) {
    const all = texts.map((x) => x ?? "").join("\n");
    for (const secret of sensitive) expect(all).not.toContain(secret);
  }

  it("a permanent 4xx whose message quotes the address: logs, failedReason, stack and row carry none of the payload", async () => {
    const own = memoryLog();
    const fleet = await start({}, 100, own.log);
    resend.respond(resendError(422, "validation_error", `Invalid \`to\` field: ${to} (subject "${subject}")`));
    const { job, row } = await send(fleet, { to, subject, html });
    expect(await job.getState()).toBe("failed");
    expect(resend.requests[0]?.body).toMatchObject({ to: [to], subject, html }); // the canaries did travel
    expect(own.lines.length).toBeGreaterThan(0);
    expectNoLeak([JSON.stringify(own.lines), job.failedReason, ...(job.stacktrace ?? []), row?.error]);
    expect(job.failedReason).toBe("resend 422 validation_error");
  });

  it("a database failure on the email's own values: logs, failedReason and stack carry none of the payload", async () => {
    const own = memoryLog();
    const fleet = await start({}, 100, own.log);
    // Postgres refuses NUL in text (SQLSTATE 22021); Drizzle's error message embeds every parameter.
    const { jobId, job, row } = await send(fleet, { to, subject: `${subject}\u0000`, html }, { attempts: 2 });
    expect(await job.getState()).toBe("failed");
    expect(job.stacktrace?.length).toBeGreaterThan(0);
    expectNoLeak([JSON.stringify(own.lines), job.failedReason, ...(job.stacktrace ?? [])]);
    expect(row).toBeUndefined();
    expect(job.failedReason).toMatch(/^database error 22021/);
    // One log line per attempt made (a value Postgres refuses fails at once; retried, each would log).
    expect(own.lines.filter((l) => l.msg === "job failed")).toHaveLength(job.attemptsMade);
    expect(resend.requests.filter((r) => r.headers["idempotency-key"] === jobId)).toHaveLength(0);
  });
});

describe("resendFailure", () => {
  it.each([
    [429, "rate_limit_exceeded", "outage"],
    [429, "daily_quota_exceeded", "outage"],
    [429, "monthly_quota_exceeded", "outage"],
    [409, "concurrent_idempotent_requests", "outage"],
    [500, "internal_server_error", "outage"],
    [502, "application_error", "outage"],
    [null, "application_error", "outage"],
    [403, "invalid_api_key", "outage"],
    [401, "missing_api_key", "outage"],
    [422, "validation_error", "permanent"],
    [409, "invalid_idempotent_request", "permanent"],
    [404, "not_found", "permanent"],
    [400, "some_future_error", "permanent"],
  ] as const)("status %s %s → %s", (statusCode, name, kind) => {
    const err = resendFailure({ statusCode, name: name as never, message: "Invalid `to`: ada@example.com" });
    expect(err).toBeInstanceOf(kind === "outage" ? DependencyDownError : PermanentError);
    expect(err.message).toContain(`resend ${statusCode ?? "unreachable"} ${name}`);
    expect(err.message).not.toContain("ada@example.com");
  });

  it("takes Resend's retry-after, and holds at least an hour on a used-up quota", () => {
    const limited = resendFailure({ statusCode: 429, name: "rate_limit_exceeded", message: "m" }, { "retry-after": "2" });
    expect((limited as DependencyDownError).retryAfterMs).toBe(2_000);
    const quota = resendFailure({ statusCode: 429, name: "daily_quota_exceeded", message: "m" }, { "retry-after": "5" });
    expect((quota as DependencyDownError).retryAfterMs).toBe(QUOTA_HOLD_MS);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(parseRetryAfter("soon")).toBeUndefined();
  });

  it("keeps only a code-shaped error name from the provider's body", () => {
    const err = resendFailure({ statusCode: 400, name: "to ada@example.com is wrong" as never, message: "m" });
    expect(err.message).toBe("resend 400 unknown_error");
  });
});
