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
import { auditContract, type AuditJob } from "../../shared/jobs/audit.ts";
import { createAuditHandler } from "../../worker/audit/handler.ts";
import { createDb, type Database } from "../../worker/db.ts";
import { parseEnv } from "../../worker/env.ts";
import { createHandlers, redisOptions, startFleet, type FleetConfig } from "../../worker/fleet.ts";
import type { JobContext, Log } from "../../worker/runner.ts";
import { startDelayProxy } from "../testing/delay-proxy.ts";
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
  /**
   * Round-trip time put between the fleet and Postgres for the "database farther away" rounds (a
   * managed database such as Neon is a network hop away; here it is on loopback); 0 skips them.
   */
  remoteDbRttMs: number;
}

export interface DrainEnv {
  /** A spare connection for polling and cleanup; it sees no traffic of the workers. */
  redis: Redis;
  redisUrl: string;
  redisPid: number;
  postgresPid: number | undefined;
  database: Database;
  /** The database the drain writes to; the "farther away" rounds reach it through a delay proxy. */
  databaseUrl: string;
  progress: (line: string) => void;
}

/**
 * fleet: `startFleet` on its shipped defaults. fleet-serial: the same with one audit insert in
 * flight at a time (AUDIT_WRITES_IN_FLIGHT=1). insert-only: a bare BullMQ Worker whose processor
 * only hands the job to the fleet's batched insert. noop: a bare BullMQ Worker that does nothing.
 */
export type Consumer = "fleet" | "fleet-serial" | "insert-only" | "noop";
export const CONSUMERS: readonly Consumer[] = ["fleet", "fleet-serial", "insert-only", "noop"];

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
  /** Consumers that insert: multi-row inserts and the largest one. */
  inserts?: number;
  largestInsert?: number;
}

export interface DrainResult {
  runs: DrainRun[];
  perSecond: Record<Consumer, number>;
  /** The worker settings both consumers ran with (the fleet's defaults). */
  workerSettings: { drainDelaySeconds: number; stalledIntervalMs: number; lockDurationMs: number };
  /** The fleet consumer's AUDIT_WRITES_IN_FLIGHT (the shipped default). */
  writesInFlight: number;
  /** fleet and fleet-serial with Postgres `rttMs` away (delay proxy in this process; CPU not compared). */
  remote?: { rttMs: number; runs: DrainRun[]; perSecond: Record<"fleet" | "fleet-serial", number> };
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

async function drainOnce(env: DrainEnv, settings: DrainSettings, consumer: Consumer, round: number, writeDb: Database = env.database): Promise<DrainRun> {
  const prefix = `drain-${consumer}-${round}`;
  const fleet = consumer === "fleet" || consumer === "fleet-serial";
  const writesRows = consumer !== "noop";
  if (writesRows) await env.database.db.execute(sql`truncate table ${auditLogs}`);
  const preloadPerSecond = await preload(env.redisUrl, prefix, settings.jobs, `${consumer}${round}`);
  const meter = startMeter(
    [{ pid: env.redisPid, label: "redis" }, ...(env.postgresPid ? [{ pid: env.postgresPid, label: "postgres" }] : [])],
    `bench (${consumer})`,
  );
  const profiler = settings.profileDir ? await startProfiler() : undefined;
  const started = performance.now();
  let verified = 0;
  let stop: () => Promise<void>;
  let batcherStats: { flushes: number; largestBatch: number } | undefined;
  const sink = devNullLog();
  if (fleet) {
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
    const writesInFlight = consumer === "fleet-serial" ? 1 : FLEET_DEFAULTS.auditWritesInFlight;
    const audit = createAuditHandler(writeDb.db, { maxBatch: settings.auditBatchMax, writesInFlight, concurrency: settings.concurrency });
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
    // insert-only: the fleet's batched insert (the shipped in-flight setting) and nothing else: no
    // validation, job log, metrics or outage handling. No consumer that stores each job durably in
    // this Postgres can do better with this insert, so it bounds what the fleet's own code could gain.
    const insert =
      consumer === "insert-only"
        ? createAuditHandler(writeDb.db, { maxBatch: settings.auditBatchMax, writesInFlight: FLEET_DEFAULTS.auditWritesInFlight, concurrency: settings.concurrency })
        : undefined;
    if (insert) batcherStats = insert.batcher.stats;
    const unusedContext = {} as JobContext; // the audit handler reads only the job's data
    const processor = insert ? (job: { data: AuditJob }) => insert.handle(job.data, unusedContext) : async () => undefined;
    const worker = new Worker(auditContract.queue, processor, options);
    // Attached in the same tick as the constructor, so no completion can be missed.
    worker.on("completed", () => void verified++);
    worker.on("error", (err) => env.progress(`${consumer} worker error: ${err.message}`));
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
  if (writesRows) {
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
    // Each consumer takes each position in turn, so none always runs first after the pre-load.
    const order = CONSUMERS.map((_, k) => CONSUMERS[(k + round) % CONSUMERS.length]!);
    for (const consumer of order) {
      const run = await drainOnce(env, settings, consumer, round);
      runs.push(run);
      env.progress(
        `drain: round ${round + 1}/${settings.rounds} ${consumer.padEnd(12)} ${run.perSecond.toFixed(0).padStart(6)} jobs/s ` +
          `(${(run.ms / 1000).toFixed(2)} s, verified ${run.verified}/${run.jobs}, failed ${run.failed}` +
          `${run.inserts !== undefined ? `, ${run.inserts} inserts, largest ${run.largestInsert} rows` : ""})`,
      );
    }
  }
  const rate = (c: Consumer, from = runs) => median(from.filter((r) => r.consumer === c).map((r) => r.perSecond));
  let remote: DrainResult["remote"];
  if (settings.remoteDbRttMs > 0) remote = await drainRemote(env, settings, (c, from) => rate(c, from));
  const { drainDelaySeconds, stalledIntervalMs, lockDurationMs } = FLEET_DEFAULTS;
  const perSecond = Object.fromEntries(CONSUMERS.map((c) => [c, rate(c)])) as Record<Consumer, number>;
  return { runs, perSecond, workerSettings: { drainDelaySeconds, stalledIntervalMs, lockDurationMs }, writesInFlight: FLEET_DEFAULTS.auditWritesInFlight, ...(remote ? { remote } : {}) };
}

export function sumUsage(runs: readonly DrainRun[]): Usage {
  const total = emptyUsage();
  for (const r of runs) addInto(total, r.usage);
  return total;
}

/**
 * The fleet against Postgres `remoteDbRttMs` away: the shipped in-flight setting vs one insert at
 * a time, in alternating rounds. On loopback a commit costs an fsync; against a managed database it
 * also costs a network round trip, which is what more than one insert in flight is for.
 */
async function drainRemote(
  env: DrainEnv,
  settings: DrainSettings,
  rate: (c: Consumer, from: DrainRun[]) => number,
): Promise<NonNullable<DrainResult["remote"]>> {
  const rttMs = settings.remoteDbRttMs;
  const url = new URL(env.databaseUrl);
  const proxy = await startDelayProxy({ host: url.hostname, port: Number(url.port || 5432) }, rttMs);
  const far = createDb(proxy.rewrite(env.databaseUrl));
  const runs: DrainRun[] = [];
  try {
    for (let round = 0; round < settings.rounds; round++) {
      const order: Consumer[] = round % 2 === 0 ? ["fleet", "fleet-serial"] : ["fleet-serial", "fleet"];
      for (const consumer of order) {
        const run = await drainOnce(env, { ...settings, profileDir: undefined }, consumer, round, far);
        runs.push(run);
        env.progress(
          `drain, Postgres ${rttMs} ms away: round ${round + 1}/${settings.rounds} ${consumer.padEnd(12)} ` +
            `${run.perSecond.toFixed(0).padStart(6)} jobs/s (verified ${run.verified}/${run.jobs}, ${run.inserts} inserts)`,
        );
      }
    }
  } finally {
    await far.close();
    await proxy.close();
  }
  return { rttMs, runs, perSecond: { fleet: rate("fleet", runs), "fleet-serial": rate("fleet-serial", runs) } };
}

