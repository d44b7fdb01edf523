// The autoscaler's own cost and behaviour, measured on a private Redis:
//   node tools/bench/autoscaler.ts [--seconds 60]
// 1. Redis commands per minute (INFO commandstats deltas, the measuring INFO subtracted), two
//    autoscalers side by side for the same wall-clock minute, each on its own Redis and a target
//    draining every queue: one running replicas (polls every pollingInterval, default 30 s), one
//    at zero with empty queues (sleeps until a wake, a due delayed job or the 300 s safety poll).
// 2. The decisions for a synthetic burst, on simulated time (the policy's defaults): 3 000 jobs
//    arrive at once, 600 more over the next 2 minutes; each replica completes 20 jobs/s, taken off
//    the wait list and counted the way the fleet counts them (HINCRBY on the completed hash).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { QUEUE_NAMES } from "../../shared/jobs/registry.ts";
import { startRedis, type LocalRedis } from "../dev/local-services.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { parseAutoscalerEnv } from "../../worker/autoscaler/config.ts";
import type { Clock } from "../../worker/autoscaler/loop.ts";
import { commandsPerPoll } from "../../worker/autoscaler/observe.ts";
import { startAutoscalerService } from "../../worker/autoscaler/service.ts";
import { completedKey } from "../../worker/autoscaler/throughput.ts";
import { diff, snapshot } from "./redis-stats.ts";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "60" } } });
const seconds = Number(values.seconds);
const quiet = () => undefined;
const dir = mkdtempSync(join(tmpdir(), "edgefleet-autoscaler-bench-"));
const servers: LocalRedis[] = [];

function env(redis: LocalRedis, extra: Record<string, string> = {}) {
  return parseAutoscalerEnv({
    REDIS_URL: redis.url,
    AUTOSCALER_TARGETS: JSON.stringify([{ queues: [...QUEUE_NAMES], ...JSON.parse(extra.TARGET ?? "{}") }]),
    AUTOSCALER_WAKE_TOKEN: "bench-wake-token-0123456789abcdef0123",
    DRY_RUN: "1",
    PORT: "0",
    ...extra,
  });
}

async function commandCost() {
  const [busy, idle] = await Promise.all([0, 1].map((i) => startRedis({ dataDir: join(dir, `r${i}`) })));
  servers.push(busy!, idle!);
  const probes = [busy!, idle!].map((r) => new Redis(redisOptions(r.url)));
  // The measuring INFO costs itself one command per snapshot: measured, then subtracted.
  const base = await Promise.all(probes.map(async (p) => { const a = await snapshot(p); const b = await snapshot(p); return diff(b, a).commands; }));
  const before = await Promise.all(probes.map(snapshot));
  // Running replicas: minReplicas 1 keeps it polling every pollingInterval (default 30 s).
  const running = await startAutoscalerService(env(busy!, { TARGET: JSON.stringify({ minReplicas: 1 }) }), { log: quiet });
  const zero = await startAutoscalerService(env(idle!), { log: quiet });
  const connected = await Promise.all(probes.map(snapshot));
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const after = await Promise.all(probes.map(snapshot));
  await running.close();
  await zero.close();
  for (const p of probes) p.disconnect();
  const perMinute = (i: number) => ((diff(after[i]!, connected[i]!).commands - base[i]!) * 60) / seconds;
  const calls = (i: number) => Object.fromEntries([...diff(after[i]!, before[i]!).calls].filter(([n]) => n !== "info"));
  return {
    queues: QUEUE_NAMES.length,
    commandsPerPoll: commandsPerPoll(QUEUE_NAMES.length),
    windowSeconds: seconds,
    startup: [0, 1].map((i) => diff(connected[i]!, before[i]!).commands - base[i]!),
    running: { perMinute: perMinute(0), polls: running.targets[0]!.autoscaler.status().ticks, counted: running.commands().total, calls: calls(0) },
    atZero: { perMinute: perMinute(1), polls: zero.targets[0]!.autoscaler.status().ticks, counted: zero.commands().total, calls: calls(1) },
  };
}

function manualClock(start: number): Clock & { advance(ms: number): void } {
  let now = start;
  return { now: () => now, sleep: async () => undefined, advance: (ms) => void (now += ms) };
}

async function burst() {
  const server = await startRedis({ dataDir: join(dir, "burst") });
  servers.push(server);
  const redis = new Redis(redisOptions(server.url));
  const queue = new Queue("audit", { connection: redisOptions(server.url) });
  const clock = manualClock(Date.now());
  const service = await startAutoscalerService(env(server, { TARGET: JSON.stringify({ queues: ["audit"] }) }), { log: quiet, clock, run: false });
  const autoscaler = service.targets[0]!.autoscaler;
  const add = async (n: number) => {
    for (let i = 0; i < n; i += 500) await queue.addBulk(Array.from({ length: Math.min(500, n - i) }, () => ({ name: "x", data: {} })));
  };
  const stepSeconds = 30; // pollingInterval default
  const perReplicaPerSecond = 20;
  await add(3_000);
  const rows: string[] = [];
  for (let t = 0; t <= 1_500; t += stepSeconds) {
    if (t > 0 && t <= 120) await add(150);
    const d = await autoscaler.tick();
    const s = autoscaler.status();
    rows.push(`${String(t).padStart(5)} s  backlog ${String(s.last?.backlog ?? 0).padStart(5)}  replicas ${String(s.replicas).padStart(2)}  ${d?.reason ?? ""}${d?.rateFloor ? `  (rate floor ${d.rateFloor})` : ""}`);
    // The replicas work until the next poll: take their jobs off the wait list and count them.
    const done = Math.min(await redis.llen("bull:audit:wait"), s.replicas * perReplicaPerSecond * stepSeconds);
    if (done > 0) {
      await redis.rpop("bull:audit:wait", done);
      await redis.hincrby(completedKey("bull"), "audit", done);
    }
    clock.advance(stepSeconds * 1000);
  }
  await service.close();
  await queue.close();
  redis.disconnect();
  return { timeline: autoscaler.status().timeline, rows };
}

try {
  const [cost, b] = await Promise.all([commandCost(), burst()]);
  console.log(JSON.stringify(cost, null, 2));
  console.log("\nBurst (policy defaults; 3000 jobs at once, 150 more every 30 s for 2 min; 20 jobs/s per replica):");
  console.log(b.rows.join("\n"));
} finally {
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
}
