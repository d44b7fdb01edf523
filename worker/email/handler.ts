import { and, eq, ne, sql } from "drizzle-orm";
import { Resend, type CreateEmailOptions, type ErrorResponse } from "resend";
import { emailMessages } from "../../shared/db/email-messages.ts";
import type { emailContract, EmailRequest } from "../../shared/jobs/email.ts";
import type { Db } from "../db.ts";
import { publicMessage } from "../outage.ts";
import { DependencyDownError, PermanentError, type Handler, type JobContext } from "../runner.ts";
import { renderTemplate } from "./templates.ts";

export const RESEND_DEFAULT_BASE_URL = "https://api.resend.com";

/**
 * How long a used-up sending quota (429 `daily_quota_exceeded` / `monthly_quota_exceeded`) holds the
 * email queue before one probe: waiting loses nothing (jobs stay in wait, no attempt spent), and a
 * quota isn't reset by seconds of retries. The runner caps any hold-off at an hour as well.
 */
export const QUOTA_HOLD_MS = 3_600_000;

export interface EmailSettings {
  /**
   * Absent: local capture — messages are stored with provider "capture", never sent. The worker
   * entry only gets here with EMAIL_CAPTURE=1 (worker/env.ts refuses a missing key otherwise).
   */
  resendApiKey: string | undefined;
  resendBaseUrl: string | undefined;
  emailFrom: string;
  /**
   * Bound on one call to Resend (default 20 s); past it Resend counts as unreachable. Keep it below
   * WORKER_LOCK_DURATION_MS so a hung call can't outlive the job's lock.
   */
  requestTimeoutMs?: number;
}

type Message = Record<string, unknown> & { from: string; to: string[]; subject: string };

/**
 * One `email_messages` row per job (keyed by job id): queued → sent | failed; `attempts` counts the
 * handler's runs. The Resend `Idempotency-Key` is the job id, so a retried or stalled-and-rerun job
 * never sends twice (Resend keeps keys 24 h): when Resend accepted a message but the answer was lost,
 * the rerun gets the same email id back and the row ends `sent`. A row already `sent`
 * short-circuits before calling Resend at all.
 *
 * Resend being unreachable, 5xx, rate-limited or out of quota is an outage (`DependencyDownError`):
 * the job goes back to wait without spending an attempt, so an email is never marked failed while
 * Resend may still take it. Only a refusal of the message itself (4xx) fails it.
 */
export function createEmailHandler(db: Db, settings: EmailSettings): Handler<typeof emailContract> {
  // baseUrl is always passed explicitly: left undefined, the SDK would read
  // process.env.RESEND_BASE_URL itself, bypassing the parsed config.
  const resend = settings.resendApiKey
    ? new Resend(settings.resendApiKey, { baseUrl: settings.resendBaseUrl ?? RESEND_DEFAULT_BASE_URL })
    : undefined;
  const provider = resend ? "resend" : "capture";

  return async (email, ctx) => {
    let message: Message;
    try {
      message = buildMessage(email, settings.emailFrom);
    } catch (err) {
      await recordFailure(db, ctx, { provider, email, message: { template: email.template?.name } }, err);
      throw err;
    }

    const [row] = await db
      .insert(emailMessages)
      .values({
        jobId: ctx.jobId,
        status: "queued",
        provider,
        toAddresses: message.to,
        subject: message.subject,
        attempts: 1,
        message,
      })
      .onConflictDoUpdate({
        target: emailMessages.jobId,
        set: { attempts: sql`${emailMessages.attempts} + 1`, updatedAt: sql`now()` },
        // A row already sent is left alone (and returns nothing): this run is a redelivery.
        setWhere: ne(emailMessages.status, "sent"),
      })
      .returning({ status: emailMessages.status });
    if (!row) {
      ctx.log("info", "email already sent; skipping", { queue: ctx.queue, jobId: ctx.jobId });
      return { skipped: true };
    }

    let providerId: string;
    if (!resend) {
      providerId = `capture-${ctx.jobId}`;
      // Local development: the log line says where to read the full message (never its content).
      ctx.log("info", "email captured (EMAIL_CAPTURE=1)", { jobId: ctx.jobId, storedIn: "email_messages.message" });
    } else {
      const { data, error, headers } = await resend.emails.send(message as unknown as CreateEmailOptions, {
        idempotencyKey: ctx.jobId,
        signal: AbortSignal.timeout(settings.requestTimeoutMs ?? 20_000),
      });
      if (error) {
        const failure = resendFailure(error, headers);
        await recordFailure(db, ctx, undefined, failure);
        throw failure;
      }
      providerId = data.id;
    }

    await db
      .update(emailMessages)
      .set({ status: "sent", providerId, sentAt: sql`now()`, updatedAt: sql`now()`, error: null })
      .where(and(eq(emailMessages.jobId, ctx.jobId), ne(emailMessages.status, "sent")));
    return { providerId };
  };
}

function buildMessage(email: EmailRequest, defaultFrom: string): Message {
  const rendered = email.template ? renderTemplate(email.template.name, email.template.data) : undefined;
  const list = (v: string | string[] | undefined) => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);
  const message: Message = {
    from: email.from ?? defaultFrom,
    to: list(email.to) ?? [],
    subject: email.subject,
    html: rendered?.html ?? email.html,
    text: rendered?.text ?? email.text,
    cc: list(email.cc),
    bcc: list(email.bcc),
    replyTo: list(email.replyTo),
    tags: email.tags,
  };
  // Drop absent fields so the stored message (and the request body) holds only what was sent.
  for (const key of Object.keys(message)) if (message[key] === undefined) delete message[key];
  return message;
}

/** Error names that mean "this request can never succeed as sent". */
const PERMANENT_NAMES = new Set<string>([
  "validation_error",
  "invalid_idempotent_request",
  "invalid_idempotency_key",
  "not_found",
  "method_not_allowed",
  "invalid_attachment",
  "invalid_from_address",
  "invalid_access",
  "invalid_parameter",
  "invalid_region",
  "missing_required_field",
  "security_error",
]);

/**
 * The SDK returns `{ data, error, headers }` and never throws; `error.statusCode` is null when
 * nothing came back (refused, reset, timed out). The error says what happened with Resend's status
 * and error `name` only: Resend's free-text `message` can quote the request (addresses), and this
 * text reaches logs, `failedReason` and `email_messages.error`.
 * - outage (DependencyDownError, no attempt spent): network failures, 408, 5xx, 429 (rate limit:
 *   Resend's `retry-after`; used-up daily/monthly quota: QUOTA_HOLD_MS), 409
 *   `concurrent_idempotent_requests` (the same key is still in flight, e.g. a call whose answer was
 *   lost), and a missing, invalid or restricted API key (every email would fail alike);
 * - permanent (PermanentError): every other 4xx, and the names that can never succeed as sent.
 */
export function resendFailure(error: ErrorResponse, headers: Record<string, string> | null = null): Error {
  const status = typeof error.statusCode === "number" ? error.statusCode : null;
  // The name comes from the provider's body: keep it only if it looks like one of Resend's codes.
  const name = typeof error.name === "string" && /^[a-z_]{1,64}$/.test(error.name) ? error.name : "unknown_error";
  const text = `resend ${status ?? "unreachable"} ${name}`;
  const retryAfterMs = parseRetryAfter(headers?.["retry-after"]);
  if (QUOTA_NAMES.has(name)) {
    return new DependencyDownError("resend", `${text}: sending quota used up`, { retryAfterMs: Math.max(retryAfterMs ?? 0, QUOTA_HOLD_MS) });
  }
  // A refused key is the deployment's fault, not the email's: hold the queue until it is fixed.
  if (KEY_NAMES.has(name)) return new DependencyDownError("resend", `${text}: check RESEND_API_KEY`, { retryAfterMs });
  if (name === "concurrent_idempotent_requests") return new DependencyDownError("resend", text, { retryAfterMs });
  if (PERMANENT_NAMES.has(name)) return new PermanentError(text);
  if (status === null || status === 408 || status === 429 || status >= 500) return new DependencyDownError("resend", text, { retryAfterMs });
  return new PermanentError(text);
}

const QUOTA_NAMES = new Set(["daily_quota_exceeded", "monthly_quota_exceeded"]);
const KEY_NAMES = new Set(["missing_api_key", "invalid_api_key", "restricted_api_key"]);

/** `Retry-After` as delta-seconds or an HTTP date, in ms; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(value)) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Marks the row failed when this failure is the job's last: permanent, or out of attempts. */
async function recordFailure(
  db: Db,
  ctx: JobContext,
  fresh: { provider: string; email: EmailRequest; message: Record<string, unknown> } | undefined,
  err: unknown,
): Promise<void> {
  // An outage is never final: the job goes back to wait without spending an attempt.
  const final = err instanceof PermanentError || (ctx.isFinalAttempt && !(err instanceof DependencyDownError));
  const error = publicMessage(err);
  if (fresh) {
    // The message could not even be built: no row exists yet.
    if (!final) return;
    const to = fresh.email.to;
    await db
      .insert(emailMessages)
      .values({
        jobId: ctx.jobId,
        status: "failed",
        provider: fresh.provider,
        toAddresses: Array.isArray(to) ? to : [to],
        subject: fresh.email.subject,
        attempts: ctx.attempt,
        error,
        message: fresh.message,
      })
      .onConflictDoUpdate({
        target: emailMessages.jobId,
        set: { status: "failed", error, attempts: ctx.attempt, updatedAt: sql`now()` },
        setWhere: ne(emailMessages.status, "sent"),
      });
    return;
  }
  await db
    .update(emailMessages)
    .set(final ? { status: "failed", error, updatedAt: sql`now()` } : { error, updatedAt: sql`now()` })
    .where(and(eq(emailMessages.jobId, ctx.jobId), ne(emailMessages.status, "sent")));
}
