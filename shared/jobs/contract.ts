import type { z } from "zod";

/**
 * The registered queue names, derived from shared/jobs/registry.ts (the one place a contract is
 * registered). Type-only, so importing it here creates no runtime dependency on the registry.
 */
import type { QueueName } from "./registry.ts";
export type { QueueName };

/** Key prefix shared by producer and workers; BullMQ's own default. Configurable per deployment. */
export const DEFAULT_QUEUE_PREFIX = "bull";

/** What the edge and the fleet both accept as a prefix: no ':' (BullMQ's key separator), no spaces. */
export const QUEUE_PREFIX_PATTERN = /^[\w.-]{1,64}$/;

/** BullMQ's KeepJobs: true/false, a count, or an age in seconds and/or a count. */
export type KeepJobs = boolean | number | { age: number; count?: number } | { age?: number; count: number };

/**
 * The subset of BullMQ's JobsOptions the edge producer supports. Field names and meanings are
 * BullMQ's own, so a contract's defaults can be handed to `Queue.add` unchanged.
 */
export interface JobOptions {
  jobId?: string;
  attempts?: number;
  backoff?: number | { type: "fixed" | "exponential"; delay?: number; jitter?: number };
  /** Milliseconds before the job becomes available to workers. */
  delay?: number;
  /** 1 (highest) … 2_097_152; 0 or absent means no priority. */
  priority?: number;
  lifo?: boolean;
  removeOnComplete?: KeepJobs;
  removeOnFail?: KeepJobs;
  /**
   * BullMQ's deduplication: while the key `<prefix>:<queue>:de:<id>` exists, adding another job
   * with the same `id` adds nothing and answers the existing job's id. Without `ttl` (simple mode)
   * the key lasts until that job completes or fails; with `ttl` (throttle mode, ms) it lasts `ttl`
   * whatever the job does. Set per contract (`JobContract.deduplication`), not by callers.
   */
  deduplication?: { id: string; ttl?: number };
}

/**
 * How a contract derives BullMQ deduplication for each job: at most one job per `id(data)` until
 * that job finishes (simple mode), or per `ttlMs` window (throttle mode).
 */
export interface Deduplication<Data> {
  /** The key jobs are deduplicated on, from the validated payload (e.g. account + month). */
  id(data: Data): string;
  /** Throttle window in ms; absent = until the job holding the key completes or fails. */
  readonly ttlMs?: number;
}

/** How the edge serves a contract at `POST/DELETE /v1/jobs/<queue>`. */
export interface EdgeExposure {
  /** Longest `delay` a caller may ask for, ms. Default 30 days. */
  readonly maxDelayMs?: number;
  /** Whether callers may set `priority`. Default true. */
  readonly priority?: boolean;
}

/**
 * One job type: which queue it lives on, the job name, its payload schema, default options, and
 * whether the edge serves it. The producer takes `z.input<Schema>`; the handler receives
 * `z.output<Schema>`. The queue name is a literal type: the registry derives `QueueName` from it.
 */
export interface JobContract<Schema extends z.ZodType = z.ZodType, Queue extends string = QueueName> {
  readonly queue: Queue;
  readonly name: string;
  readonly schema: Schema;
  readonly defaults: Readonly<JobOptions>;
  readonly deduplication?: Deduplication<z.output<Schema>>;
  /** Present: callers may enqueue (and cancel) these jobs at `/v1/jobs/<queue>` with `data` = the schema's input. */
  readonly edge?: EdgeExposure;
}

/**
 * Declares a contract. The result keeps the literal queue name and whether `edge` is set, so the
 * registry can derive both the queue-name type and the exposed queues from it.
 */
export function defineJob<Schema extends z.ZodType, const Queue extends string, const Edge extends EdgeExposure | undefined = undefined>(
  contract: JobContract<Schema, Queue> & { readonly edge?: Edge },
): JobContract<Schema, Queue> & { readonly edge: Edge } {
  const problem = queueNameProblem(contract.queue);
  if (problem) throw new Error(`job contract "${contract.name}": queue name "${contract.queue}" ${problem}`);
  return contract as JobContract<Schema, Queue> & { readonly edge: Edge };
}

/**
 * Queue names become key segments (`<prefix>:<queue>:…`) and URL segments (`/v1/jobs/<queue>`):
 * lower-case letters, digits and `-`, no `:`. `edgefleet` is taken by the fleet's own marker hash
 * `<prefix>:edgefleet:fleet` (worker/fleet.ts), which a queue of that name would share keys with.
 */
export function queueNameProblem(queue: string): string | undefined {
  if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(queue)) return "must be 1–64 of a-z 0-9 - (starting with a letter or digit)";
  if (queue === "edgefleet") return "is reserved for the fleet's own keys";
  return undefined;
}

/** The options a contract adds to every job from its payload (today: deduplication). */
export function contractOptions<C extends JobContract>(contract: C, data: JobData<C>): JobOptions {
  const dedup = contract.deduplication;
  if (!dedup) return {};
  // `ttl` only when set: BullMQ packs the object as given, and an explicit undefined would reach
  // Redis as nil, which Queue.add never sends.
  return { deduplication: { id: dedup.id(data), ...(dedup.ttlMs !== undefined ? { ttl: dedup.ttlMs } : {}) } };
}

export type JobInput<C extends JobContract> = z.input<C["schema"]>;
export type JobData<C extends JobContract> = z.output<C["schema"]>;

/**
 * BullMQ job ids must not contain ':' (it is the key separator) and must not be all digits
 * (those collide with BullMQ's own counter ids). Caller-supplied keys are checked against this.
 */
export const JOB_ID_PATTERN = /^(?!\d+$)[A-Za-z0-9_\-.~]{1,200}$/;

/**
 * Names a job id must never take. A job's hash lives at `<prefix>:<queue>:<id>`, the same place as
 * the queue's own keys `<prefix>:<queue>:<type>`: a job called "active" overwrites the active list
 * (every later job fails with WRONGTYPE), "wait" breaks every add, "meta" makes a job out of the
 * queue's settings. The list is every type bullmq 6.7.0's `QueueKeys.getKeys` produces (a node
 * test asserts that, so a bullmq bump that adds one fails CI), plus the colon-free key types its
 * scripts and classes build by hand: `priority` and `delay` (legacy keys still cleaned up by
 * obliterate), and `metrics` (the stem of `metrics:completed`). Keys with a ':' after the type
 * (`<id>:logs`, `repeat:<k>`, `de:<k>` …) cannot collide: ids never contain ':'.
 */
export const RESERVED_JOB_IDS: ReadonlySet<string> = new Set([
  "active", "wait", "waiting-children", "paused", "id", "delayed", "prioritized", "stalled-check",
  "completed", "failed", "stalled", "repeat", "limiter", "meta", "events", "pc", "marker", "de",
  "priority", "delay", "metrics",
]);

/** Whether a caller-chosen id may name a job: the id alphabet, and none of the queue's own keys. */
export function isValidJobId(id: string): boolean {
  return JOB_ID_PATTERN.test(id) && !RESERVED_JOB_IDS.has(id);
}

/** Why `id` is refused, for a 400 message; undefined when it is valid. Never echoes the id. */
export function jobIdProblem(id: string): string | undefined {
  if (RESERVED_JOB_IDS.has(id)) return "is reserved: it names one of the queue's own keys in BullMQ";
  if (!JOB_ID_PATTERN.test(id)) return "must be 1–200 of A-Z a-z 0-9 _ - . ~ and not all digits";
  return undefined;
}
