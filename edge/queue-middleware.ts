import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AddResult, EnqueuedJob, EnqueueRequest, JobStatus, Producer, Readiness, RemoveResult } from "./queue/producer.ts";
import { RedisReplyError, TransportError } from "./queue/transport.ts";
import { ApiError } from "./errors.ts";
import { isOver } from "./queue/limiter.ts";
import { rateLimited, type RateLimitVariables } from "./rate-limit.ts";

/** A producer bound to one Redis connection, which lives as long as one request. */
export interface QueueSession {
  producer: Producer;
  close(): Promise<void>;
  /** Called once Redis accepted jobs (edge/wake.ts); a promise it returns runs in `waitUntil`. */
  accepted?: ((queues: readonly string[]) => Promise<void> | undefined) | undefined;
}

/** What routes see as `c.var.queue`: the producer, with Redis failures turned into 503s. */
export interface QueueApi {
  /**
   * Adds the jobs, or answers 503 saying per job what happened. `retryKey` is the request's
   * Idempotency-Key (sent or generated): the 503 tells the caller to retry with it, which derives
   * the same job ids again, so jobs already accepted are not added twice.
   */
  add(jobs: readonly EnqueueRequest[], options?: { retryKey?: string }): Promise<EnqueuedJob[]>;
  getJob(queue: string, id: string): Promise<JobStatus | null>;
  remove(queue: string, id: string): Promise<RemoveResult>;
  ping(): Promise<void>;
  readiness(): Promise<Readiness>;
}

export type QueueVariables = { requestId: string; queue: QueueApi } & RateLimitVariables;

/** Seconds a client should wait before retrying when Redis is unavailable. */
const RETRY_AFTER_SECONDS = "2";

/**
 * Opens the request's Redis session lazily (routes that never enqueue never connect) and closes
 * it in `waitUntil`, so the socket's teardown never delays the response.
 */
export function queueSession(open: () => QueueSession) {
  return createMiddleware<{ Variables: QueueVariables }>(async (c, next) => {
    let session: QueueSession | undefined;
    const lazy = (): Producer => (session ??= open()).producer;
    // Set by the rate-limit middleware, which runs later in the chain but before any route calls these.
    const check = () => c.get("rateLimit");
    c.set("queue", {
      add: async (jobs, options = {}) => {
        const limit = check();
        const results = await lazy().addAll(jobs, limit);
        // Over the limit, the prelude refused every add: say 429, not the 503 a refused add means.
        if (limit && isOver(limit) && results.every((r) => r.outcome === "not_accepted")) throw rateLimited(limit);
        const added = settled(results, options.retryKey);
        const woken = session?.accepted?.(added.map((job) => job.queue));
        if (woken) background(c, woken);
        return added;
      },
      getJob: (queue, id) => limited(check(), () => lazy().getJob(queue, id, check())),
      remove: (queue, id) => limited(check(), () => lazy().remove(queue, id, check())),
      ping: () => guard(() => lazy().ping()),
      readiness: () => guard(() => lazy().readiness()),
    });
    try {
      await next();
    } finally {
      if (session) {
        const closing = session.close().catch(() => {});
        try {
          c.executionCtx.waitUntil(closing);
        } catch {
          await closing; // no execution context (app.request() in tests)
        }
      }
    }
  });
}

/** Work that must not delay the response: `waitUntil` on Workers; on Node it simply runs on. */
function background(c: Context, work: Promise<void>): void {
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    // No execution context (Node, app.request() in tests): the promise never rejects; let it run.
  }
}

/**
 * All accepted: the jobs. Otherwise a retryable 503 that tells the truth per job (`accepted`,
 * `not_accepted`, `unknown`) and how to retry safely.
 */
function settled(results: readonly AddResult[], retryKey: string | undefined): EnqueuedJob[] {
  const refused = results.filter((r) => r.outcome !== "accepted");
  if (refused.length === 0) {
    return results.map(({ id, queue, requeued }) => ({ id, queue, ...(requeued ? { requeued } : {}) }));
  }
  const count = (outcome: AddResult["outcome"]) => results.filter((r) => r.outcome === outcome).length;
  const accepted = count("accepted");
  const unknown = count("unknown");
  const summary =
    accepted === 0 && unknown === 0
      ? "the queue is unavailable; nothing was accepted"
      : `the queue accepted ${accepted} of ${results.length} jobs` +
        (unknown > 0 ? `; ${unknown} may have been accepted (no answer came back)` : "") +
        `; ${count("not_accepted")} were not accepted`;
  const how = retryKey
    ? ` — retry the same request with Idempotency-Key: ${retryKey} (jobs already accepted are not added twice)`
    : " — retry later";
  throw new ApiError("queue_unavailable", summary + how, {
    headers: { "Retry-After": RETRY_AFTER_SECONDS },
    details: {
      jobs: results.map(({ id, queue, outcome }) => ({ id, queue, outcome })),
      ...(retryKey ? { retry: { idempotencyKey: retryKey } } : {}),
    },
    cause: refused[0]?.error,
  });
}

/** The work's outcome, unless the limiter counted the request over its limit: then 429. */
async function limited<T>(limit: RateLimitVariables["rateLimit"], work: () => Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await guard(work);
  } catch (err) {
    if (limit && isOver(limit)) throw rateLimited(limit);
    throw err;
  }
  if (limit && isOver(limit)) throw rateLimited(limit);
  return result;
}

/** Redis trouble becomes a retryable 503; whether the job may already be queued is said plainly. */
async function guard<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof TransportError || err instanceof RedisReplyError) {
      const maybe = err instanceof TransportError && err.maybeEnqueued;
      throw new ApiError(
        "queue_unavailable",
        maybe
          ? "the queue did not confirm the request; it may have been accepted — retry with the same Idempotency-Key"
          : "the queue is unavailable; nothing was accepted — retry later",
        { headers: { "Retry-After": RETRY_AFTER_SECONDS }, cause: err },
      );
    }
    throw err;
  }
}
