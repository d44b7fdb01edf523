import { readFileSync } from "node:fs";
import { Worker, type WorkerOptions } from "bullmq";
import { Redis, type RedisOptions } from "ioredis";
import { guardedScript } from "../edge/queue/limiter.ts";
import { EDGE_SCRIPTS, type LuaScript } from "../shared/jobs/bullmq-scripts.ts";
import type { QueueName } from "../shared/jobs/contract.ts";
import { contracts } from "../shared/jobs/registry.ts";
import { createAuditHandler } from "./audit/handler.ts";
import type { Db } from "./db.ts";
import { createEmailHandler } from "./email/handler.ts";
import type { WorkerConfig } from "./env.ts";
import { createJobMetrics, readBacklog, type JobMetrics, type QueueBacklog } from "./metrics.ts";
import { createThroughputCounter } from "./autoscaler/throughput.ts";
import { createJobLog } from "./job-log.ts";
import { createOutageGate, type OutageGate, type OutageState } from "./outage.ts";
import { createProcessor, DEFAULT_OUTAGE_BACKOFF, jsonLog, type FleetHandlers, type Log } from "./runner.ts";
import { checkEvictionPolicy, reconnectDelay } from "./redis-checks.ts";
import { createReportHandler } from "./report/handler.ts";
import { createStripeApi, createStripeWebhookHandler } from "./stripe/handler.ts";

export type FleetConfig = Pick<
  WorkerConfig,
  | "redisUrl"
  | "redisCaCertPath"
  | "queuePrefix"
  | "queues"
  | "concurrency"
  | "drainDelaySeconds"
  | "stalledIntervalMs"
  | "lockDurationMs"
  | "emailRatePerSecond"
> &
  Partial<Pick<WorkerConfig, "outageBackoffMinMs" | "outageBackoffMaxMs" | "jobLog">>;

export interface FleetDeps {
  /**
   * A handler per queue the fleet drains (production passes `createHandlers`, complete by type);
   * a queue in `config.queues` without one stops start-up.
   */
  handlers: Partial<FleetHandlers>;
  /** Scripts to SCRIPT LOAD at start-up; default: the edge's (`EDGE_SCRIPTS`). */
  scripts?: readonly LuaScript[];
  log?: Log;
}

export interface Fleet {
  readonly workers: ReadonlyMap<QueueName, Worker>;
  /** Redis PING on the fleet's command connection; rejects fast when disconnected. */
  ping(): Promise<void>;
  /** Queues currently held off because a dependency is down (worker/outage.ts). */
  outages(): Partial<Record<QueueName, OutageState>>;
  /** Job counters and durations of this process (worker/metrics.ts), for /metrics. */
  readonly jobs: JobMetrics;
  /** Backlog, active jobs and oldest waiting job per queue: one Redis round trip (worker/metrics.ts). */
  backlog(): Promise<ReadonlyMap<QueueName, QueueBacklog>>;
  /**
   * Stops taking jobs and waits for running ones. After `timeoutMs` the remaining jobs are
   * abandoned (connections dropped): their locks lapse and BullMQ's stalled check hands them to
   * another worker — at-least-once, which is why every handler is idempotent.
   */
  close(timeoutMs?: number): Promise<{ drained: boolean }>;
}

/**
 * ioredis options for a Redis URL. RESP2 is chosen deliberately (ioredis 6 defaults to RESP3,
 * `HELLO 3`): BullMQ's scripts and reply parsing are written against RESP2 shapes, every Redis
 * and proxy (Upstash, older managed Redis) speaks it, and nothing here uses RESP3-only features
 * (client-side caching, push). `maxRetriesPerRequest: null` is what BullMQ requires: a worker's
 * blocking commands must wait out a reconnect instead of failing.
 */
export function redisOptions(url: string, caCertPath?: string) {
  const u = new URL(url);
  const tls = u.protocol === "rediss:";
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  // Inferred (not annotated) so the literal fits both ioredis' and BullMQ's option types.
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    db: Number.isInteger(db) ? db : 0,
    protocol: 2,
    maxRetriesPerRequest: null,
    // Replaces BullMQ's default (1–20 s, no jitter); see reconnectDelay.
    retryStrategy: (attempt: number) => reconnectDelay(attempt),
    // TLS stays verified (Node's default rejectUnauthorized); a private CA is added, never a bypass.
    ...(tls ? { tls: { servername: u.hostname, ...(caCertPath ? { ca: readFileSync(caCertPath) } : {}) } } : {}),
  } satisfies RedisOptions;
}

/**
 * Options for a connection that *adds* jobs (CLIs, scripts, benchmarks): fail fast instead of
 * waiting out an outage. Commands issued while disconnected reject at once (no offline queue),
 * a command in flight when the socket drops is retried once, and connecting gives up after
 * `connectTimeoutMs` — so the caller sees an error and can retry with the same jobId, which BullMQ
 * dedupes. Never use these for a Worker: its blocking commands need the defaults above.
 */
export function producerRedisOptions(url: string, caCertPath?: string, connectTimeoutMs = 5_000) {
  return {
    ...redisOptions(url, caCertPath),
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: connectTimeoutMs,
  } satisfies RedisOptions;
}

/** The production handler set, sharing one database handle: one entry per registered contract. */
export function createHandlers(
  db: Db,
  config: Pick<WorkerConfig, "auditBatchMax" | "resendApiKey" | "resendBaseUrl" | "emailFrom"> &
    Partial<Pick<WorkerConfig, "auditWritesInFlight" | "concurrency" | "stripeSecretKey" | "stripeApiBaseUrl">>,
): FleetHandlers {
  return {
    audit: createAuditHandler(db, {
      maxBatch: config.auditBatchMax,
      writesInFlight: config.auditWritesInFlight,
      concurrency: config.concurrency?.audit,
    }).handle,
    email: createEmailHandler(db, config),
    "stripe-webhook": createStripeWebhookHandler(db, { stripe: createStripeApi({ secretKey: config.stripeSecretKey, apiBaseUrl: config.stripeApiBaseUrl }) }),
    report: createReportHandler(db),
  };
}

export async function startFleet(config: FleetConfig, deps: FleetDeps): Promise<Fleet> {
  const log = deps.log ?? jsonLog;
  // Completed-job lines, sampled above config.jobLog.perSecond per queue (worker/job-log.ts).
  const jobLog = createJobLog(log, config.jobLog);
  const unhandled = config.queues.filter((queue) => deps.handlers[queue] === undefined);
  if (unhandled.length > 0) throw new Error(`no handler for queue(s) ${unhandled.join(", ")}`);
  const connection = redisOptions(config.redisUrl, config.redisCaCertPath);

  // The fleet's own command connection (script preload, readiness). No offline queue and one
  // retry, so a readiness probe fails fast instead of waiting for a reconnect.
  const redis = new Redis({ ...connection, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  redis.on("error", (err: Error) => log("warn", "redis connection error", { error: err.message }));
  await redis.connect();
  try {
    await checkEvictionPolicy(redis, log);
    await loadScripts(redis, deps.scripts ?? PRELOADED_SCRIPTS, log);
  } catch (err) {
    redis.disconnect();
    throw err;
  }

  // Completed jobs per queue for the autoscaler's rate: one HINCRBY per busy queue per 15 s.
  const throughput = createThroughputCounter({ redis, prefix: config.queuePrefix, log });
  const workers = new Map<QueueName, Worker>();
  const gates = new Map<QueueName, OutageGate>();
  const jobs = createJobMetrics(config.queues);
  const backoff = {
    minMs: config.outageBackoffMinMs ?? DEFAULT_OUTAGE_BACKOFF.minMs,
    maxMs: config.outageBackoffMaxMs ?? DEFAULT_OUTAGE_BACKOFF.maxMs,
  };
  for (const queue of config.queues) {
    const contract = contracts[queue];
    const handler = deps.handlers[queue];
    const options: WorkerOptions = {
      connection,
      prefix: config.queuePrefix,
      concurrency: config.concurrency[queue],
      // BullMQ takes drainDelay in seconds.
      drainDelay: config.drainDelaySeconds,
      stalledInterval: config.stalledIntervalMs,
      lockDuration: config.lockDurationMs,
      // Resend allows 2 requests/s per team by default; the limit is per queue, across all
      // workers of the fleet, enforced by BullMQ in Redis.
      ...(queue === "email" ? { limiter: { max: config.emailRatePerSecond, duration: 1000 } } : {}),
    };
    // The cast bridges one contract's handler type to the union the map holds; createProcessor
    // re-validates job.data against that same contract before calling it.
    const gate = createOutageGate(backoff);
    let worker: Worker | undefined;
    const processor = createProcessor(contract, handler as never, {
      log,
      outages: gate,
      jobLog,
      // BullMQ's manual rate limit: sets the queue's limiter key; the job is then moved back to wait.
      holdOff: async (ms) => {
        jobs.heldOff(queue);
        await worker?.rateLimit(ms);
      },
    });
    worker = new Worker(queue, processor, options);
    gates.set(queue, gate);
    // Without a listener an 'error' event would throw; BullMQ reconnects by itself.
    worker.on("error", (err) => log("warn", "worker error", { queue, error: err.message }));
    worker.on("completed", () => throughput.completed(queue));
    jobs.watch(queue, worker);
    workers.set(queue, worker);
  }
  await Promise.all([...workers.values()].map((w) => w.waitUntilReady()));
  await announce(redis, config, log);

  return {
    workers,
    ping: async () => {
      const reply = await redis.ping();
      if (reply !== "PONG") throw new Error(`unexpected PING reply ${reply}`);
    },
    jobs,
    backlog: () => readBacklog(redis, config.queuePrefix, config.queues),
    outages: () => {
      const out: Partial<Record<QueueName, OutageState>> = {};
      for (const [queue, gate] of gates) {
        const state = gate.current();
        if (state) out[queue] = state;
      }
      return out;
    },
    close: async (timeoutMs) => {
      const closing = Promise.all([...workers.values()].map((w) => w.close()));
      let drained = true;
      if (timeoutMs !== undefined) {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs)));
        drained = (await Promise.race([closing.then(() => "closed" as const), timedOut])) === "closed";
        clearTimeout(timer);
        // BullMQ's close(true) would only return the close() already pending, which waits for the
        // running jobs forever. Dropping the workers' connections instead stops their lock renewal:
        // the locks lapse and the stalled check hands the jobs to another worker.
        if (!drained) {
          closing.catch(() => undefined);
          // BullMQ's disconnect() first awaits a connection still being (re)established, which a
          // Redis that is down never completes: bounded, so shutdown always ends.
          await Promise.all([...workers.values()].map((w) => within(w.disconnect().catch(() => undefined), 1_000)));
        }
      } else {
        await closing;
      }
      jobLog.flush();
      await within(throughput.close(), 1_000);
      await within(redis.quit().catch(() => redis.disconnect()), 1_000);
      redis.disconnect();
      return { drained };
    },
  };
}

/** Waits for `work` at most `ms`; whatever it was doing carries on unobserved. */
async function within(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/**
 * Leaves the hash `<prefix>:edgefleet:fleet` (field = queue, value = ISO start time of the latest
 * worker for it) for the edge's `/v1/health`: an edge configured with another QUEUE_PREFIX than any
 * fleet would accept jobs nobody processes; the key makes that visible. No expiry: a fleet scaled to
 * zero still owns its prefix.
 */
export function fleetKey(prefix: string): string {
  return `${prefix}:edgefleet:fleet`;
}

async function announce(redis: Redis, config: FleetConfig, log: Log): Promise<void> {
  const startedAt = new Date().toISOString();
  await redis.hset(fleetKey(config.queuePrefix), Object.fromEntries(config.queues.map((q) => [q, startedAt])));
  log("info", "fleet announced", { prefix: config.queuePrefix, key: fleetKey(config.queuePrefix) });
}

/**
 * The edge's scripts as it sends them: plain, and behind the rate-limit prelude (edge/queue/limiter.ts;
 * rate limits are on by default), so neither form costs a NOSCRIPT round trip and a 26 KB EVAL.
 */
export const PRELOADED_SCRIPTS: readonly LuaScript[] = EDGE_SCRIPTS.flatMap((s) => [s, guardedScript(s)]);

/** SCRIPT LOAD the edge's scripts so its EVALSHA hits; checks Redis agrees on each SHA-1. */
async function loadScripts(redis: Redis, scripts: readonly LuaScript[], log: Log): Promise<void> {
  for (const script of scripts) {
    const [loaded, expected] = await Promise.all([
      redis.script("LOAD", script.content) as Promise<string>,
      script.sha1(),
    ]);
    if (loaded !== expected) {
      throw new Error(`SCRIPT LOAD ${script.name}: Redis returned ${loaded}, expected ${expected}`);
    }
  }
  log("info", "edge scripts loaded", { count: scripts.length });
}
