// Phase 3: how fast the real fleet drains pre-loaded audit jobs into Postgres, against a no-op
// BullMQ Worker with the same options on the same Redis: the gap is the fleet's own cost
// (validation, logging, the batched insert), since the BullMQ overhead is the same for both.
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";
import { Queue, Worker, type JobsOptions, type WorkerOptions } from "bullmq";
import { count, sql } from "drizzle-orm";
import type { Redis } from "ioredis";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import { auditContract } from "../../shared/jobs/audit.ts";
import { createAuditHandler } from "../../worker/audit/handler.ts";
import type { Database } from "../../worker/db.ts";
import { parseEnv } from "../../worker/env.ts";
import { createHandlers, redisOptions, startFleet, type FleetConfig } from "../../worker/fleet.ts";
import type { Log } from "../../worker/runner.ts";
import { auditEvent } from "./enqueue.ts";
import { median } from "./load.ts";
import { addInto, emptyUsage, startMeter, type Usage } from "./system.ts";

export interface DrainSettings {
  jobs: number;
  concurrency: number;
  rounds: number;
  auditBatchMax: number;
  /** Bound on one drain's wall time. */
  deadlineMs: number;
  /** When set, each drain run's CPU profile (V8 .cpuprofile, the drain window only) is written here. */
  profileDir?: string | undefined;
}

export interface DrainEnv {
  /** A spare connection for polling and cleanup; it sees no traffic of the workers. */
  redis: Redis;
  redisUrl: string;
  redisPid: number;
  postgresPid: number | undefined;
  database: Database;
  progress: (line: string) => void;
}

export type Consumer = "fleet" | "noop";

export interface DrainRun {
  consumer: Consumer;
  jobs: number;
  ms: number;
  perSecond: number;
  preloadPerSecond: number;
  failed: number;
  /** Fleet: audit_logs rows afterwards; no-op: 'completed' events seen. */
  verified: number;
  usage: Usage;
  /** Fleet only: multi-row inserts and the largest one. */
  inserts?: number;
  largestInsert?: number;
}

export interface DrainResult {
  runs: DrainRun[];
  perSecond: Record<Consumer, number>;
  /** The worker settings both consumers ran with (the fleet's defaults). */
  workerSettings: { drainDelaySeconds: number; stalledIntervalMs: number; lockDurationMs: number };
}

const ADD_BULK_CHUNK = 1000;
const POLL_MS = 10;
/**
 * The fleet's shipped defaults (WORKER_DRAIN_DELAY_SECONDS, WORKER_STALLED_INTERVAL_MS,
 * WORKER_LOCK_DURATION_MS; the fleet also gets JOB_LOG_RATE / JOB_LOG_SLOW_MS), taken from the env
 * parser itself so the benchmark follows them when they change. Both consumers get them. The URLs only satisfy the schema; nothing connects to them.
 */
const FLEET_DEFAULTS = parseEnv({ REDIS_URL: "redis://127.0.0.1:6379", DATABASE_URL: "postgres://bench@127.0.0.1:5432/bench", EMAIL_CAPTURE: "1" });

/** Writes what jsonLog writes, to /dev/null: the fleet pays for formatting and a write per job, the terminal stays readable. */
function devNullLog(): { log: Log; close: () => void } {
  const fd = openSync("/dev/null", "w");
  return {
    log: (level, msg, fields) => {
      writeSync(fd, JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + "\n");
    },
    close: () => closeSync(fd),
  };
}

async function preload(redisUrl: string, prefix: string, jobs: number, tag: string): Promise<number> {
  const queue = new Queue(auditContract.queue, { connection: redisOptions(redisUrl), prefix });
  const opts = auditContract.defaults as JobsOptions;
  const started = performance.now();
  try {
    for (let first = 0; first < jobs; first += ADD_BULK_CHUNK) {
      const ids = Array.from({ length: Math.min(ADD_BULK_CHUNK, jobs - first) }, (_, k) => `${tag}-${first + k}`);
      const occurredAt = new Date().toISOString();
      await queue.addBulk(
        ids.map((id) => ({ name: auditContract.name, data: { ...auditEvent(id), occurredAt }, opts: { ...opts, jobId: id } })),
      );
    }
  } finally {
    await queue.close();
  }
  return (jobs / (performance.now() - started)) * 1000;
}

/** Polls until no job of the queue is waiting, active, delayed or prioritized; returns failed count. */
async function untilDrained(redis: Redis, prefix: string, deadlineMs: number): Promise<number> {
  const key = (k: string) => `${prefix}:${auditContract.queue}:${k}`;
  const stopAt = performance.now() + deadlineMs;
  for (;;) {
    const replies = (await redis
      .pipeline()
      .llen(key("wait"))
      .llen(key("active"))
      .zcard(key("delayed"))
      .zcard(key("prioritized"))
      .zcard(key("failed"))
      .exec()) as Array<[Error | null, number]>;
    const [pending, failed] = [replies.slice(0, 4).reduce((n, [, v]) => n + v, 0), replies[4]?.[1] ?? 0];
    if (pending === 0) return failed;
    if (performance.now() > stopAt) throw new Error(`drain of ${prefix} not finished after ${deadlineMs} ms (${pending} left)`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function drainOnce(env: DrainEnv, settings: DrainSettings, consumer: Consumer, round: number): Promise<DrainRun> {
  const prefix = `drain-${consumer}-${round}`;
  if (consumer === "fleet") await env.database.db.execute(sql`truncate table ${auditLogs}`);
  const preloadPerSecond = await preload(env.redisUrl, prefix, settings.jobs, `${consumer}${round}`);
  const meter = startMeter(
    [{ pid: env.redisPid, label: "redis" }, ...(env.postgresPid ? [{ pid: env.postgresPid, label: "postgres" }] : [])],
    consumer === "fleet" ? "bench (fleet)" : "bench (no-op Worker)",
  );
  const profiler = settings.profileDir ? await startProfiler() : undefined;
  const started = performance.now();
  let verified = 0;
  let stop: () => Promise<void>;
  let batcherStats: { flushes: number; largestBatch: number } | undefined;
  const sink = devNullLog();
  if (consumer === "fleet") {
    const config: FleetConfig = {
      redisUrl: env.redisUrl,
      redisCaCertPath: undefined,
      queuePrefix: prefix,
      queues: [auditContract.queue],
      concurrency: { audit: settings.concurrency, email: 1, "stripe-webhook": 1, report: 1 },
      drainDelaySeconds: FLEET_DEFAULTS.drainDelaySeconds,
      stalledIntervalMs: FLEET_DEFAULTS.stalledIntervalMs,
      lockDurationMs: FLEET_DEFAULTS.lockDurationMs,
      emailRatePerSecond: 2,
      jobLog: FLEET_DEFAULTS.jobLog,
    };
    const audit = createAuditHandler(env.database.db, { maxBatch: settings.auditBatchMax });
    const handlers = {
      ...createHandlers(env.database.db, {
        auditBatchMax: settings.auditBatchMax, resendApiKey: undefined, resendBaseUrl: undefined, emailFrom: "bench <bench@example.com>",
      }),
      audit: audit.handle,
    };
    const fleet = await startFleet(config, { handlers, log: sink.log });
    batcherStats = audit.batcher.stats;
    stop = async () => void (await fleet.close(5_000));
  } else {
    const options: WorkerOptions = {
      connection: redisOptions(env.redisUrl),
      prefix,
      concurrency: settings.concurrency,
      drainDelay: FLEET_DEFAULTS.drainDelaySeconds,
      stalledInterval: FLEET_DEFAULTS.stalledIntervalMs,
      lockDuration: FLEET_DEFAULTS.lockDurationMs,
    };
    const worker = new Worker(auditContract.queue, async () => undefined, options);
    // Attached in the same tick as the constructor, so no completion can be missed.
    worker.on("completed", () => void verified++);
    worker.on("error", (err) => env.progress(`no-op worker error: ${err.message}`));
    stop = () => worker.close();
  }
  let failed: number;
  let ms: number;
  let usage: Usage;
  try {
    failed = await untilDrained(env.redis, prefix, settings.deadlineMs);
    ms = performance.now() - started;
    usage = meter();
    if (profiler && settings.profileDir) {
      mkdirSync(settings.profileDir, { recursive: true });
      writeFileSync(join(settings.profileDir, `drain-${consumer}-${round}.cpuprofile`), JSON.stringify(await profiler.stop()));
    }
  } finally {
    await stop();
    sink.close();
  }
  if (consumer === "fleet") {
    const [row] = await env.database.db.select({ n: count() }).from(auditLogs);
    verified = row?.n ?? 0;
  }
  await env.redis.flushdb(); // private server: drop this run's keys before the next one
  return {
    consumer,
    jobs: settings.jobs,
    ms,
    perSecond: (settings.jobs / ms) * 1000,
    preloadPerSecond,
    failed,
    verified,
    usage,
    ...(batcherStats ? { inserts: batcherStats.flushes, largestInsert: batcherStats.largestBatch } : {}),
  };
}

/** Samples this process (where both consumers run) with V8's profiler until `stop()`. */
async function startProfiler(): Promise<{ stop: () => Promise<object> }> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 200 });
  await session.post("Profiler.start");
  return {
    stop: async () => {
      const { profile } = await session.post("Profiler.stop");
      session.disconnect();
      return profile;
    },
  };
}

export async function runDrain(env: DrainEnv, settings: DrainSettings): Promise<DrainResult> {
  const runs: DrainRun[] = [];
  for (let round = 0; round < settings.rounds; round++) {
    const order: Consumer[] = round % 2 === 0 ? ["fleet", "noop"] : ["noop", "fleet"];
    for (const consumer of order) {
      const run = await drainOnce(env, settings, consumer, round);
      runs.push(run);
      env.progress(
        `drain: round ${round + 1}/${settings.rounds} ${consumer.padEnd(5)} ${run.perSecond.toFixed(0).padStart(6)} jobs/s ` +
          `(${(run.ms / 1000).toFixed(2)} s, verified ${run.verified}/${run.jobs}, failed ${run.failed}` +
          `${run.inserts !== undefined ? `, ${run.inserts} inserts, largest ${run.largestInsert} rows` : ""})`,
      );
    }
  }
  const rate = (c: Consumer) => median(runs.filter((r) => r.consumer === c).map((r) => r.perSecond));
  const { drainDelaySeconds, stalledIntervalMs, lockDurationMs } = FLEET_DEFAULTS;
  return { runs, perSecond: { fleet: rate("fleet"), noop: rate("noop") }, workerSettings: { drainDelaySeconds, stalledIntervalMs, lockDurationMs } };
}

export function sumUsage(runs: readonly DrainRun[]): Usage {
  const total = emptyUsage();
  for (const r of runs) addInto(total, r.usage);
  return total;
}
