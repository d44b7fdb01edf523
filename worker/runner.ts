import { UnrecoverableError, type Job, type Processor } from "bullmq";
import type { z } from "zod";
import type { JobContract, JobData } from "../shared/jobs/contract.ts";
import type { contracts } from "../shared/jobs/registry.ts";

/**
 * The one generic runner: contract + plain handler → BullMQ processor. It validates the payload,
 * writes one log line per job and turns failures into the two signals BullMQ understands:
 * `UnrecoverableError` (stop retrying) or any other error (retry with the contract's backoff).
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

export function createProcessor<C extends JobContract>(
  contract: C,
  handler: Handler<C>,
  log: Log = jsonLog,
): Processor<unknown, unknown> {
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
      log("info", "job completed", { ...fields, durationMs: elapsed(started), outcome: "completed" });
      return result;
    } catch (err) {
      const signal = classify(err);
      const permanent = signal instanceof UnrecoverableError;
      log(permanent || attempt >= maxAttempts ? "error" : "warn", "job failed", {
        ...fields,
        durationMs: elapsed(started),
        outcome: permanent ? "failed-permanently" : attempt >= maxAttempts ? "failed" : "will-retry",
        errorName: err instanceof Error ? err.name : typeof err,
        // Messages are ours or a provider's error text, not payloads; capped so a runaway message
        // can't flood the log.
        error: signal.message.slice(0, 500),
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

/** BullMQ stops retrying only for `UnrecoverableError` (checked by class or name). */
export function classify(err: unknown): Error {
  if (err instanceof UnrecoverableError) return err;
  if (err instanceof PermanentError) return new UnrecoverableError(err.message);
  if (err instanceof Error) return err;
  return new Error(typeof err === "string" ? err : "non-Error thrown");
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}
