/**
 * Builds the exact KEYS/ARGV that bullmq 6.7.0's `Queue.add` sends, without the bullmq runtime.
 *
 * Mirrors, step by step: `Queue.addJob` (merge default options, set `jobId`), the `Job`
 * constructor (`attempts: 0` first, `Backoffs.normalize`), `Job.validateOptions`,
 * `RedisQueueBackend.addJobToTransaction` (script choice and the packed args array) and
 * `optsAsJSON` (drop undefined). Key ORDER matters: msgpack keeps insertion order, and the
 * conformance test compares bytes, so the object operations below copy BullMQ's literally.
 */
import { Packr } from "msgpackr/pack";
import { RESERVED_JOB_IDS, type JobOptions } from "../../shared/jobs/contract.ts";
import {
  addDelayedJobScript,
  addPrioritizedJobScript,
  addStandardJobScript,
} from "../../shared/jobs/bullmq-scripts.ts";
import type { ScriptCall } from "./transport.ts";

// The same options BullMQ uses; `encodeUndefinedAsNil` makes absent parent/repeat fields nil.
const packer = new Packr({ useRecords: false, encodeUndefinedAsNil: true });

/** BullMQ's PRIORITY_LIMIT (2^21 − 1). */
const PRIORITY_LIMIT = 2 ** 21 - 1;

/**
 * Options BullMQ would store for a plain add. Anything else (parent, repeat …) is dropped so a
 * caller cannot smuggle flow or scheduler options past the contract type.
 */
const SUPPORTED = new Set<string>([
  "jobId", "attempts", "backoff", "delay", "priority", "lifo", "removeOnComplete", "removeOnFail", "deduplication",
]);

/** BullMQ's optsEncodeMap, for the options we support: stored under a short key, in place. */
const STORED_AS: Readonly<Record<string, string>> = { deduplication: "de" };

/**
 * The deduplication modes supported: simple ({id}) and throttle ({id, ttl}). BullMQ's debounce
 * flags (extend, replace, reschedule, keepLastIfActive) are refused rather than dropped, because
 * dropping one would silently change what the caller asked for.
 */
const DEDUPLICATION_KEYS = new Set(["id", "ttl"]);

export class InvalidJobOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidJobOptionsError";
  }
}

export interface AddJobInput {
  /** Key prefix, BullMQ's `prefix` option (default `bull`). */
  prefix: string;
  queue: string;
  name: string;
  /** The job payload; stored as `JSON.stringify(data ?? {})` like BullMQ. */
  data: unknown;
  /** Contract defaults, i.e. what a worker-side `Queue` would hold as `defaultJobOptions`. */
  defaults?: Readonly<JobOptions>;
  /** Per-call options; they win over the defaults. */
  opts?: Readonly<JobOptions>;
  /** Epoch ms; BullMQ's `Date.now()` at add time. */
  timestamp: number;
}

export function queueKey(prefix: string, queue: string, type: string): string {
  return `${prefix}:${queue}:${type}`;
}

/** The options object exactly as `Job` holds it before `optsAsJSON`. */
export function normalizeJobOptions(defaults: Readonly<JobOptions>, opts: Readonly<JobOptions>): Record<string, unknown> {
  // Queue.addJob: `{ ...jobsOpts, ...opts, jobId }` — jobId always comes from the call only.
  const merged: Record<string, unknown> = { ...defaults, ...opts, jobId: opts.jobId };
  // Job constructor: attempts defaults to 0 and stays the first key; backoff is normalised in place.
  const jobOpts: Record<string, unknown> = Object.assign({ attempts: 0 }, merged);
  const backoff = merged.backoff;
  jobOpts.backoff = typeof backoff === "number" && Number.isFinite(backoff) ? { type: "fixed", delay: backoff } : backoff || undefined;
  // optsAsJSON: undefined values are skipped, renamed keys keep their position.
  const stored: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(jobOpts)) {
    if (value !== undefined && SUPPORTED.has(key)) stored[STORED_AS[key] ?? key] = value;
  }
  return stored;
}

/** BullMQ's `Job.validateOptions` and `Queue.addJob` checks, for the options we support. */
function validate(opts: Record<string, unknown>): void {
  const { jobId, priority, backoff, de: deduplication } = opts;
  if (typeof jobId === "string" && jobId !== "") {
    if (jobId === "0" || jobId.startsWith("0:")) throw new InvalidJobOptionsError("JobId cannot be '0' or start with '0:'");
    if (`${parseInt(jobId, 10)}` === jobId) throw new InvalidJobOptionsError("Custom Id cannot be integers");
    if (jobId.includes(":")) throw new InvalidJobOptionsError("Custom Id cannot contain :");
    // Not a bullmq check: the last line of defence if a route forgot isValidJobId.
    if (RESERVED_JOB_IDS.has(jobId)) throw new InvalidJobOptionsError(`Custom Id "${jobId}" is one of the queue's own key names`);
  }
  if (typeof priority === "number" && priority !== 0) {
    if (Math.trunc(priority) !== priority) throw new InvalidJobOptionsError("Priority should not be float");
    if (priority > PRIORITY_LIMIT) throw new InvalidJobOptionsError(`Priority should be between 0 and ${PRIORITY_LIMIT}`);
  }
  if (deduplication !== undefined) {
    if (typeof deduplication !== "object" || deduplication === null) throw new InvalidJobOptionsError("Deduplication must be an object");
    const { id, ttl } = deduplication as { id?: unknown; ttl?: unknown };
    if (typeof id !== "string" || id === "") throw new InvalidJobOptionsError("Deduplication id must be provided");
    if (ttl !== undefined && (typeof ttl !== "number" || !Number.isSafeInteger(ttl) || ttl <= 0)) {
      throw new InvalidJobOptionsError("Deduplication ttl must be a positive integer (ms)");
    }
    const extra = Object.keys(deduplication).filter((key) => !DEDUPLICATION_KEYS.has(key));
    if (extra.length > 0) throw new InvalidJobOptionsError(`Deduplication option(s) not supported by the edge: ${extra.join(", ")}`);
  }
  if (typeof backoff === "object" && backoff !== null && "jitter" in backoff) {
    const { jitter } = backoff;
    if (typeof jitter === "number" && (jitter < 0 || jitter > 1)) throw new InvalidJobOptionsError("Jitter should be between 0 and 1");
  }
}

/** Copies msgpackr's output: it is a view into a buffer the packer reuses for later calls. */
function pack(value: unknown): Uint8Array {
  return new Uint8Array(packer.pack(value));
}

/** KEYS/ARGV for one add; throws `InvalidJobOptionsError` where `Queue.add` would throw. */
export function buildAddJob(input: AddJobInput): ScriptCall {
  const opts = normalizeJobOptions(input.defaults ?? {}, input.opts ?? {});
  validate(opts);
  const key = (type: string) => queueKey(input.prefix, input.queue, type);
  const jobId = input.opts?.jobId;
  const dedupId = (opts.de as { id: string } | undefined)?.id;
  // addJobToTransaction's args: [prefixKey, jobId|'', name, timestamp, parentKey,
  // parentDependenciesKey, parent, repeatJobKey, deduplicationKey, deferParentRelease].
  const dedupKey = dedupId ? `${key("de")}:${dedupId}` : null;
  const packedArgs = pack([key(""), jobId ?? "", input.name, input.timestamp, null, null, undefined, undefined, dedupKey, null]);
  const argv = [packedArgs, JSON.stringify(input.data === undefined ? {} : input.data), pack(opts)];

  const { delay, priority } = opts;
  if (typeof delay === "number" && delay > 0) {
    const keys = ["marker", "meta", "id", "delayed", "completed", "events"].map(key);
    return { script: addDelayedJobScript, keys, args: argv };
  }
  if (priority) {
    const keys = ["marker", "meta", "id", "prioritized", "delayed", "completed", "active", "events", "pc"].map(key);
    return { script: addPrioritizedJobScript, keys, args: argv };
  }
  const keys = ["wait", "paused", "meta", "id", "completed", "delayed", "active", "events", "marker"].map(key);
  return { script: addStandardJobScript, keys, args: argv };
}
