// Scale to zero, measured: the pickup latency of a job that arrives while the fleet runs no
// process, and what a fleet at zero costs Redis while nothing happens.
//
// Pickup from zero, per round: with the fleet at zero and the autoscaler asleep, one event goes
// through the edge (wrangler dev) → 202 → the edge's wake call (waitUntil) → the autoscaler observes
// and starts a `node worker/main.ts` (tools/dev/local-autoscaler.ts, the process driver) → the job
// completes. Every mark is taken in this process: the request, the autoscaler's own log lines
// ("autoscaler woken", "replica starting") and the replica's ("worker ready", "job completed"),
// forwarded by the driver as they are written. Then the fleet goes back to zero for the next round.
//
// Idle at zero: INFO commandstats over a window with the fleet at zero, the autoscaler asleep and
// the edge idle — every client of the bench's Redis counted. At zero the only traffic is the
// autoscaler's safety poll (5 commands per queue + 1, once per safetyPollSeconds); priced at
// Upstash pay-as-you-go.
//
// On a Redis and Postgres of its own (so the idle count sees only this fleet's clients). Run alone:
// `node tools/bench/scale.ts [--rounds N] [--idle-seconds N]`, or as the scale section of
// `npm run bench`.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { sha256Hex } from "../../edge/auth.ts";
import { QUEUE_NAMES } from "../../shared/jobs/registry.ts";
import { commandsPerPoll } from "../../worker/autoscaler/observe.ts";
import { migrate } from "../../worker/migrate.ts";
import type { LogRecord } from "../../worker/runner.ts";
import { startEdge } from "../dev/edge-process.ts";
import { startLocalAutoscaler, type LocalAutoscaler } from "../dev/local-autoscaler.ts";
import { ROOT, secret, startPostgres, startRedis } from "../dev/local-services.ts";
import { PAYG_USD_PER_100K } from "./cost.ts";
import { baseline, diff, snapshot } from "./redis-stats.ts";

export interface ScaleSettings {
  /** Rounds of enqueue-from-zero (the median is reported). */
  rounds: number;
  /** Window of the idle command count at zero. */
  idleSeconds: number;
  /** The autoscaler's safety poll during the bench (the deployed default is 300 s). */
  safetyPollSeconds: number;
}

export interface ScaleEnv {
  /** Where its Redis and Postgres keep their data (removed by the caller). */
  dataDir: string;
  /** A pre-bundled edge (`wrangler deploy --dry-run` output) so source edits can't reload it mid-run. */
  edgeScript?: string;
  /** wrangler / worker output for --verbose; default silent. */
  log?: (line: string) => void;
  progress?: (line: string) => void;
}

/** ms from the request's start to each mark. */
export interface RoundTiming {
  accepted: number;
  woken: number;
  starting: number;
  ready: number;
  completed: number;
}

export interface ScaleResult {
  rounds: RoundTiming[];
  median: RoundTiming;
  idle: {
    seconds: number;
    safetyPollSeconds: number;
    /** Every command Redis processed during the window, all clients (the INFO calls subtracted). */
    commands: number;
    calls: Record<string, number>;
    perMinute: number;
    /** The autoscaler's own polls in the window, by its count. */
    autoscalerCommands: number;
    perPoll: number;
    /** At the deployed safety poll (300 s): perPoll × 60 / 300. */
    deployedPerMinute: number;
    deployedUsdPerMonth: number;
  };
}

/** Deployed default (worker/autoscaler/config.ts AUTOSCALER_SAFETY_POLL_SECONDS). */
const DEPLOYED_SAFETY_POLL_SECONDS = 300;
const MINUTES_PER_MONTH = 60 * 24 * 30;

export async function benchScale(settings: ScaleSettings, env: ScaleEnv): Promise<ScaleResult> {
  const prefix = `scale${secret().slice(0, 6)}`;
  const apiKey = `ef_bench_${secret()}`;
  const wakeToken = secret();
  const progress = env.progress ?? (() => {});
  // Marks from the autoscaler's and the replicas' log lines, by what they say.
  const marks = new Map<string, number>();
  const log = (_level: string, msg: string, fields: LogRecord = {}) => {
    const at = performance.now();
    if (msg === "job completed") marks.set(`completed:${String(fields.jobId)}`, at);
    else if (!marks.has(msg)) marks.set(msg, at);
    env.log?.(`${msg} ${JSON.stringify(fields)}\n`);
  };
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const redisServer = await startRedis({ dataDir: join(env.dataDir, "redis") });
    stops.push(redisServer.stop);
    const pg = await startPostgres({ dataDir: join(env.dataDir, "postgres") });
    stops.push(pg.stop);
    await migrate(pg.url);
    const redis = new Redis(redisServer.url);
    stops.push(() => redis.quit().catch(() => redis.disconnect()));
    const local: LocalAutoscaler = await startLocalAutoscaler({
      redisUrl: redisServer.url,
      queuePrefix: prefix,
      wakeToken,
      log,
      workerEnv: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "/tmp",
        REDIS_URL: redisServer.url,
        DATABASE_URL: pg.url,
        QUEUE_PREFIX: prefix,
        EMAIL_CAPTURE: "1",
        WORKER_DRAIN_DELAY_SECONDS: "1",
        JOB_LOG_RATE: "all",
      },
      // One replica is all one job needs; back to zero as soon as the queue is empty.
      settings: {
        minReplicas: 0, maxReplicas: 1, jobsPerReplica: 100, stabilizationSeconds: 0, scaleDownCooldownSeconds: 0,
        idleSeconds: 1, pollingIntervalSeconds: 1, safetyPollSeconds: settings.safetyPollSeconds,
      },
    });
    stops.push(() => local.close());
    const edge = await startEdge({
      ...(env.edgeScript ? { script: env.edgeScript } : {}),
      vars: {
        REDIS_URL: redisServer.url, API_KEY_HASHES: await sha256Hex(apiKey), QUEUE_PREFIX: prefix,
        AUTOSCALER_WAKE_URL: local.wakeUrl, AUTOSCALER_WAKE_TOKEN: wakeToken,
      },
      ...(env.log ? { log: env.log } : {}),
    });
    stops.push(() => edge.stop());

    const atZero = async () => {
      const deadline = Date.now() + 120_000;
      while (!(local.driver.current() === 0 && local.autoscaler.status().asleep)) {
        if (Date.now() > deadline) throw new Error("the fleet did not return to zero within 120 s");
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const rounds: RoundTiming[] = [];
    let lastWake = -Infinity;
    for (let round = 0; round < settings.rounds; round++) {
      await atZero();
      // The edge wakes each queue at most once per 5 s per isolate: rounds closer than that would
      // measure the safety poll instead of the wake.
      const wait = lastWake + 5_500 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      marks.clear();
      const id = `scale-${round}-${secret().slice(0, 8)}`;
      const start = performance.now();
      lastWake = start;
      const res = await fetch(`${edge.url}/v1/events`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ id, name: "scale.bench", type: "domain", payload: {} }),
        signal: AbortSignal.timeout(15_000),
      });
      const accepted = performance.now();
      await res.arrayBuffer();
      if (res.status !== 202) throw new Error(`the edge answered ${res.status}`);
      const deadline = Date.now() + 120_000;
      while (!marks.has(`completed:${id}`)) {
        if (Date.now() > deadline) throw new Error(`job ${id} not completed within 120 s`);
        await new Promise((r) => setTimeout(r, 5));
      }
      const at = (name: string) => (marks.get(name) ?? Number.NaN) - start;
      const timing = {
        accepted: accepted - start,
        woken: at("autoscaler woken"),
        starting: at("replica starting"),
        ready: at("worker ready"),
        completed: at(`completed:${id}`),
      };
      rounds.push(timing);
      progress(`scale round ${round + 1}/${settings.rounds}: ${JSON.stringify(Object.fromEntries(Object.entries(timing).map(([k, v]) => [k, Math.round(v)])))}`);
    }

    // Idle at zero: nothing runs but the autoscaler's sleep.
    await atZero();
    progress(`scale: idle at zero for ${settings.idleSeconds} s …`);
    const base = await baseline(redis);
    const before = await snapshot(redis);
    const polledBefore = local.commands();
    await new Promise((r) => setTimeout(r, settings.idleSeconds * 1000));
    const delta = diff(diff(await snapshot(redis), before), base);
    const autoscalerCommands = local.commands() - polledBefore;
    const perPoll = commandsPerPoll(QUEUE_NAMES.length);
    const deployedPerMinute = (perPoll * 60) / DEPLOYED_SAFETY_POLL_SECONDS;
    return {
      rounds,
      median: median(rounds),
      idle: {
        seconds: settings.idleSeconds,
        safetyPollSeconds: settings.safetyPollSeconds,
        commands: delta.commands,
        calls: Object.fromEntries(delta.calls),
        perMinute: (delta.commands * 60) / settings.idleSeconds,
        autoscalerCommands,
        perPoll,
        deployedPerMinute,
        deployedUsdPerMonth: ((deployedPerMinute * MINUTES_PER_MONTH) / 100_000) * PAYG_USD_PER_100K,
      },
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}

function median(rounds: readonly RoundTiming[]): RoundTiming {
  const pick = (key: keyof RoundTiming) => {
    const sorted = rounds.map((r) => r[key]).sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  return { accepted: pick("accepted"), woken: pick("woken"), starting: pick("starting"), ready: pick("ready"), completed: pick("completed") };
}

/** The report's section (markdown). */
export function scaleSection(r: ScaleResult): string {
  const ms = (n: number) => `${Math.round(n)} ms`;
  const m = r.median;
  const i = r.idle;
  return [
    "### Scale to zero: pickup latency from zero, idle cost at zero",
    "",
    `One event through the edge with the fleet at zero and the autoscaler asleep; median of ${r.rounds.length} rounds, ms from the request's start:`,
    "",
    "| step | median | what it is |",
    "|---|---|---|",
    `| 202 at the client | ${ms(m.accepted)} | the edge enqueued; the wake call runs after the answer (waitUntil) |`,
    `| autoscaler woken | ${ms(m.woken)} | the edge's POST /wake arrived |`,
    `| process starting | ${ms(m.starting)} | one observe (one Redis pipeline) and the decision 0 → 1 |`,
    `| worker ready | ${ms(m.ready)} | \`node worker/main.ts\` started, connected, its workers running |`,
    `| job completed | ${ms(m.completed)} | picked up and processed: **pickup latency from zero** |`,
    "",
    `Split: wake ${ms(m.woken)}, decide ${ms(m.starting - m.woken)}, process start to ready ${ms(m.ready - m.starting)}, pickup ${ms(m.completed - m.ready)}.`,
    `Rounds (completed, ms): ${r.rounds.map((t) => Math.round(t.completed)).join(", ")}.`,
    "",
    `Idle at zero for ${i.seconds} s (safety poll every ${i.safetyPollSeconds} s in this run): ${i.commands} Redis commands from all clients ` +
      `(${Object.entries(i.calls).map(([k, v]) => `${k} ${v}`).join(", ") || "none"}) = ${i.perMinute.toFixed(1)}/min; ` +
      `the autoscaler counted ${i.autoscalerCommands} of its own (${i.autoscalerCommands / i.perPoll} polls of ${i.perPoll} commands).`,
    `At the deployed safety poll (${DEPLOYED_SAFETY_POLL_SECONDS} s): ${i.perPoll} × 60 / ${DEPLOYED_SAFETY_POLL_SECONDS} = ${i.deployedPerMinute.toFixed(1)} commands/min ` +
      `≈ ${Math.round(i.deployedPerMinute * MINUTES_PER_MONTH).toLocaleString("en")} per 30-day month ≈ $${i.deployedUsdPerMonth.toFixed(2)}/month at Upstash pay-as-you-go ($${PAYG_USD_PER_100K} per 100K commands).`,
    "",
  ].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { rounds: { type: "string" }, "idle-seconds": { type: "string" }, "safety-poll-seconds": { type: "string" }, verbose: { type: "boolean" } },
  });
  const dataDir = join(ROOT, ".data/bench-scale", String(process.pid));
  mkdirSync(dataDir, { recursive: true });
  try {
    const result = await benchScale(
      {
        rounds: Number(values.rounds ?? 5),
        idleSeconds: Number(values["idle-seconds"] ?? 60),
        safetyPollSeconds: Number(values["safety-poll-seconds"] ?? 30),
      },
      { dataDir, progress: (l) => console.error(l), ...(values.verbose ? { log: (l: string) => process.stderr.write(l) } : {}) },
    );
    console.log(scaleSection(result));
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  process.exit(0);
}
