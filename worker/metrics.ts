import type { Job, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { QueueName } from "../shared/jobs/contract.ts";
import { contracts } from "../shared/jobs/registry.ts";
import { checkReadiness, type Check } from "./health.ts";
import type { OutageState } from "./outage.ts";

/**
 * Prometheus metrics for the fleet (`GET /metrics`, text format 0.0.4).
 *
 * Per job the fleet only bumps plain numbers (`createJobMetrics`, fed by BullMQ's own Worker events):
 * no Redis command, no label hashing, no allocation. Everything else is read when scraped: backlog,
 * active jobs and the oldest waiting job from Redis in ONE round trip (`readBacklog`), the readiness
 * checks, the outage state and prom-client's process metrics.
 *
 * Labels are `queue`, `name`, `outcome`, `state` and `dependency` only — never a job id or payload
 * value: each is a closed set fixed by the code (a job whose name no contract knows counts as
 * `name="(unexpected)"`), so the series count is bounded.
 */

export const OUTCOMES = ["completed", "failed", "retried", "held_off"] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** Seconds; one histogram per queue. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] as const;

const UNEXPECTED_NAME = "(unexpected)";

interface Tally {
  readonly name: string;
  completed: number;
  failed: number;
  retried: number;
  held_off: number;
}

interface DurationTally {
  /** Cumulative only when rendered; here each slot counts its own bucket (last = above the top bound). */
  readonly buckets: number[];
  sum: number;
  count: number;
}

interface QueueTallies {
  readonly expected: Tally;
  /** Created on the first job with a name no contract of this queue declares. */
  unexpected: Tally | undefined;
  readonly duration: DurationTally;
}

export interface JobMetrics {
  /** Counts one worker's completed/failed jobs from its events. */
  watch(queue: QueueName, worker: Worker): void;
  /** A job handed back to wait because a dependency is down (no BullMQ event says so). */
  heldOff(queue: QueueName): void;
  /** Snapshot for rendering. */
  tallies(): ReadonlyMap<QueueName, QueueTallies>;
}

function tally(name: string): Tally {
  return { name, completed: 0, failed: 0, retried: 0, held_off: 0 };
}

export function createJobMetrics(queues: readonly QueueName[]): JobMetrics {
  const byQueue = new Map<QueueName, QueueTallies>();
  for (const queue of queues) {
    byQueue.set(queue, {
      expected: tally(contracts[queue].name),
      unexpected: undefined,
      duration: { buckets: new Array<number>(DURATION_BUCKETS.length + 1).fill(0), sum: 0, count: 0 },
    });
  }
  const of = (queue: QueueName, job: Job): Tally => {
    const t = byQueue.get(queue)!;
    if (job.name === t.expected.name) return t.expected;
    return (t.unexpected ??= tally(UNEXPECTED_NAME));
  };
  const observe = (queue: QueueName, job: Job) => {
    // BullMQ's own timestamps (ms): processedOn is set when the job was fetched, finishedOn when it
    // completed or failed for good; a retried attempt has no finishedOn.
    const ms = (job.finishedOn ?? Date.now()) - (job.processedOn ?? Date.now());
    const seconds = ms > 0 ? ms / 1000 : 0;
    const d = byQueue.get(queue)!.duration;
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    d.buckets[i]!++;
    d.sum += seconds;
    d.count++;
  };
  return {
    watch(queue, worker) {
      worker.on("completed", (job) => {
        of(queue, job).completed++;
        observe(queue, job);
      });
      // Emitted after moveToFailed: a final failure has finishedOn, a retry (attempts left) has not.
      // An outage hand-back throws BullMQ's RateLimitError, which emits nothing (see heldOff).
      worker.on("failed", (job) => {
        if (!job) return;
        const t = of(queue, job);
        if (job.finishedOn) t.failed++;
        else t.retried++;
        observe(queue, job);
      });
    },
    heldOff(queue) {
      byQueue.get(queue)!.expected.held_off++;
    },
    tallies: () => byQueue,
  };
}

export interface QueueBacklog {
  waiting: number;
  prioritized: number;
  /** Delayed jobs whose time has come (BullMQ moves them to wait on its next fetch). */
  delayedDue: number;
  /** Delayed jobs still in their delay or backoff. */
  delayedLater: number;
  active: number;
  /** Seconds since the job at the head of the wait list became ready (added, or its delay ended); 0 when empty. */
  oldestWaitingSeconds: number;
}

/**
 * One script, one round trip, read-only. Per queue i (KEYS[4i-3..4i] = wait, prioritized, delayed,
 * active; ARGV[i+2] = the queue's key prefix "<prefix>:<queue>:"), ARGV[1] = the delayed-set score
 * of "now" (BullMQ scores delayed jobs timestamp * 0x1000 + a 12-bit counter; computed by the caller
 * because Lua would print a 16-digit number in floating-point notation).
 * Commands inside, per queue: LLEN, ZCARD, ZCOUNT, ZCARD, LLEN, LINDEX, and HMGET when the wait
 * list is not empty — 7.
 */
export const BACKLOG_SCRIPT = `
local out = {}
for i = 1, #KEYS / 4 do
  local wait, prioritized, delayed, active = KEYS[4*i-3], KEYS[4*i-2], KEYS[4*i-1], KEYS[4*i]
  local delayedAll = redis.call("ZCARD", delayed)
  local due = redis.call("ZCOUNT", delayed, "-inf", ARGV[1])
  local readySince = -1
  local head = redis.call("LINDEX", wait, -1)
  if head then
    local t = redis.call("HMGET", ARGV[i+1] .. head, "timestamp", "delay")
    if t[1] then readySince = (tonumber(t[1]) or 0) + (tonumber(t[2]) or 0) end
  end
  out[#out+1] = redis.call("LLEN", wait)
  out[#out+1] = redis.call("ZCARD", prioritized)
  out[#out+1] = due
  out[#out+1] = delayedAll - due
  out[#out+1] = redis.call("LLEN", active)
  out[#out+1] = readySince
end
return out
`;

/** Redis commands one `readBacklog` costs: 1 EVALSHA from the client, 7 per queue inside it. */
export function backlogCommands(queueCount: number): { roundTrips: 1; client: 1; inScript: number } {
  return { roundTrips: 1, client: 1, inScript: 7 * queueCount };
}

type BacklogRedis = Redis & { edgefleetBacklog(...args: string[]): Promise<number[]> };

export async function readBacklog(
  redis: Redis,
  prefix: string,
  queues: readonly QueueName[],
  now = Date.now(),
): Promise<Map<QueueName, QueueBacklog>> {
  // defineCommand sends EVALSHA and falls back to EVAL once on NOSCRIPT.
  if (!("edgefleetBacklog" in redis)) redis.defineCommand("edgefleetBacklog", { lua: BACKLOG_SCRIPT });
  const keys = queues.flatMap((q) => ["wait", "prioritized", "delayed", "active"].map((k) => `${prefix}:${q}:${k}`));
  const reply = await (redis as BacklogRedis).edgefleetBacklog(
    String(keys.length),
    ...keys,
    String(now * 0x1000 + 0xfff),
    ...queues.map((q) => `${prefix}:${q}:`),
  );
  const out = new Map<QueueName, QueueBacklog>();
  queues.forEach((queue, i) => {
    const [waiting, prioritized, delayedDue, delayedLater, active, readySince] = reply.slice(i * 6, i * 6 + 6).map(Number) as [number, number, number, number, number, number];
    out.set(queue, {
      waiting,
      prioritized,
      delayedDue,
      delayedLater,
      active,
      oldestWaitingSeconds: readySince < 0 ? 0 : Math.max(0, (now - readySince) / 1000),
    });
  });
  return out;
}

export interface MetricsSource {
  queues: readonly QueueName[];
  jobs: JobMetrics;
  /** Reads the backlog (the fleet's `backlog`); a rejection leaves the backlog series out of the scrape. */
  backlog(): Promise<ReadonlyMap<QueueName, QueueBacklog>>;
  outages(): Partial<Record<QueueName, OutageState>>;
  /** The readiness checks (redis, postgres): `edgefleet_dependency_up`. */
  checks: Record<string, Check>;
  checkTimeoutMs?: number;
}

export interface MetricsEndpoint {
  readonly contentType: string;
  render(): Promise<string>;
}

export function createMetrics(source: MetricsSource): MetricsEndpoint {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  registry.registerMetric(
    custom("edgefleet_jobs_total", "Jobs finished by this process, by outcome: completed, failed (for good), retried (failed with attempts left), held_off (returned to wait, no attempt spent: a dependency was down).", "counter", () =>
      [...source.jobs.tallies()].flatMap(([queue, t]) =>
        [t.expected, ...(t.unexpected ? [t.unexpected] : [])].flatMap((tl) =>
          OUTCOMES.map((outcome) => ({ labels: { queue, name: tl.name, outcome }, value: tl[outcome] })),
        ),
      ),
    ),
  );
  registry.registerMetric(
    custom("edgefleet_job_duration_seconds", "Processing time of a job attempt (BullMQ processedOn to finishedOn), completed or failed.", "histogram", () =>
      [...source.jobs.tallies()].flatMap(([queue, { duration }]) => {
        const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
        let cumulative = 0;
        DURATION_BUCKETS.forEach((le, i) => {
          cumulative += duration.buckets[i]!;
          values.push({ metricName: "edgefleet_job_duration_seconds_bucket", labels: { queue, le }, value: cumulative });
        });
        values.push({ metricName: "edgefleet_job_duration_seconds_bucket", labels: { queue, le: "+Inf" }, value: duration.count });
        values.push({ metricName: "edgefleet_job_duration_seconds_sum", labels: { queue }, value: duration.sum });
        values.push({ metricName: "edgefleet_job_duration_seconds_count", labels: { queue }, value: duration.count });
        return values;
      }),
    ),
  );

  const backlog = new Gauge({ name: "edgefleet_queue_backlog", help: "Jobs ready to run and not yet taken: waiting + prioritized + delayed whose time has come. Read from Redis at scrape time.", labelNames: ["queue"], registers: [registry] });
  const jobs = new Gauge({ name: "edgefleet_queue_jobs", help: "Jobs in Redis by state: waiting, prioritized, delayed_due, delayed_later, active. Read from Redis at scrape time.", labelNames: ["queue", "state"], registers: [registry] });
  const oldest = new Gauge({ name: "edgefleet_queue_oldest_waiting_seconds", help: "Age of the job at the head of the wait list since it became ready (added, or its delay ended); 0 when none waits.", labelNames: ["queue"], registers: [registry] });
  const up = new Gauge({ name: "edgefleet_dependency_up", help: "1 when the readiness check of the dependency passes (Redis PING, Postgres select 1), else 0.", labelNames: ["dependency"], registers: [registry] });
  const outage = new Gauge({ name: "edgefleet_queue_outage", help: "1 while the queue is held off because a dependency it needs is down (jobs go back to wait without spending attempts).", labelNames: ["queue"], registers: [registry] });
  const outageSeconds = new Gauge({ name: "edgefleet_queue_outage_seconds", help: "How long the current outage of the queue has lasted; 0 when none.", labelNames: ["queue"], registers: [registry] });
  const scrapeOk = new Gauge({ name: "edgefleet_backlog_read_ok", help: "1 when this scrape read the backlog from Redis; 0 when it failed (backlog series are then left out).", registers: [registry] });

  return {
    contentType: registry.contentType,
    render: async () => {
      const [readiness, read] = await Promise.all([
        checkReadiness(source.checks, source.checkTimeoutMs ?? 2_000),
        source.backlog().then(
          (b) => b,
          () => undefined,
        ),
      ]);
      for (const [dependency, result] of Object.entries(readiness.checks)) up.set({ dependency }, result === "ok" ? 1 : 0);
      backlog.reset();
      jobs.reset();
      oldest.reset();
      scrapeOk.set(read ? 1 : 0);
      for (const [queue, b] of read ?? []) {
        backlog.set({ queue }, b.waiting + b.prioritized + b.delayedDue);
        jobs.set({ queue, state: "waiting" }, b.waiting);
        jobs.set({ queue, state: "prioritized" }, b.prioritized);
        jobs.set({ queue, state: "delayed_due" }, b.delayedDue);
        jobs.set({ queue, state: "delayed_later" }, b.delayedLater);
        jobs.set({ queue, state: "active" }, b.active);
        oldest.set({ queue }, b.oldestWaitingSeconds);
      }
      const outages = source.outages();
      const now = Date.now();
      for (const queue of source.queues) {
        const o = outages[queue];
        outage.set({ queue }, o ? 1 : 0);
        outageSeconds.set({ queue }, o ? Math.max(0, (now - Date.parse(o.since)) / 1000) : 0);
      }
      return registry.metrics();
    },
  };
}

/** A metric whose values are computed at scrape time from the plain tallies (no prom-client state per job). */
function custom(
  name: string,
  help: string,
  type: "counter" | "histogram",
  values: () => Array<{ metricName?: string; labels: Record<string, string | number>; value: number }>,
) {
  const metric = { name, help, type, aggregator: "sum" as const, get: () => ({ name, help, type, aggregator: "sum" as const, values: values() }) };
  // prom-client's Registry accepts any object with name and get(); its Metric class adds nothing used here.
  return metric as unknown as Parameters<Registry["registerMetric"]>[0];
}
