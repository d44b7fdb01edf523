// Shared helpers for the worker's integration tests: unique prefixes, a fleet per test, waiting
// for a job to settle, and removing every Redis key a test created.
import { randomUUID } from "node:crypto";
import { Queue, type Job, type JobsOptions } from "bullmq";
import { Redis } from "ioredis";
import { inject } from "vitest";
import type { JobContract, JobInput, QueueName } from "../../shared/jobs/contract.ts";
import { QUEUE_NAMES } from "../../shared/jobs/registry.ts";
import { createDb, type Database } from "../../worker/db.ts";
import { redisOptions, startFleet, type Fleet, type FleetConfig, type FleetDeps } from "../../worker/fleet.ts";
import type { Log } from "../../worker/runner.ts";

export function uniqueId(label: string): string {
  return `${label}-${randomUUID().slice(0, 8)}`;
}

/** Collects log lines instead of printing them; tests can assert on them. */
export function memoryLog(): { log: Log; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, log: (level, msg, fields) => void lines.push({ level, msg, ...fields }) };
}

export function testFleetConfig(overrides: Partial<FleetConfig> = {}): FleetConfig {
  return {
    redisUrl: inject("redisUrl"),
    redisCaCertPath: undefined,
    queuePrefix: uniqueId("t"),
    queues: [...QUEUE_NAMES],
    concurrency: { audit: 50, email: 5, "stripe-webhook": 5, report: 5 },
    drainDelaySeconds: 1,
    stalledIntervalMs: 30_000,
    lockDurationMs: 30_000,
    emailRatePerSecond: 100,
    ...overrides,
  };
}

export interface TestFleet {
  fleet: Fleet;
  config: FleetConfig;
  queue(name: QueueName): Queue;
  /** Adds a job with the contract's defaults (plus overrides), as the edge would. */
  add<C extends JobContract>(contract: C, data: JobInput<C>, opts?: JobsOptions): Promise<Job>;
  stop(): Promise<void>;
}

export async function startTestFleet(deps: FleetDeps, overrides: Partial<FleetConfig> = {}): Promise<TestFleet> {
  const config = testFleetConfig(overrides);
  const fleet = await startFleet(config, deps);
  const queues = new Map<QueueName, Queue>();
  const queue = (name: QueueName) => {
    let q = queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: redisOptions(config.redisUrl, config.redisCaCertPath), prefix: config.queuePrefix });
      queues.set(name, q);
    }
    return q;
  };
  return {
    fleet,
    config,
    queue,
    add: (contract, data, opts: JobsOptions = {}) =>
      queue(contract.queue).add(contract.name, data, { ...contract.defaults, ...opts }),
    stop: async () => {
      await fleet.close(5_000);
      await Promise.all([...queues.values()].map((q) => q.close()));
      await deleteKeys(config.redisUrl, config.queuePrefix, config.redisCaCertPath);
    },
  };
}

export async function deleteKeys(redisUrl: string, prefix: string, caCertPath?: string): Promise<void> {
  const redis = new Redis(redisOptions(redisUrl, caCertPath));
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

/**
 * Polls until `check` returns a value (no fixed sleeps): for effects with nothing to wait on, such
 * as a row appearing in Postgres. `timeoutMs` only bounds a hang.
 */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls until the job is completed or failed (a retry in between is neither). */
export async function settled(queue: Queue, jobId: string, timeoutMs = 15_000): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await queue.getJobState(jobId);
    if (state === "completed" || state === "failed") {
      const job = await queue.getJob(jobId);
      if (!job) throw new Error(`job ${jobId} vanished`);
      return job;
    }
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${state} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function testDb(): Database {
  return createDb(inject("databaseUrl"), { driver: "pg", max: 5 });
}
