import { and, eq, ne, sql } from "drizzle-orm";
import { Resend, type CreateEmailOptions, type ErrorResponse } from "resend";
import { emailMessages } from "../../shared/db/email-messages.ts";
import type { emailContract, EmailRequest } from "../../shared/jobs/email.ts";
import type { Db } from "../db.ts";
import { PermanentError, type Handler, type JobContext } from "../runner.ts";
import { renderTemplate } from "./templates.ts";

export const RESEND_DEFAULT_BASE_URL = "https://api.resend.com";

export interface EmailSettings {
  /** Absent: local capture — messages are logged and stored with provider "capture", never sent. */
  resendApiKey: string | undefined;
  resendBaseUrl: string | undefined;
  emailFrom: string;
}

type Message = Record<string, unknown> & { from: string; to: string[]; subject: string };

/**
 * One `email_messages` row per job (keyed by job id): queued → sent | failed. The Resend
 * `Idempotency-Key` is the job id, so a retried or stalled-and-rerun job never sends twice
 * (Resend keeps keys 24 h); a row already `sent` short-circuits before calling Resend at all.
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
      // Local development: the log line says where to read the full message.
      ctx.log("info", "email captured (RESEND_API_KEY not set)", {
        jobId: ctx.jobId,
        to: message.to.join(", "),
        subject: message.subject,
        storedIn: "email_messages.message",
      });
    } else {
      const { data, error } = await resend.emails.send(message as unknown as CreateEmailOptions, {
        idempotencyKey: ctx.jobId,
      });
      if (error) {
        const failure = resendFailure(error);
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
  "missing_api_key",
  "restricted_api_key",
  "invalid_api_key",
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
 * The SDK returns `{ data, error }` and never throws. Retryable: 429 (rate limit, quota),
 * 409 `concurrent_idempotent_requests` (the same key is still in flight), 5xx, and network
 * failures (statusCode null). Permanent: everything else in 4xx and the names above.
 */
export function resendFailure(error: ErrorResponse): Error {
  const status = typeof error.statusCode === "number" ? error.statusCode : null;
  const text = `resend ${status ?? "network"} ${error.name}: ${error.message}`;
  if (error.name === "concurrent_idempotent_requests") return new Error(text);
  if (PERMANENT_NAMES.has(error.name)) return new PermanentError(text);
  if (status === null || status === 429 || status >= 500) return new Error(text);
  if (status >= 400) return new PermanentError(text);
  return new Error(text);
}

/** Marks the row failed when this failure is the job's last: permanent, or out of attempts. */
async function recordFailure(
  db: Db,
  ctx: JobContext,
  fresh: { provider: string; email: EmailRequest; message: Record<string, unknown> } | undefined,
  err: unknown,
): Promise<void> {
  const final = err instanceof PermanentError || ctx.isFinalAttempt;
  const error = err instanceof Error ? err.message : String(err);
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
