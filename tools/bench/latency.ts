// Round trips on the wire: each way of enqueueing, with latency injected between it and Redis
// (tools/testing/delay-proxy.ts, RTT/2 each way, 127.0.0.1 only), at several RTTs. One request at
// a time (closed loop, concurrency 1) after a warm-up, so p50 is what one enqueue costs:
//   socket  the edge, REDIS_URL rediss:// — a fresh TLS socket per request (the default)
//   rest    the edge, Upstash REST (the project's stand-in, which sits next to its Redis)
//   do      the edge, REDIS_TRANSPORT=durable-object — the RedisConnection object holds the TLS
//           connection across requests and group-commits
//   node    BullMQ Queue.add from Node on a warm TLS connection (the reference: one round trip)
// Round trips ≈ (p50 − the same path's p50 at RTT 0) ÷ RTT. The proxy cannot delay the TCP
// handshake (connect() completes against it on loopback): every connection a path opens per
// request costs one more RTT on a real network than measured here; `connections per request`
// says how many that is.
//
// Then throughput under wrangler dev, no added latency, TLS as in production: the empty Worker,
// the edge over sockets and the edge through the Durable Object, in interleaved rounds.
import { join } from "node:path";
import { Queue, type JobsOptions } from "bullmq";
import { Redis } from "ioredis";
import { auditContract } from "../../shared/jobs/audit.ts";
import { EDGE_SCRIPTS } from "../../shared/jobs/bullmq-scripts.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { startEdge, type EdgeProcess } from "../dev/edge-process.ts";
import { secret, startRedis, testTls } from "../dev/local-services.ts";
import { startUpstashStandIn } from "../../edge/queue/upstash-stand-in.test-helper.ts";
import { startDelayProxy, type DelayProxy } from "../testing/delay-proxy.ts";
import { auditEvent } from "./enqueue.ts";
import { closedLoop, httpClient, median, percentile, type LoopResult } from "./load.ts";
import { startMeter } from "./system.ts";

export type LatencyPath = "socket" | "rest" | "do" | "node";
export const LATENCY_PATHS: readonly LatencyPath[] = ["socket", "rest", "do", "node"];

export interface LatencySettings {
  rttsMs: number[];
  /** Measured sequential requests per path and RTT, split over `rounds` interleaved rounds, after `warmup` unmeasured ones. */
  requests: number;
  rounds: number;
  warmup: number;
  /** Throughput part: requests per round and target, rounds, concurrency. */
  throughput?: { requests: number; rounds: number; concurrency: number };
}

export interface LatencyCell {
  path: LatencyPath;
  rttMs: number;
  samples: number;
  p50Ms: number;
  p99Ms: number;
  /** (p50 − p50 at RTT 0) ÷ RTT; NaN at RTT 0. */
  roundTrips: number;
  /** Connections to Redis (or the REST endpoint) opened per measured request. */
  connectionsPerRequest: number;
  errors: number;
  firstError?: string;
}

export type ThroughputTarget = "empty" | "socket" | "do";
export interface ThroughputResult {
  name: ThroughputTarget;
  rounds: LoopResult[];
  perSecond: number;
  p50Ms: number;
  /** Connections Redis accepted per request over the measured rounds (INFO stats). */
  redisConnectionsPerRequest: number;
  /** CPU of its wrangler dev process tree (workerd, the Durable Object included) per request: on a
   *  loaded machine a steadier figure than req/s, which also depends on what else gets the cores. */
  cpuMsPerRequest: number;
  errors: number;
  firstError?: string;
}

export interface LatencyBenchResult {
  cells: LatencyCell[];
  throughput?: ThroughputResult[];
  /** Jobs found in Redis per path vs requests the path had accepted (warm-ups included). */
  jobs: Record<LatencyPath | "socket-tput" | "do-tput", { accepted: number; inRedis: number }>;
}

export interface LatencyEnv {
  /** The edge bundle bench.ts built (wrangler deploy --dry-run). */
  edgeScript: string;
  emptyScript?: string | undefined;
  apiKey: string;
  apiKeyHashes: string;
  dataDir: string;
  log: (name: string) => ((text: string) => unknown) | undefined;
  progress: (line: string) => unknown;
}

export async function benchLatency(env: LatencyEnv, settings: LatencySettings): Promise<LatencyBenchResult> {
  const stops: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
  };
  try {
    // TLS Redis of its own, the edge's scripts loaded as the fleet does at start-up.
    const redis = await startRedis({ dataDir: join(env.dataDir, "redis"), tls: true });
    stops.push(redis.stop);
    const admin = new Redis(redisOptions(redis.url));
    stops.push(async () => admin.disconnect());
    for (const script of EDGE_SCRIPTS) await admin.script("LOAD", script.content);
    const tlsPort = redis.tlsPort as number;
    const tlsUrl = redis.tlsUrl as string;
    const ca = testTls().caCert;

    const proxy = async () => {
      const p = await startDelayProxy({ host: "127.0.0.1", port: tlsPort });
      stops.push(() => p.close());
      return p;
    };
    const standIn = await startUpstashStandIn({ redisUrl: redis.url, token: secret() });
    stops.push(() => standIn.stop());
    const restPort = Number(new URL(standIn.url).port);
    const proxies: Record<LatencyPath, DelayProxy> = {
      socket: await proxy(),
      do: await proxy(),
      node: await proxy(),
      rest: await startDelayProxy({ host: "127.0.0.1", port: restPort }).then((p) => (stops.push(() => p.close()), p)),
    };

    const prefix = (path: string) => `bench-rtt-${path}`;
    const base = { API_KEY_HASHES: env.apiKeyHashes, RATE_LIMITS: "off" };
    // workerd trusts the test CA only through NODE_EXTRA_CA_CERTS, read when wrangler starts.
    const previousCa = process.env.NODE_EXTRA_CA_CERTS;
    process.env.NODE_EXTRA_CA_CERTS = ca;
    const edge = (name: string, vars: Record<string, string>) =>
      startEdge({ script: env.edgeScript, vars: { ...base, ...vars }, log: env.log(name) }).then((e) => (stops.push(e.stop), e));
    let edges: Record<"socket" | "rest" | "do", EdgeProcess>;
    try {
      // One after another: on a loaded machine three wrangler starts at once can miss startEdge's minute.
      const socket = await edge("rtt socket edge", { REDIS_URL: proxies.socket.rewrite(tlsUrl), QUEUE_PREFIX: prefix("socket") });
      const rest = await edge("rtt rest edge", {
        UPSTASH_REDIS_REST_URL: `http://127.0.0.1:${proxies.rest.port}`, UPSTASH_REDIS_REST_TOKEN: standIn.token, QUEUE_PREFIX: prefix("rest"),
      });
      const doEdge = await edge("rtt do edge", { REDIS_URL: proxies.do.rewrite(tlsUrl), REDIS_TRANSPORT: "durable-object", QUEUE_PREFIX: prefix("do") });
      edges = { socket, rest, do: doEdge };
    } finally {
      if (previousCa === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
      else process.env.NODE_EXTRA_CA_CERTS = previousCa;
    }

    const queue = new Queue(auditContract.queue, { connection: redisOptions(proxies.node.rewrite(tlsUrl), ca), prefix: prefix("node") });
    stops.push(() => queue.close());
    const opts = auditContract.defaults as JobsOptions;
    const clients = (["socket", "rest", "do"] as const).map((name) => {
      const client = httpClient(
        { url: `${edges[name].url}/v1/events`, headers: { authorization: `Bearer ${env.apiKey}` }, expectStatus: 202, timeoutMs: 15_000 },
        1,
      );
      stops.push(async () => client.close());
      return [name, client] as const;
    });
    const send: Record<LatencyPath, (id: string) => Promise<void>> = {
      ...(Object.fromEntries(clients.map(([name, client]) => [name, (id: string) => client.sendBody(JSON.stringify(auditEvent(id)))])) as Record<
        "socket" | "rest" | "do",
        (id: string) => Promise<void>
      >),
      node: async (id) => {
        await queue.add(auditContract.name, { ...auditEvent(id), occurredAt: new Date().toISOString() }, { ...opts, jobId: id });
      },
    };

    const accepted: Record<string, number> = { socket: 0, rest: 0, do: 0, node: 0, "socket-tput": 0, "do-tput": 0 };
    // Rounds interleave the RTTs and paths, so a burst of load on this shared machine lands on
    // every cell alike instead of on one RTT's floor; samples pool per (path, RTT).
    const rounds = Math.max(1, Math.min(settings.rounds, settings.requests));
    const pooled = new Map<string, { samples: number[]; errors: number; firstError?: string; connections: number; requests: number }>();
    for (let round = 0; round < rounds; round++) {
      for (const rtt of settings.rttsMs) {
        for (const p of Object.values(proxies)) p.setRtt(rtt);
        for (const path of LATENCY_PATHS) {
          const loop = (count: number, tag: string) =>
            closedLoop({ concurrency: 1, count, deadlineMs: 120_000 }, (i) => send[path](`${tag}${round}-${rtt}-${path}-${i}`));
          // Warm-up: after an RTT change, and for the REST pool and the object's connection.
          const warm = await loop(round === 0 ? settings.warmup : 1, "w");
          const before = proxies[path].connections;
          const count = Math.ceil(settings.requests / rounds);
          const measured = await loop(count, "m");
          accepted[path] = (accepted[path] ?? 0) + warm.ok + measured.ok;
          const key = `${path}@${rtt}`;
          const cell = pooled.get(key) ?? { samples: [], errors: 0, connections: 0, requests: 0 };
          cell.samples.push(...measured.samplesMs);
          cell.errors += measured.errors + warm.errors;
          cell.firstError ??= measured.firstError ?? warm.firstError;
          cell.connections += proxies[path].connections - before;
          cell.requests += count;
          pooled.set(key, cell);
        }
      }
      env.progress(`latency: round ${round + 1}/${rounds} done`);
    }
    const cells: LatencyCell[] = [];
    for (const rtt of settings.rttsMs) {
      for (const path of LATENCY_PATHS) {
        const pool = pooled.get(`${path}@${rtt}`) as { samples: number[]; errors: number; firstError?: string; connections: number; requests: number };
        const sorted = [...pool.samples].sort((a, b) => a - b);
        const p50Ms = percentile(sorted, 0.5);
        const floor = cells.find((c) => c.path === path && c.rttMs === 0)?.p50Ms ?? Number.NaN;
        const cell: LatencyCell = {
          path, rttMs: rtt, samples: sorted.length, p50Ms, p99Ms: percentile(sorted, 0.99),
          roundTrips: rtt === 0 ? Number.NaN : (p50Ms - floor) / rtt,
          connectionsPerRequest: pool.connections / Math.max(1, pool.requests),
          errors: pool.errors,
          ...(pool.firstError ? { firstError: pool.firstError } : {}),
        };
        cells.push(cell);
        env.progress(
          `latency: RTT ${String(rtt).padStart(3)} ms ${path.padEnd(6)} p50 ${cell.p50Ms.toFixed(1)} ms  p99 ${cell.p99Ms.toFixed(1)} ms  ` +
            `round trips ${Number.isFinite(cell.roundTrips) ? cell.roundTrips.toFixed(2) : "–"}  connections/request ${cell.connectionsPerRequest.toFixed(2)}  errors ${cell.errors}`,
        );
      }
    }
    const inRedis = async (p: string) => admin.llen(`${p}:${auditContract.queue}:wait`);
    const jobs = {} as LatencyBenchResult["jobs"];
    for (const path of LATENCY_PATHS) jobs[path] = { accepted: accepted[path] ?? 0, inRedis: await inRedis(prefix(path)) };
    await Promise.all(Object.values(edges).map((e) => e.stop()));

    let throughput: ThroughputResult[] | undefined;
    if (settings.throughput && env.emptyScript) {
      const connectionsReceived = async () => Number(/total_connections_received:(\d+)/.exec(await admin.info("stats"))?.[1]);
      throughput = await runThroughput(env, settings.throughput, { tlsUrl, ca, prefix, accepted, edge, connectionsReceived });
      for (const name of ["socket", "do"] as const) {
        jobs[`${name}-tput`] = { accepted: accepted[`${name}-tput`] ?? 0, inRedis: await inRedis(prefix(`${name}-tput`)) };
      }
    }
    return { cells, jobs, ...(throughput ? { throughput } : {}) };
  } finally {
    await stopAll();
  }
}

async function runThroughput(
  env: LatencyEnv,
  t: NonNullable<LatencySettings["throughput"]>,
  ctx: {
    tlsUrl: string; ca: string; prefix: (p: string) => string; accepted: Record<string, number>;
    /** Redis' total_connections_received (the bench's own INFO connection counts once per call). */
    connectionsReceived: () => Promise<number>;
    edge: (name: string, vars: Record<string, string>) => Promise<EdgeProcess>;
  },
): Promise<ThroughputResult[]> {
  env.progress(`latency: throughput, empty Worker vs edge over sockets vs edge through the Durable Object (TLS, no added latency), ${t.rounds} rounds × ${t.requests} requests …`);
  const previousCa = process.env.NODE_EXTRA_CA_CERTS;
  process.env.NODE_EXTRA_CA_CERTS = ctx.ca;
  const started: EdgeProcess[] = [];
  try {
    const empty = await startEdge({ script: env.emptyScript as string, vars: {}, readyPath: "/", log: env.log("tput empty") });
    started.push(empty);
    started.push(await ctx.edge("tput socket edge", { REDIS_URL: ctx.tlsUrl, QUEUE_PREFIX: ctx.prefix("socket-tput") }));
    started.push(await ctx.edge("tput do edge", { REDIS_URL: ctx.tlsUrl, REDIS_TRANSPORT: "durable-object", QUEUE_PREFIX: ctx.prefix("do-tput") }));
  } catch (err) {
    await Promise.all(started.map((e) => e.stop()));
    throw err;
  } finally {
    if (previousCa === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
    else process.env.NODE_EXTRA_CA_CERTS = previousCa;
  }
  const [empty, socket, doEdge] = started as [EdgeProcess, EdgeProcess, EdgeProcess];
  const targets = ([["empty", empty], ["socket", socket], ["do", doEdge]] as const).map(([name, at]) => ({
    name,
    pid: at.child.pid ?? 0,
    client: httpClient(
      { url: `${at.url}/v1/events`, headers: name === "empty" ? {} : { authorization: `Bearer ${env.apiKey}` }, expectStatus: 202, timeoutMs: 15_000 },
      t.concurrency,
    ),
  }));
  const results = new Map<ThroughputTarget, ThroughputResult>(targets.map(({ name }) => [name, { name, rounds: [], perSecond: 0, p50Ms: 0, redisConnectionsPerRequest: 0, cpuMsPerRequest: 0, errors: 0 }]));
  try {
    for (const { name, client } of targets) {
      const warm = await closedLoop({ concurrency: t.concurrency, count: 100, deadlineMs: 60_000 }, (i) => client.sendBody(JSON.stringify(auditEvent(`tw-${name}-${i}`))));
      if (name !== "empty") ctx.accepted[`${name}-tput`] = (ctx.accepted[`${name}-tput`] ?? 0) + warm.ok;
    }
    for (let round = 0; round < t.rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length] as (typeof targets)[number]);
      for (const { name, client, pid } of order) {
        const connectionsBefore = await ctx.connectionsReceived();
        const meter = startMeter([{ pid, label: "wrangler dev" }], "bench");
        const loop = await closedLoop({ concurrency: t.concurrency, count: t.requests, deadlineMs: 120_000 }, (i) =>
          client.sendBody(JSON.stringify(auditEvent(`t${round}-${name}-${i}`))));
        // Keys are "wrangler dev / <command>" per process in the tree (node, workerd …).
        const cpuMs = [...meter().procs].filter(([key]) => key.startsWith("wrangler dev")).reduce((sum, [, u]) => sum + u.cpuMs, 0);
        const r = results.get(name) as ThroughputResult;
        r.cpuMsPerRequest += cpuMs / Math.max(1, loop.ok) / t.rounds;
        r.redisConnectionsPerRequest += ((await ctx.connectionsReceived()) - connectionsBefore) / Math.max(1, loop.ok) / t.rounds;
        r.rounds.push(loop);
        r.errors += loop.errors;
        if (loop.firstError && !r.firstError) r.firstError = loop.firstError;
        if (name !== "empty") ctx.accepted[`${name}-tput`] = (ctx.accepted[`${name}-tput`] ?? 0) + loop.ok;
        env.progress(`latency: throughput round ${round + 1}/${t.rounds} ${name.padEnd(6)} ${loop.perSecond.toFixed(0).padStart(6)} req/s  p50 ${loop.p50Ms.toFixed(2)} ms  ` +
          `CPU ${(cpuMs / Math.max(1, loop.ok)).toFixed(2)} ms/request  errors ${loop.errors}`);
      }
    }
  } finally {
    for (const { client } of targets) client.close();
    await Promise.all(started.map((e) => e.stop()));
  }
  for (const r of results.values()) {
    r.perSecond = median(r.rounds.map((x) => x.perSecond));
    r.p50Ms = median(r.rounds.map((x) => x.p50Ms));
  }
  return [...results.values()];
}

const LABELS: Record<LatencyPath, string> = {
  socket: "edge, RESP over a fresh TLS socket per request (default)",
  rest: "edge, Upstash REST (stand-in)",
  do: "edge, REDIS_TRANSPORT=durable-object",
  node: "BullMQ `Queue.add`, warm TLS connection",
};

export function formatLatency(settings: LatencySettings, result: LatencyBenchResult): string[] {
  const f = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : "–");
  const rtts = settings.rttsMs;
  const cell = (path: LatencyPath, rtt: number) => result.cells.find((c) => c.path === path && c.rttMs === rtt);
  const head = ["path", ...rtts.map((r) => `RTT ${r} ms: p50 / p99 (ms)`), ...rtts.filter((r) => r > 0).map((r) => `round trips @${r}`), "connections / request"];
  const rows = LATENCY_PATHS.map((path) => [
    LABELS[path],
    ...rtts.map((r) => {
      const c = cell(path, r);
      return c ? `${f(c.p50Ms)} / ${f(c.p99Ms)}${c.errors ? ` (${c.errors} errors)` : ""}` : "–";
    }),
    ...rtts.filter((r) => r > 0).map((r) => f(cell(path, r)?.roundTrips ?? Number.NaN, 2)),
    f(median(result.cells.filter((c) => c.path === path).map((c) => c.connectionsPerRequest)), 2),
  ]);
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const out = [
    "",
    "### Round trips on the wire (injected latency)",
    "",
    `${settings.requests} sequential enqueues per cell in ${settings.rounds} rounds interleaving RTTs and paths, after ${settings.warmup} unmeasured ones; a TCP proxy delays every chunk by RTT/2 each way ` +
      "between the enqueuer and Redis (TLS passes through it; for REST, between the edge and the stand-in, which sits next to its Redis). " +
      "Round trips = (p50 − p50 at RTT 0) ÷ RTT. The proxy cannot delay a TCP handshake: add one RTT per connection opened per request " +
      "(last column) for a real network. p99 of this few samples is close to the maximum.",
    "",
    line(head),
    line(head.map(() => "---")),
    ...rows.map(line),
  ];
  if (result.throughput) {
    const by = (n: ThroughputTarget) => result.throughput?.find((r) => r.name === n);
    const empty = by("empty")?.perSecond ?? Number.NaN;
    const t = settings.throughput;
    out.push(
      "",
      `Throughput under wrangler dev, TLS Redis on loopback, no added latency: ${t?.rounds} interleaved rounds × ${t?.requests} requests, concurrency ${t?.concurrency}, median of rounds.`,
      "",
      line(["target", "req/s", "share of the empty Worker", "p50 (ms)", "wrangler dev CPU / request (ms)", "CPU share (empty ÷ target)", "Redis connections / request", "errors"]),
      line(["---", "---", "---", "---", "---", "---", "---", "---"]),
      ...(["empty", "socket", "do"] as const).map((n) => {
        const r = by(n);
        const label = n === "empty" ? "empty Worker" : n === "socket" ? "edge, socket per request (TLS)" : "edge, Durable Object (TLS)";
        return line([label, f(r?.perSecond ?? Number.NaN, 0), f(((r?.perSecond ?? Number.NaN) / empty) * 100, 0) + " %", f(r?.p50Ms ?? Number.NaN, 2), f(r?.cpuMsPerRequest ?? Number.NaN, 2),
          f(((by("empty")?.cpuMsPerRequest ?? Number.NaN) / (r?.cpuMsPerRequest ?? Number.NaN)) * 100, 0) + " %", n === "empty" ? "–" : f(r?.redisConnectionsPerRequest ?? Number.NaN, 3), String(r?.errors ?? "–")]);
      }),
    );
  }
  const mismatched = Object.entries(result.jobs).filter(([, j]) => j.accepted !== j.inRedis);
  out.push("", mismatched.length === 0
    ? `Jobs in Redis = requests accepted, for every path (${Object.values(result.jobs).reduce((s, j) => s + j.inRedis, 0)} jobs).`
    : `**Jobs in Redis ≠ accepted**: ${mismatched.map(([p, j]) => `${p} ${j.inRedis}/${j.accepted}`).join(", ")}.`);
  return out;
}

/** The run's own check: every accepted request is a job in Redis. */
export function verifyLatency(result: LatencyBenchResult): string[] {
  return Object.entries(result.jobs)
    .filter(([, j]) => j.accepted !== j.inRedis)
    .map(([path, j]) => `latency (${path}): ${j.inRedis} jobs in Redis for ${j.accepted} accepted requests`);
}
