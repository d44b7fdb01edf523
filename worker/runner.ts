import { UnrecoverableError, Worker, type Job, type Processor } from "bullmq";
import type { z } from "zod";
import type { JobContract, JobData } from "../shared/jobs/contract.ts";
import type { contracts } from "../shared/jobs/registry.ts";
import { createJobLog, type JobLog } from "./job-log.ts";
import { createOutageGate, findOutage, publicMessage, type OutageBackoff, type OutageGate } from "./outage.ts";

export { DependencyDownError } from "./outage.ts";

/**
 * The one generic runner: contract + plain handler → BullMQ processor. It validates the payload,
 * logs the job (every failure; completed jobs through `JobLog`, which samples them at high rates)
 * and turns failures into the three signals BullMQ understands:
 * - `UnrecoverableError`: the job can never succeed; stop retrying.
 * - a plain error: the job failed this time; retry with the contract's backoff (spends an attempt).
 * - BullMQ's `RateLimitError` after `worker.rateLimit(ms)`: a dependency is down (worker/outage.ts);
 *   the job goes back to wait WITHOUT spending an attempt (BullMQ's moveJobFromActiveToWait leaves
 *   `attemptsMade` alone) and this worker fetches nothing for `ms`.
 * Whatever leaves the process (log line, failedReason) carries `publicMessage`, never payload values.
 */

/** Thrown by handlers for failures no retry can fix (4xx from a provider, unknown template, …). */
export class PermanentError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PermanentError";
  }
}

export type LogRecord = Record<string, string | number | boolean | null | undefined>;
/** One structured line; never handed payloads or secrets. */
export type Log = (level: "info" | "warn" | "error", msg: string, fields?: LogRecord) => void;

export const jsonLog: Log = (level, msg, fields) => {
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
  if (level === "info") process.stdout.write(line + "\n");
  else process.stderr.write(line + "\n");
};

export interface JobContext {
  readonly queue: string;
  readonly jobId: string;
  /** 1 on the first run; BullMQ's attemptsMade counts finished attempts. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** True when a transient failure now would not be retried. */
  readonly isFinalAttempt: boolean;
  readonly log: Log;
}

export type Handler<C extends JobContract> = (data: JobData<C>, ctx: JobContext) => Promise<unknown>;

/** A handler for every contract in the map: leaving one out is a type error. */
export type Handlers<M extends Record<string, JobContract>> = { [K in keyof M]: Handler<M[K]> };
export type FleetHandlers = Handlers<typeof contracts>;

export interface ProcessorOptions {
  log?: Log;
  /**
   * Holds the queue off for `ms` (the fleet passes `worker.rateLimit`). Absent, outages are retried
   * like any other failure — only for unit tests that have no Worker.
   */
  holdOff?: (ms: number) => Promise<void>;
  /** This queue's outage bookkeeping; shared with /readyz. */
  outages?: OutageGate;
  backoff?: OutageBackoff;
  /** Where completed-job lines go (sampled above a rate); default: every queue's own, on `log`. */
  jobLog?: JobLog;
}

export const DEFAULT_OUTAGE_BACKOFF: OutageBackoff = { minMs: 1_000, maxMs: 30_000 };

export function createProcessor<C extends JobContract>(
  contract: C,
  handler: Handler<C>,
  options: ProcessorOptions | Log = {},
): Processor<unknown, unknown> {
  const opts = typeof options === "function" ? { log: options } : options;
  const log = opts.log ?? jsonLog;
  const outages = opts.outages ?? createOutageGate(opts.backoff ?? DEFAULT_OUTAGE_BACKOFF);
  const jobLog = opts.jobLog ?? createJobLog(log);
  return async (job: Job<unknown, unknown>) => {
    const started = performance.now();
    const attempt = job.attemptsMade + 1;
    const maxAttempts = job.opts.attempts ?? 1;
    const fields: LogRecord = {
      queue: contract.queue,
      jobId: job.id,
      name: job.name,
      attempt,
      maxAttempts,
    };
    try {
      const data = parsePayload(contract, job);
      const ctx: JobContext = {
        queue: contract.queue,
        jobId: job.id ?? "",
        attempt,
        maxAttempts,
        isFinalAttempt: attempt >= maxAttempts,
        log,
      };
      const result = await handler(data, ctx);
      const ended = outages.up();
      if (ended) log("info", "dependency back; queue resumed", { queue: contract.queue, dependency: ended.dependency, since: ended.since, jobsReturned: ended.jobsReturned });
      const durationMs = elapsed(started);
      fields.durationMs = durationMs;
      fields.outcome = "completed";
      jobLog.completed(contract.queue, durationMs, fields);
      return result;
    } catch (err) {
      const outage = opts.holdOff ? findOutage(err) : undefined;
      if (outage && opts.holdOff) {
        const holdMs = outages.down(outage);
        log("warn", "dependency down; job returned to wait, no attempt spent", {
          ...fields,
          durationMs: elapsed(started),
          outcome: "returned",
          dependency: outage.dependency,
          holdMs,
          error: publicMessage(err),
        });
        // If Redis itself is down this fails too; BullMQ then retries moving the job on its own.
        await opts.holdOff(holdMs).catch(() => undefined);
        throw Worker.RateLimitError();
      }
      const signal = classify(err);
      const permanent = signal instanceof UnrecoverableError;
      log(permanent || attempt >= maxAttempts ? "error" : "warn", "job failed", {
        ...fields,
        durationMs: elapsed(started),
        outcome: permanent ? "failed-permanently" : attempt >= maxAttempts ? "failed" : "will-retry",
        errorName: err instanceof Error ? err.name : typeof err,
        error: signal.message,
      });
      throw signal;
    }
  };
}

function parsePayload<C extends JobContract>(contract: C, job: Job<unknown, unknown>): JobData<C> {
  if (job.name !== contract.name) {
    throw new PermanentError(`unexpected job name "${job.name}" on queue ${contract.queue}`);
  }
  const parsed = contract.schema.safeParse(job.data);
  if (!parsed.success) {
    // Paths and messages only: zod's messages describe the expectation, not the offending value.
    throw new PermanentError(`invalid payload: ${describeIssues(parsed.error.issues)}`);
  }
  return parsed.data as JobData<C>;
}

function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 10)
    .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

/**
 * The error BullMQ gets: it stops retrying only for `UnrecoverableError` (checked by class or name),
 * and stores the message as `failedReason` (returned by `GET /v1/jobs`) and the stack — so the error
 * is always a fresh one carrying `publicMessage`, never the original with its query parameters.
 */
export function classify(err: unknown): Error {
  const message = publicMessage(err);
  if (err instanceof UnrecoverableError || err instanceof PermanentError || isRefusedValue(err)) {
    return new UnrecoverableError(message);
  }
  return new Error(message);
}

/**
 * Postgres refused a value (SQLSTATE class 22, data exception: NUL in text, out of range, invalid
 * JSON …): the same row is refused on every retry, so retrying only delays the verdict.
 */
function isRefusedValue(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^22[0-9A-Z]{3}$/.test(code)) return true;
  }
  return false;
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}
