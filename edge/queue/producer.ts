/**
 * The edge's BullMQ producer: enqueue jobs and read their status through any `RedisTransport`,
 * running BullMQ's own scripts so a plain Node BullMQ Worker consumes what the edge produces.
 */
import { DEFAULT_QUEUE_PREFIX, RESERVED_JOB_IDS, type JobContract, type JobData, type JobOptions } from "../../shared/jobs/contract.ts";
import { getStateScript } from "../../shared/jobs/bullmq-scripts.ts";
import { buildAddJob, queueKey } from "./job-args.ts";
import { RespError, type Reply } from "./resp.ts";
import { RedisReplyError, runPipeline, type RedisTransport } from "./transport.ts";

export interface EnqueueRequest<C extends JobContract = JobContract> {
  contract: C;
  /** The already validated payload (the contract schema's output). */
  data: JobData<C>;
  /** Per-call options, merged over `contract.defaults`. */
  opts?: JobOptions;
}

export interface EnqueuedJob {
  id: string;
  queue: string;
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
  /** One job, or a batch sent as a single pipelined round trip; ids in request order. */
  add<C extends JobContract>(job: EnqueueRequest<C>): Promise<EnqueuedJob>;
  add(jobs: readonly EnqueueRequest[]): Promise<EnqueuedJob[]>;
  getJob(queue: string, id: string): Promise<JobStatus | null>;
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

function toAddedId(reply: Reply | undefined, queue: string): string {
  if (reply instanceof RespError) throw new RedisReplyError(reply, `add to queue "${queue}"`);
  // Custom ids come back as strings; generated ids as the INCR integer.
  if (typeof reply === "number") {
    if (reply < 0) throw new AddJobError(reply, queue);
    return String(reply);
  }
  if (typeof reply === "string") return reply;
  throw new Error(`Unexpected reply to add on queue "${queue}": ${JSON.stringify(reply)}`);
}

function isoFromMs(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const ms = Number(value);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : undefined;
}

export function createProducer(transport: RedisTransport, options: ProducerOptions = {}): Producer {
  const prefix = options.prefix ?? DEFAULT_QUEUE_PREFIX;
  const now = options.now ?? Date.now;

  async function addMany(jobs: readonly EnqueueRequest[]): Promise<EnqueuedJob[]> {
    if (jobs.length === 0) return [];
    // One timestamp per batch, like one Date.now() per Queue.add call in a tight loop.
    const timestamp = now();
    const calls = jobs.map(({ contract, data, opts }) =>
      buildAddJob({ prefix, queue: contract.queue, name: contract.name, data, defaults: contract.defaults, opts, timestamp }),
    );
    const replies = await runPipeline(transport, calls);
    return jobs.map(({ contract }, i) => ({ id: toAddedId(replies[i], contract.queue), queue: contract.queue }));
  }

  async function add<C extends JobContract>(job: EnqueueRequest<C>): Promise<EnqueuedJob>;
  async function add(jobs: readonly EnqueueRequest[]): Promise<EnqueuedJob[]>;
  async function add(input: EnqueueRequest | readonly EnqueueRequest[]): Promise<EnqueuedJob | EnqueuedJob[]> {
    if (Array.isArray(input)) return addMany(input);
    const [added] = await addMany([input as EnqueueRequest]);
    return added as EnqueuedJob;
  }

  async function getJob(queue: string, id: string): Promise<JobStatus | null> {
    // `<prefix>:<queue>:meta` is the queue's settings, not a job: no job can carry such an id.
    if (RESERVED_JOB_IDS.has(id) || id.includes(":")) return null;
    const key = (type: string) => queueKey(prefix, queue, type);
    const stateKeys = ["completed", "failed", "delayed", "active", "wait", "paused", "waiting-children", "prioritized"].map(key);
    // Hash and state in one round trip; the two reads are not atomic, which is fine for a status view.
    const [hash, state] = await runPipeline(transport, [
      ["HGETALL", key(id)],
      { script: getStateScript, keys: stateKeys, args: [id] },
    ]);
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

  return { add, getJob, ping, readiness };
}

/** Spreads `{ [key]: value }` only when defined (exactOptionalPropertyTypes-friendly). */
function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: string });
}
