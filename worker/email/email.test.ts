import { eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { emailMessages } from "../../shared/db/email-messages.ts";
import { emailContract, type EmailRequest } from "../../shared/jobs/email.ts";
import { createAuditHandler } from "../audit/handler.ts";
import type { Database } from "../db.ts";
import { createStripeWebhookHandler } from "../stripe/handler.ts";
import { resendError, startFakeResend, type FakeResend } from "../testing/fake-resend.ts";
import { memoryLog, settled, startTestFleet, testDb, uniqueId, type TestFleet } from "../testing/fixtures.ts";
import { PermanentError } from "../runner.ts";
import { createEmailHandler, resendFailure, type EmailSettings } from "./handler.ts";

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
});

async function start(settings: Partial<EmailSettings> = {}, emailRatePerSecond = 100) {
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
      log: logs.log,
    },
    { queues: ["email"], emailRatePerSecond },
  );
  return t;
}

/** Adds an email job with a fast fixed backoff so retries happen within the test. */
async function send(fleet: TestFleet, email: EmailRequest) {
  const jobId = uniqueId("mail");
  await fleet.add(emailContract, email, { jobId, backoff: { type: "fixed", delay: 50 } });
  const job = await settled(fleet.queue("email"), jobId);
  const [row] = await database.db.select().from(emailMessages).where(eq(emailMessages.jobId, jobId));
  return { jobId, job, row };
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

  it("retries after a Resend 500 and sends once", async () => {
    const fleet = await start();
    resend.respond(resendError(500, "internal_server_error"), { status: 200, body: { id: "re_msg_2" } });
    const { jobId, job, row } = await send(fleet, hello);
    expect(await job.getState()).toBe("completed");
    // attemptsMade counts finished runs, the successful one included.
    expect(job.attemptsMade).toBe(2);
    expect(resend.requests).toHaveLength(2);
    expect(resend.requests.map((r) => r.headers["idempotency-key"])).toEqual([jobId, jobId]);
    expect(row).toMatchObject({ status: "sent", providerId: "re_msg_2", attempts: 2 });
  });

  it("retries a 429 and a concurrent_idempotent_requests 409", async () => {
    const fleet = await start();
    resend.respond(resendError(429, "rate_limit_exceeded"), resendError(409, "concurrent_idempotent_requests"));
    const { job, row } = await send(fleet, hello);
    expect(await job.getState()).toBe("completed");
    expect(resend.requests).toHaveLength(3);
    expect(row).toMatchObject({ status: "sent", attempts: 3 });
  });

  it("fails permanently on a 422 validation error and marks the row failed", async () => {
    const fleet = await start();
    resend.respond(resendError(422, "validation_error", "Invalid `to` field."));
    const { job, row } = await send(fleet, hello);
    expect(await job.getState()).toBe("failed");
    expect(job.attemptsMade).toBe(1);
    expect(resend.requests).toHaveLength(1);
    expect(row).toMatchObject({ status: "failed", attempts: 1, providerId: null });
    expect(row?.error).toContain("validation_error");
  });

  it("marks the row failed after the last transient failure", async () => {
    const fleet = await start();
    resend.respond(...Array.from({ length: 3 }, () => resendError(503, "application_error")));
    const { job, row } = await send(fleet, hello);
    expect(await job.getState()).toBe("failed");
    expect(job.attemptsMade).toBe(3);
    expect(row).toMatchObject({ status: "failed", attempts: 3 });
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
    expect(job.failedReason).toContain('unknown email template "nope"');
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
    expect(logs.lines.some((l) => l.msg === "email captured (RESEND_API_KEY not set)" && l.jobId === jobId)).toBe(true);
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

describe("resendFailure", () => {
  it.each([
    [429, "rate_limit_exceeded", false],
    [409, "concurrent_idempotent_requests", false],
    [500, "internal_server_error", false],
    [null, "application_error", false],
    [422, "validation_error", true],
    [409, "invalid_idempotent_request", true],
    [403, "invalid_api_key", true],
    [404, "not_found", true],
  ] as const)("status %s %s → permanent: %s", (statusCode, name, permanent) => {
    const err = resendFailure({ statusCode, name, message: "m" });
    expect(err instanceof PermanentError).toBe(permanent);
    expect(err.message).toContain(name);
  });
});
