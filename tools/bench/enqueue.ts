// Phase 1 and 2: enqueue throughput and latency through the edge, an empty Worker (the floor of
// `wrangler dev` itself) and BullMQ `Queue.add` from Node, measured in interleaved rounds, with
// the Redis cost of each job and the CPU each process spent. Two probe Workers between the empty
// one and the edge (socket-open-worker.ts, socket-ping-worker.ts) split the edge/empty gap into
// its steps: opening the per-request socket, one AUTH + PING round trip, and the app itself.
// "edge-do" is the same edge bundle with REDIS_TRANSPORT=durable-object (one held connection in a
// RedisConnection object, group commit); its probe "do-ping" (do-ping-worker.ts) is one RPC to that
// object and a PING on its connection, the floor of that path.
// Phase 3, unloaded latency: at the throughput rounds' concurrency workerd is CPU-bound, so their
// p50 is about concurrency ÷ throughput (queueing); one request at a time shows what a request costs.
import { Queue, type JobsOptions } from "bullmq";
import type { Redis } from "ioredis";
import { auditContract } from "../../shared/jobs/audit.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { closedLoop, httpClient, median, percentile, type LoopResult } from "./load.ts";
import { baseline, emptyCounters, measure, sum, type RedisCounters } from "./redis-stats.ts";
import { addInto, emptyUsage, startMeter, type Usage } from "./system.ts";

export type TargetName = "edge" | "edge-do" | "empty" | "socket-open" | "socket-ping" | "do-ping" | "fetch-ping" | "node";

export interface EnqueueSettings {
  concurrency: number;
  requests: number;
  warmup: number;
  rounds: number;
  /** Per-request timeout and the bound on one round's wall time. */
  requestTimeoutMs: number;
  roundDeadlineMs: number;
  /** Unloaded latency of LATENCY_TARGETS after the throughput rounds; absent = skipped. */
  latency?: LatencySettings;
}

export interface LatencySettings {
  /** Measured requests per target, split evenly over `rounds` interleaved rounds. */
  requests: number;
  /** Unmeasured requests per target before each of its latency rounds: wrangler dev closes the
   *  keep-alive socket while other targets run, and the reconnect must not land in the samples. */
  warmup: number;
}

/** The probes would only repeat the throughput gap's split; the three paths a reader compares. */
export const LATENCY_TARGETS: readonly TargetName[] = ["edge", "edge-do", "empty", "node"];
/** p99.9 is reported only from this many samples up (nearest rank: at least 2 samples above it). */
export const P999_MIN_SAMPLES = 2000;

export interface LatencyResult {
  /** Percentiles over the samples of all latency rounds pooled; p999Ms is NaN below P999_MIN_SAMPLES. */
  samples: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  /** Each round's p50, to show the spread between rounds. */
  roundP50Ms: number[];
  errors: number;
  firstError?: string;
}

export interface EnqueueEnv {
  redis: Redis;
  redisUrl: string;
  redisPid: number;
  edge: { url: string; pid: number; apiKey: string; prefix: string };
  /** The edge bundle with REDIS_TRANSPORT=durable-object, its own queue prefix, the same API key. */
  edgeDo: { url: string; pid: number; prefix: string };
  empty: { url: string; pid: number };
  socketOpen: { url: string; pid: number };
  socketPing: { url: string; pid: number };
  doPing: { url: string; pid: number };
  fetchPing: { url: string; pid: number };
  nodePrefix: string;
  progress: (line: string) => void;
}

export interface TargetResult {
  name: TargetName;
  rounds: LoopResult[];
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  errors: number;
  firstError?: string;
  /** Redis counters over the measured rounds (warm-up excluded). */
  redis: RedisCounters;
  /** CPU and run-queue wait per process, and the whole machine's CPU, over the measured rounds. */
  usage: Usage;
  /** HTTP connections the client opened during the measured rounds (keep-alive check). */
  clientConnections?: number;
  /** Jobs found in the queue's wait list afterwards (accepted requests incl. warm-ups and latency rounds). */
  jobsInRedis?: number;
  accepted: number;
  latency?: LatencyResult;
}

/** One audit event as a client posts it; the id makes every request a distinct job. */
export function auditEvent(id: string) {
  return { id, name: "user.signed_up", type: "domain" as const, accountId: "acct_bench", payload: { plan: "pro", seats: 3 } };
}

interface Target {
  name: TargetName;
  /** Process tree whose CPU is charged to this target (the wrangler dev instance), if any. */
  pid?: number;
  send: (id: string) => Promise<void>;
  newConnections?: () => number;
  prefix?: string;
  close: () => Promise<void>;
}

function targets(env: EnqueueEnv, settings: EnqueueSettings): Target[] {
  // Every Worker gets the same POST /v1/events body; only the edge reads the path and the key.
  const worker = (name: TargetName, at: { url: string; pid: number }, headers: Record<string, string> = {}, prefix?: string): Target => {
    const client = httpClient(
      { url: `${at.url}/v1/events`, headers, expectStatus: 202, timeoutMs: settings.requestTimeoutMs },
      settings.concurrency,
    );
    return {
      name,
      pid: at.pid,
      send: (id) => client.sendBody(JSON.stringify(auditEvent(id))),
      newConnections: client.takeNewConnections,
      ...(prefix ? { prefix } : {}),
      close: async () => client.close(),
    };
  };
  const queue = new Queue(auditContract.queue, { connection: redisOptions(env.redisUrl), prefix: env.nodePrefix });
  // Cast: shared/jobs/contract.ts's KeepJobs object form is looser than BullMQ's (age optional).
  const opts = auditContract.defaults as JobsOptions;
  return [
    worker("edge", env.edge, { authorization: `Bearer ${env.edge.apiKey}` }, env.edge.prefix),
    worker("edge-do", env.edgeDo, { authorization: `Bearer ${env.edge.apiKey}` }, env.edgeDo.prefix),
    worker("empty", env.empty),
    worker("socket-open", env.socketOpen),
    worker("socket-ping", env.socketPing),
    worker("do-ping", env.doPing),
    worker("fetch-ping", env.fetchPing),
    {
      name: "node",
      // The edge stamps occurredAt; Queue.add gets the same final payload and the contract's options.
      send: async (id) => {
        await queue.add(auditContract.name, { ...auditEvent(id), occurredAt: new Date().toISOString() }, { ...opts, jobId: id });
      },
      prefix: env.nodePrefix,
      close: () => queue.close(),
    },
  ];
}

export async function runEnqueue(env: EnqueueEnv, settings: EnqueueSettings): Promise<TargetResult[]> {
  // Before the targets exist: Queue's connection, opened in the background, must not land in it.
  const base = await baseline(env.redis);
  const all = targets(env, settings);
  const results = new Map<TargetName, TargetResult>();
  try {
    for (const t of all) {
      env.progress(`enqueue: warm-up ${t.name} (${settings.warmup} requests)`);
      const warm = await closedLoop(
        { concurrency: settings.concurrency, count: settings.warmup, deadlineMs: settings.roundDeadlineMs },
        (i) => t.send(`w-${t.name}-${i}`),
      );
      if (warm.errors > 0) throw new Error(`warm-up of ${t.name} failed ${warm.errors} times: ${warm.firstError}`);
      t.newConnections?.();
      results.set(t.name, {
        name: t.name, rounds: [], perSecond: 0, p50Ms: 0, p99Ms: 0, ok: 0, errors: 0,
        redis: emptyCounters(), usage: emptyUsage(), accepted: warm.ok,
        ...(t.newConnections ? { clientConnections: 0 } : {}),
      });
    }
    for (let round = 0; round < settings.rounds; round++) {
      // Rotate the order so no target always runs first (or right after the heaviest one).
      const order = all.map((_, i) => all[(i + round) % all.length] as Target);
      for (const t of order) {
        const r = results.get(t.name) as TargetResult;
        const meter = startMeter(
          [{ pid: env.redisPid, label: "redis" }, ...(t.pid ? [{ pid: t.pid, label: "wrangler dev" }] : [])],
          t.name === "node" ? "bench (Queue.add)" : "bench (HTTP client)",
        );
        const [loop, redis] = await measure(env.redis, base, () =>
          closedLoop(
            { concurrency: settings.concurrency, count: settings.requests, deadlineMs: settings.roundDeadlineMs },
            (i) => t.send(`r${round}-${t.name}-${i}`),
          ),
        );
        addInto(r.usage, meter());
        r.redis = sum(r.redis, redis);
        r.rounds.push(loop);
        r.ok += loop.ok;
        r.accepted += loop.ok;
        r.errors += loop.errors;
        if (loop.firstError && !r.firstError) r.firstError = loop.firstError;
        if (t.newConnections) r.clientConnections = (r.clientConnections ?? 0) + t.newConnections();
        env.progress(
          `enqueue: round ${round + 1}/${settings.rounds} ${t.name.padEnd(11)} ${loop.perSecond.toFixed(0).padStart(6)} req/s  ` +
            `p50 ${loop.p50Ms.toFixed(2)} ms  p99 ${loop.p99Ms.toFixed(2)} ms  errors ${loop.errors}`,
        );
      }
    }
    if (settings.latency) {
      const latencyTargets = all.filter((t) => LATENCY_TARGETS.includes(t.name));
      await measureLatency(env, settings, settings.latency, latencyTargets, results);
    }
    for (const t of all) {
      const r = results.get(t.name) as TargetResult;
      r.perSecond = median(r.rounds.map((x) => x.perSecond));
      r.p50Ms = median(r.rounds.map((x) => x.p50Ms));
      r.p99Ms = median(r.rounds.map((x) => x.p99Ms));
      if (t.prefix) r.jobsInRedis = await env.redis.llen(`${t.prefix}:${auditContract.queue}:wait`);
    }
  } finally {
    await Promise.all(all.map((t) => t.close().catch(() => undefined)));
  }
  return all.map((t) => results.get(t.name) as TargetResult);
}

/**
 * The run's own checks for "edge-do", the same verify.ts makes for "edge" and "node" (every
 * request answered 202, and one job in Redis per accepted request); one line per failed check.
 */
export function verifyEdgeDo(results: readonly TargetResult[]): string[] {
  const r = results.find((x) => x.name === "edge-do");
  if (!r) return [];
  const failures: string[] = [];
  if (r.errors > 0) failures.push(`enqueue edge-do: ${r.errors} requests failed (${r.firstError ?? "no message"})`);
  if (r.latency && r.latency.errors > 0) failures.push(`enqueue edge-do: ${r.latency.errors} latency requests failed (${r.latency.firstError ?? "no message"})`);
  if (r.jobsInRedis !== r.accepted) failures.push(`enqueue edge-do: ${r.jobsInRedis} jobs in Redis for ${r.accepted} accepted requests`);
  return failures;
}

/**
 * One request at a time (closed loop, concurrency 1), in rounds interleaved across the targets
 * like the throughput rounds; percentiles over all rounds' samples pooled. Accepted requests are
 * added to `accepted`, so the jobs-in-Redis check still covers every request sent.
 */
async function measureLatency(
  env: EnqueueEnv,
  settings: EnqueueSettings,
  latency: LatencySettings,
  all: Target[],
  results: Map<TargetName, TargetResult>,
): Promise<void> {
  const perRound = Math.ceil(latency.requests / settings.rounds);
  const samples = new Map<TargetName, number[]>(all.map((t) => [t.name, []]));
  for (const t of all) {
    (results.get(t.name) as TargetResult).latency = { samples: 0, p50Ms: 0, p99Ms: 0, p999Ms: 0, roundP50Ms: [], errors: 0 };
  }
  const loop = (count: number, send: (i: number) => Promise<void>) =>
    closedLoop({ concurrency: 1, count, deadlineMs: settings.roundDeadlineMs }, send);
  for (let round = 0; round < settings.rounds; round++) {
    const order = all.map((_, i) => all[(i + round) % all.length] as Target);
    for (const t of order) {
      const r = results.get(t.name) as TargetResult;
      const l = r.latency as LatencyResult;
      // A failed warm-up request (a socket the server closed just then) is not a result; the
      // measured loop's errors are.
      const warm = await loop(latency.warmup, (i) => t.send(`lw${round}-${t.name}-${i}`));
      const measured = await loop(perRound, (i) => t.send(`l${round}-${t.name}-${i}`));
      r.accepted += warm.ok + measured.ok;
      (samples.get(t.name) as number[]).push(...measured.samplesMs);
      l.roundP50Ms.push(measured.p50Ms);
      l.errors += measured.errors;
      if (measured.firstError && !l.firstError) l.firstError = measured.firstError;
      env.progress(
        `enqueue: latency round ${round + 1}/${settings.rounds} ${t.name.padEnd(6)} ${measured.ok} requests one at a time  ` +
          `p50 ${measured.p50Ms.toFixed(2)} ms  p99 ${measured.p99Ms.toFixed(2)} ms  errors ${measured.errors}`,
      );
    }
  }
  for (const t of all) {
    const l = (results.get(t.name) as TargetResult).latency as LatencyResult;
    const sorted = (samples.get(t.name) as number[]).sort((a, b) => a - b);
    l.samples = sorted.length;
    l.p50Ms = percentile(sorted, 0.5);
    l.p99Ms = percentile(sorted, 0.99);
    l.p999Ms = sorted.length >= P999_MIN_SAMPLES ? percentile(sorted, 0.999) : Number.NaN;
  }
}
