/**
 * BullMQ's own Lua scripts that the edge runs without the bullmq runtime.
 *
 * Each import below is a standalone module of `{ name, content, keys }` (bullmq has no `exports`
 * map, so deep imports resolve); nothing else from bullmq is pulled into the edge bundle. The file
 * names are version-specific (the suffix is the key count), which is why bullmq is pinned exactly:
 * bumping it means re-running the conformance test in `edge/queue/`.
 *
 * The worker fleet `SCRIPT LOAD`s `EDGE_SCRIPTS` at start-up so the edge's EVALSHA nearly always
 * hits and the 26 KB script bodies are only sent on a cold Redis (NOSCRIPT → EVAL fallback).
 */
import { addDelayedJob } from "bullmq/dist/esm/scripts/addDelayedJob-6.js";
import { addPrioritizedJob } from "bullmq/dist/esm/scripts/addPrioritizedJob-9.js";
import { addStandardJob } from "bullmq/dist/esm/scripts/addStandardJob-9.js";
import { getStateV2 } from "bullmq/dist/esm/scripts/getStateV2-8.js";
import { removeJob } from "bullmq/dist/esm/scripts/removeJob-2.js";
import { reprocessJob } from "bullmq/dist/esm/scripts/reprocessJob-9.js";

/** The bullmq version these scripts and the edge's argument layout belong to (package.json pin). */
export const BULLMQ_VERSION = "6.7.0";

export interface LuaScript {
  /** BullMQ's command name, e.g. `addStandardJob`. */
  readonly name: string;
  /** The full Lua source, exactly as BullMQ ships it. */
  readonly content: string;
  /** How many leading arguments are KEYS (the rest are ARGV). */
  readonly keys: number;
  /** Lowercase hex SHA-1 of `content`, as Redis computes it for EVALSHA / SCRIPT LOAD. */
  sha1(): Promise<string>;
}

export function defineScript(source: { name: string; content: string; keys: number }): LuaScript {
  // Computed on first use and memoised per isolate: hashing 26 KB costs ~0.1 ms, but there is
  // no reason to pay it at module load (Worker start-up time counts) or more than once.
  let sha: Promise<string> | undefined;
  return {
    name: source.name,
    content: source.content,
    keys: source.keys,
    sha1: () => (sha ??= sha1Hex(source.content)),
  };
}

/** WebCrypto SHA-1, available as `crypto.subtle` both in Node ≥ 20 and in workerd. */
async function sha1Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  let hex = "";
  for (const byte of new Uint8Array(digest)) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/** KEYS: wait, paused, meta, id, completed, delayed, active, events, marker. */
export const addStandardJobScript = defineScript(addStandardJob);
/** KEYS: marker, meta, id, delayed, completed, events. */
export const addDelayedJobScript = defineScript(addDelayedJob);
/** KEYS: marker, meta, id, prioritized, delayed, completed, active, events, pc. */
export const addPrioritizedJobScript = defineScript(addPrioritizedJob);
/**
 * KEYS: completed, failed, delayed, active, wait, paused, waiting-children, prioritized; ARGV[1]
 * the job id. The V2 variant uses LPOS (Redis ≥ 6.0.6), which BullMQ itself picks on such servers.
 */
export const getStateScript = defineScript(getStateV2);

/**
 * What `job.retry("failed")` runs (RedisQueueBackend.retryFinishedJob): moves a failed job back to
 * wait (or prioritized) and clears finishedOn/processedOn/failedReason. KEYS: job, events, failed,
 * wait, meta, active, marker, prioritized, pc; ARGV: id, LPUSH|RPUSH, "failedReason", "failed",
 * reset attemptsMade "0"|"1", reset attemptsStarted "0"|"1". Returns 1, -1 (no job) or -3 (not
 * in the failed set).
 */
export const reprocessJobScript = defineScript(reprocessJob);

/**
 * What `Queue.remove(id)` and `job.remove()` run (RedisQueueBackend.remove): deletes a job that is
 * not locked, from whatever state it is in, with its data, logs and deduplication key. KEYS: job,
 * repeat; ARGV: id, remove children "1"|"0", the queue's key prefix (`<prefix>:<queue>:`).
 * Returns 1 (removed — also when there was no such job, which it leaves untouched), 0 (the job or
 * one of its children holds a lock: it is active) or -8 (the job belongs to a job scheduler).
 */
export const removeJobScript = defineScript(removeJob);

/**
 * Not BullMQ's: the edge's own one-line read of a job hash. It is a script so that it runs where
 * scripts run — on the primary — and `GET /v1/jobs` never misses a job the edge just created
 * because a replica served the read (Upstash; a separate Worker request cannot carry Upstash's
 * sync token from the POST that created the job).
 * KEYS[1] the job hash. Returns HGETALL's flat field/value list (empty when there is no job).
 */
export const readJobScript = defineScript({
  name: "edgefleetReadJob",
  content: `-- edgefleet: KEYS[1] job hash; returns HGETALL of it. A script, so the read runs on the primary.
return redis.call("HGETALL", KEYS[1])
`,
  keys: 1,
});

/** Every script the edge may run; the worker fleet preloads exactly these. */
export const EDGE_SCRIPTS: readonly LuaScript[] = [
  addStandardJobScript,
  addDelayedJobScript,
  addPrioritizedJobScript,
  getStateScript,
  reprocessJobScript,
  removeJobScript,
  readJobScript,
];
