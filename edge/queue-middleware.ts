import { createMiddleware } from "hono/factory";
import type { EnqueuedJob, EnqueueRequest, JobStatus, Producer, Readiness } from "./queue/producer.ts";
import { RedisReplyError, TransportError } from "./queue/transport.ts";
import { ApiError } from "./errors.ts";

/** A producer bound to one Redis connection, which lives as long as one request. */
export interface QueueSession {
  producer: Producer;
  close(): Promise<void>;
}

/** What routes see as `c.var.queue`: the producer, with Redis failures turned into 503s. */
export interface QueueApi {
  add(jobs: readonly EnqueueRequest[]): Promise<EnqueuedJob[]>;
  getJob(queue: string, id: string): Promise<JobStatus | null>;
  ping(): Promise<void>;
  readiness(): Promise<Readiness>;
}

export type QueueVariables = { requestId: string; queue: QueueApi };

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
    c.set("queue", {
      add: (jobs) => guard(() => lazy().add(jobs)),
      getJob: (queue, id) => guard(() => lazy().getJob(queue, id)),
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
