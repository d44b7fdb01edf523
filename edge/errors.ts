import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";

/**
 * The closed list of error codes the API answers with. Codes are stable: clients branch on them.
 * Statuses: 4xx = the request is wrong and must change; 503 = try again later, unchanged.
 */
export const ERROR_STATUS = {
  invalid_json: 400,
  validation_failed: 400,
  invalid_idempotency_key: 400,
  invalid_signature: 400,
  unauthorized: 401,
  /** Authenticated, but the credential lacks the route's scope (named in `scope`), or the account. */
  forbidden: 403,
  not_found: 404,
  /** DELETE of a job a worker is running: it can no longer be cancelled. */
  job_active: 409,
  /** DELETE of a job that a BullMQ job scheduler owns (remove the scheduler instead). */
  job_scheduled: 409,
  payload_too_large: 413,
  /** A body route got a Content-Type other than application/json. */
  unsupported_media_type: 415,
  /** The caller passed its rate limit for this route; `Retry-After` says when the window resets. */
  rate_limited: 429,
  queue_unavailable: 503,
  /** A feature's secret is not deployed (e.g. STRIPE_WEBHOOK_SECRET); the sender should retry later. */
  webhooks_not_configured: 503,
  /** End-user tokens cannot be checked: the JWKS URL does not answer; retry. */
  auth_unavailable: 503,
  internal_error: 500,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface FieldIssue {
  field: string;
  message: string;
}

export class ApiError extends Error {
  readonly code: ErrorCode;
  /** The request field at fault, in `events[2].payload` form, when one is. */
  readonly field: string | undefined;
  readonly issues: FieldIssue[] | undefined;
  readonly headers: Record<string, string>;
  /** More members of the error body (e.g. per-job outcomes); ids and codes only, never payloads. */
  readonly details: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    extra: {
      field?: string;
      issues?: FieldIssue[];
      headers?: Record<string, string>;
      details?: Record<string, unknown>;
      cause?: unknown;
    } = {},
  ) {
    super(message, { cause: extra.cause });
    this.name = "ApiError";
    this.code = code;
    this.field = extra.field;
    this.issues = extra.issues;
    this.headers = extra.headers ?? {};
    this.details = extra.details ?? {};
  }

  get status(): ContentfulStatusCode {
    return ERROR_STATUS[this.code];
  }
}

/** `["events", 2, "payload"]` → `events[2].payload`; the root is `body`. */
export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || "body";
}

export function validationError(error: z.ZodError, prefix: ReadonlyArray<PropertyKey> = []): ApiError {
  const issues = error.issues.slice(0, 20).map((issue) => {
    const field = fieldPath([...prefix, ...issue.path]);
    // zod's messages for unknown keys name the keys but not where they are.
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [];
    return keys.length === 1
      ? { field: fieldPath([...prefix, ...issue.path, keys[0] as string]), message: "unknown field" }
      : { field, message: issue.message };
  });
  const first = issues[0] ?? { field: "body", message: "invalid" };
  return new ApiError("validation_failed", `${first.field}: ${first.message}`, { field: first.field, issues });
}

export function errorBody(c: Context, error: ApiError) {
  return {
    error: {
      code: error.code,
      message: error.message,
      requestId: c.get("requestId") as string,
      ...(error.field ? { field: error.field } : {}),
      ...(error.issues && error.issues.length > 1 ? { issues: error.issues } : {}),
      ...error.details,
    },
  };
}

/** The app's one error handler: ApiErrors answer as themselves, anything else is logged as a 500. */
export function onError(err: Error, c: Context): Response {
  const error =
    err instanceof ApiError ? err : new ApiError("internal_error", "internal error", { cause: err });
  if (error.status >= 500) {
    console.error(JSON.stringify({
      level: "error",
      requestId: c.get("requestId"),
      code: error.code,
      // Messages come from our own code and transports, never from request bodies or secrets.
      error: err instanceof ApiError && err.cause instanceof Error ? err.cause.message : err.message,
    }));
  }
  for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
  return c.json(errorBody(c, error), error.status);
}
