/**
 * The edge's BullMQ producer: enqueue jobs and read their status through any `RedisTransport`,
 * running BullMQ's own scripts so a plain Node BullMQ Worker consumes what the edge produces.
 */
import { contractOptions, DEFAULT_QUEUE_PREFIX, RESERVED_JOB_IDS, type JobContract, type JobData, type JobOptions } from "../../shared/jobs/contract.ts";
import { getStateScript, readJobScript, removeJobScript, reprocessJobScript } from "../../shared/jobs/bullmq-scripts.ts";
import { buildAddJob, normalizeJobOptions, queueKey } from "./job-args.ts";
import { guarded, limiterCommand, readCount, type LimitCheck } from "./limiter.ts";
import { RespError, type Reply } from "./resp.ts";
import { PipelineInterrupted, RedisReplyError, runPipeline, TransportError, type PipelineItem, type RedisTransport } from "./transport.ts";

export interface EnqueueRequest<C extends JobContract = JobContract> {
  contract: C;
  /** The already validated payload (the contract schema's output). */
  data: JobData<C>;
  /** Per-call options, merged over `contract.defaults`; the contract's deduplication always applies. */
  opts?: JobOptions;
}

export interface EnqueuedJob {
  id: string;
  queue: string;
  /** The id named a job that had failed: it was moved back to wait (BullMQ's `job.retry("failed")`). */
  requeued?: true;
}

/**
 * What became of one job of a batch. A batch is one pipeline, not a transaction: some adds can
 * succeed while others get an error reply (OOM, Upstash's request limit), and a connection lost
 * after sending leaves the outcome unknown.
 * - `accepted`: Redis confirmed the job exists (new, or already there under that id).
 * - `not_accepted`: Redis answered with an error for this add; nothing was written for it.
 * - `unknown`: the commands may have run but no answer came back.
 */
export type AddOutcome = "accepted" | "not_accepted" | "unknown";

export interface AddResult extends EnqueuedJob {
  outcome: AddOutcome;
  /** Why the job is not `accepted`. Messages name commands and queues, never payloads. */
  error?: Error;
}

/** BullMQ's job states as its getState script reports them. */
export type JobState =
  | "waiting" | "active" | "delayed" | "prioritized" | "completed" | "failed" | "waiting-children" | "unknown";

export interface JobStatus {
  id: string;
  queue: string;
  name: string;
  state: JobState;
  attemptsMade: number;
  failedReason?: string;
  /** ISO 8601 times, from BullMQ's `timestamp`, `processedOn`, `finishedOn` (epoch ms). */
  createdAt: string;
  processedAt?: string;
  finishedAt?: string;
}

/**
 * What `remove` did. `removed` carries the state the job was in just before (read in the same
 * round trip): waiting, delayed or prioritized means it was cancelled and will never run;
 * completed or failed means its record was deleted.
 */
export type RemoveResult =
  | { removed: true; state: JobState }
  | { removed: false; reason: "not_found" | "active" | "scheduler" };

/** BullMQ's add script returned a negative code (its `finishedErrors` codes, e.g. -5 missing parent). */
export class AddJobError extends Error {
  readonly code: number;
  constructor(code: number, queue: string) {
    super(`BullMQ add script on queue "${queue}" returned error code ${code}`);
    this.name = "AddJobError";
    this.code = code;
  }
}

export interface ProducerOptions {
  /** Key prefix shared with the workers; BullMQ's default `bull`. */
  prefix?: string;
  /** Clock for the job timestamp (epoch ms); injectable for tests. */
  now?: () => number;
}

export interface Producer {
  /**
   * One job, or a batch sent as a single pipelined round trip; ids in request order. Rejects with
   * the first job's error if any job is not accepted (use `addAll` to see each job's outcome).
   */
  add<C extends JobContract>(job: EnqueueRequest<C>): Promise<EnqueuedJob>;
  add(jobs: readonly EnqueueRequest[]): Promise<EnqueuedJob[]>;
  /**
   * Adds a batch and reports each job's outcome instead of rejecting on Redis trouble (invalid
   * options still throw, before anything is sent). A job id that names a failed job re-queues it.
   * With `limit`, the rate-limit check rides in the same round trip (limiter.ts): over the limit,
   * every add is refused before BullMQ's script writes anything, and `limit.count` says so.
   */
  addAll(jobs: readonly EnqueueRequest[], limit?: LimitCheck): Promise<AddResult[]>;
  /** With `limit`, the limiter is counted in the same round trip as the read. */
  getJob(queue: string, id: string, limit?: LimitCheck): Promise<JobStatus | null>;
  /**
   * Removes a job unless it is running, with exactly what `Queue.remove(id)` sends (BullMQ's
   * removeJob), preceded in the same round trip by a read of its state.
   */
  remove(queue: string, id: string, limit?: LimitCheck): Promise<RemoveResult>;
  /** Resolves when Redis answers PONG; for health checks. */
  ping(): Promise<void>;
  /** PING plus, in the same round trip, what the worker fleet announced on this prefix. */
  readiness(): Promise<Readiness>;
}

export interface Readiness {
  prefix: string;
  /** Queue → ISO start time of the latest fleet process draining it; empty when none announced. */
  fleet: Record<string, string>;
}

/**
 * The hash a worker fleet writes at start-up (worker/fleet.ts `fleetKey`, field = queue, value =
 * start time). Its absence on the edge's prefix means no fleet drains what the edge enqueues.
 */
export function fleetKey(prefix: string): string {
  return `${prefix}:edgefleet:fleet`;
}

const STATES = new Set<string>(["waiting", "active", "delayed", "prioritized", "completed", "failed", "waiting-children", "unknown"]);

/**
 * Runs a pipeline and keeps what is known when the transport fails: every reply of a pipeline
 * that never went out is missing (undefined), and so is every reply lost after sending.
 */
async function settle(run: () => Promise<Reply[]>): Promise<{ replies: Array<Reply | undefined>; failure?: TransportError }> {
  try {
    return { replies: await run() };
  } catch (err) {
    if (err instanceof PipelineInterrupted) return { replies: err.replies, failure: err };
    if (err instanceof TransportError) return { replies: [], failure: err };
    throw err;
  }
}

/** The outcome of a job whose reply never came: unknown once bytes were sent, else not accepted. */
function lost(failure: TransportError | undefined): Pick<AddResult, "outcome" | "error"> {
  const error = failure ?? new TransportError("no reply", true);
  return { outcome: error.maybeEnqueued ? "unknown" : "not_accepted", error };
}

function isoFromMs(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const ms = Number(value);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : undefined;
}

export function createProducer(transport: RedisTransport, options: ProducerOptions = {}): Producer {
  const prefix = options.prefix ?? DEFAULT_QUEUE_PREFIX;
  const now = options.now ?? Date.now;

  /**
   * One round trip: each add, followed for caller-chosen ids by `ZSCORE <queue>:failed <id>`.
   * The add of an existing id returns that id and changes nothing, so a non-nil score means the
   * job is there and failed; those are re-queued in a second round trip (see requeue).
   */
  async function addAll(jobs: readonly EnqueueRequest[], limit?: LimitCheck): Promise<AddResult[]> {
    if (jobs.length === 0) return [];
    // One timestamp per batch, like one Date.now() per Queue.add call in a tight loop.
    const timestamp = now();
    const items: PipelineItem[] = limit ? [limiterCommand(prefix, limit)] : [];
    const at = jobs.map(({ contract, data, opts }) => {
      // The contract's options come last: a caller cannot opt out of its deduplication.
      const effective = { ...opts, ...contractOptions(contract, data) };
      const call = buildAddJob({ prefix, queue: contract.queue, name: contract.name, data, defaults: contract.defaults, opts: effective, timestamp });
      const add = items.push(limit ? guarded(prefix, call, limit) : call) - 1;
      const score = opts?.jobId ? items.push(["ZSCORE", queueKey(prefix, contract.queue, "failed"), opts.jobId]) - 1 : -1;
      return { add, score };
    });
    const { replies, failure } = await settle(() => runPipeline(transport, items));
    if (limit) readCount(limit, replies[0]);

    const results = jobs.map(({ contract, opts }, i): AddResult => {
      const queue = contract.queue;
      const base = { id: opts?.jobId ?? "", queue };
      const reply = replies[at[i]?.add ?? -1];
      if (reply === undefined) return { ...base, ...lost(failure) };
      if (reply instanceof RespError) return { ...base, outcome: "not_accepted", error: new RedisReplyError(reply, `add to queue "${queue}"`) };
      if (typeof reply === "number" && reply < 0) return { ...base, outcome: "not_accepted", error: new AddJobError(reply, queue) };
      if (typeof reply !== "number" && typeof reply !== "string") {
        return { ...base, outcome: "unknown", error: new Error(`Unexpected reply to add on queue "${queue}": ${JSON.stringify(reply)}`) };
      }
      return { id: String(reply), queue, outcome: "accepted" };
    });

    const failed = jobs.flatMap((job, i) => {
      const score = replies[at[i]?.score ?? -1];
      const accepted = results[i]?.outcome === "accepted";
      return accepted && score !== undefined && score !== null && !(score instanceof RespError) ? [{ job, i }] : [];
    });
    if (failed.length > 0) await requeue(failed, results);
    return results;
  }

  /**
   * Runs BullMQ's reprocessJob for each job found failed, with exactly the KEYS/ARGV that
   * `job.retry("failed")` sends (attempt counters kept, as retry() does by default): the job gets
   * one more attempt per re-send. -1/-3 mean it left the failed set meanwhile (removed, or
   * retried by someone else): it stays accepted, not re-queued by us.
   */
  async function requeue(failed: ReadonlyArray<{ job: EnqueueRequest; i: number }>, results: AddResult[]): Promise<void> {
    const calls = failed.map(({ job, i }) => {
      const queue = job.contract.queue;
      const id = results[i]?.id ?? "";
      const key = (type: string) => queueKey(prefix, queue, type);
      const lifo = normalizeJobOptions(job.contract.defaults, job.opts ?? {}).lifo === true;
      const keys = [key(id), ...["events", "failed", "wait", "meta", "active", "marker", "prioritized", "pc"].map(key)];
      return { script: reprocessJobScript, keys, args: [id, lifo ? "RPUSH" : "LPUSH", "failedReason", "failed", "0", "0"] };
    });
    const { replies, failure } = await settle(() => runPipeline(transport, calls));
    failed.forEach(({ i }, j) => {
      const result = results[i] as AddResult;
      const reply = replies[j];
      if (reply === undefined) Object.assign(result, lost(failure));
      else if (reply instanceof RespError) {
        // The job exists but is still failed: the caller must send it again.
        Object.assign(result, { outcome: "not_accepted", error: new RedisReplyError(reply, `re-queue failed job on "${result.queue}"`) });
      } else if (reply === 1) result.requeued = true;
    });
  }

  async function add<C extends JobContract>(job: EnqueueRequest<C>): Promise<EnqueuedJob>;
  async function add(jobs: readonly EnqueueRequest[]): Promise<EnqueuedJob[]>;
  async function add(input: EnqueueRequest | readonly EnqueueRequest[]): Promise<EnqueuedJob | EnqueuedJob[]> {
    const results = await addAll(Array.isArray(input) ? input : [input as EnqueueRequest]);
    const refused = results.find((r) => r.outcome !== "accepted");
    if (refused) throw refused.error ?? new Error(`job on queue "${refused.queue}" was not accepted`);
    const added = results.map(({ id, queue, requeued }): EnqueuedJob => ({ id, queue, ...(requeued ? { requeued } : {}) }));
    return Array.isArray(input) ? added : (added[0] as EnqueuedJob);
  }

  async function getJob(queue: string, id: string, limit?: LimitCheck): Promise<JobStatus | null> {
    // `<prefix>:<queue>:meta` is the queue's settings, not a job: no job can carry such an id.
    if (RESERVED_JOB_IDS.has(id) || id.includes(":")) return null;
    const key = (type: string) => queueKey(prefix, queue, type);
    const stateKeys = ["completed", "failed", "delayed", "active", "wait", "paused", "waiting-children", "prioritized"].map(key);
    // Hash and state in one round trip; the two reads are not atomic, which is fine for a status view.
    // Both are scripts, so on Upstash they run on the primary, never on a lagging replica.
    // Reads write nothing, so the limiter only needs to be counted alongside them, not guard them.
    const replies = await runPipeline(transport, [
      ...(limit ? [limiterCommand(prefix, limit)] : []),
      { script: readJobScript, keys: [key(id)], args: [] },
      { script: getStateScript, keys: stateKeys, args: [id] },
    ]);
    if (limit) readCount(limit, replies.shift());
    const [hash, state] = replies;
    if (hash instanceof RespError) throw new RedisReplyError(hash, `read job ${queue}/${id}`);
    if (state instanceof RespError) throw new RedisReplyError(state, `read state of ${queue}/${id}`);
    if (!Array.isArray(hash) || hash.length === 0) return null;

    const fields = new Map<string, string>();
    for (let i = 0; i + 1 < hash.length; i += 2) fields.set(String(hash[i]), String(hash[i + 1]));
    const failedReason = fields.get("failedReason");
    return {
      id,
      queue,
      name: fields.get("name") ?? "",
      state: typeof state === "string" && STATES.has(state) ? (state as JobState) : "unknown",
      // Same precedence as BullMQ's rawToJobJson: `attemptsMade` (old) before `atm`.
      attemptsMade: Number.parseInt(fields.get("attemptsMade") ?? fields.get("atm") ?? "0", 10) || 0,
      ...(failedReason ? { failedReason } : {}),
      createdAt: isoFromMs(fields.get("timestamp")) ?? new Date(0).toISOString(),
      ...optional("processedAt", isoFromMs(fields.get("processedOn"))),
      ...optional("finishedAt", isoFromMs(fields.get("finishedOn"))),
    };
  }

  async function remove(queue: string, id: string, limit?: LimitCheck): Promise<RemoveResult> {
    if (RESERVED_JOB_IDS.has(id) || id.includes(":")) return { removed: false, reason: "not_found" };
    const key = (type: string) => queueKey(prefix, queue, type);
    const stateKeys = ["completed", "failed", "delayed", "active", "wait", "paused", "waiting-children", "prioritized"].map(key);
    // Redis runs a pipeline's commands back to back, so the state read is the job's state at the
    // removal. The read goes as EVAL with its body (963 bytes), never EVALSHA: on a Redis without
    // the cached script an EVALSHA read would come back NOSCRIPT *after* removeJob had run, and a
    // re-read would find nothing. For a job that does not exist removeJob writes nothing (and
    // still answers 1). Should removeJob itself be uncached, it is re-sent in a second round trip.
    // RedisQueueBackend.removeArgs: KEYS job, repeat; ARGV id, removeChildren (Queue.remove's default), prefix.
    const removal = { script: removeJobScript, keys: [key(id), key("repeat")], args: [id, "1", key("")] };
    const replies = await runPipeline(transport, [
      ...(limit ? [limiterCommand(prefix, limit)] : []),
      ["EVAL", getStateScript.content, String(stateKeys.length), ...stateKeys, id],
      limit ? guarded(prefix, removal, limit) : removal,
    ]);
    if (limit) readCount(limit, replies.shift());
    const [state, code] = replies;
    if (state instanceof RespError) throw new RedisReplyError(state, `read state of ${queue}/${id}`);
    if (code instanceof RespError) throw new RedisReplyError(code, `remove ${queue}/${id}`);
    const known = typeof state === "string" && STATES.has(state) ? (state as JobState) : "unknown";
    if (code === 0) return { removed: false, reason: "active" };
    if (code === -8) return { removed: false, reason: "scheduler" };
    if (code !== 1) throw new Error(`Unexpected reply to removeJob on queue "${queue}": ${JSON.stringify(code)}`);
    return known === "unknown" ? { removed: false, reason: "not_found" } : { removed: true, state: known };
  }

  async function ping(): Promise<void> {
    const [reply] = await transport.pipeline([["PING"]]);
    if (reply instanceof RespError) throw new RedisReplyError(reply, "PING");
    if (reply !== "PONG") throw new Error(`Unexpected PING reply: ${JSON.stringify(reply)}`);
  }

  async function readiness(): Promise<Readiness> {
    const [pong, fleet] = await transport.pipeline([["PING"], ["HGETALL", fleetKey(prefix)]]);
    if (pong instanceof RespError) throw new RedisReplyError(pong, "PING");
    if (fleet instanceof RespError) throw new RedisReplyError(fleet, "read the fleet announcement");
    const queues: Record<string, string> = {};
    if (Array.isArray(fleet)) for (let i = 0; i + 1 < fleet.length; i += 2) queues[String(fleet[i])] = String(fleet[i + 1]);
    return { prefix, fleet: queues };
  }

  return { add, addAll, getJob, remove, ping, readiness };
}

/** Spreads `{ [key]: value }` only when defined (exactOptionalPropertyTypes-friendly). */
function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: string });
}
