// The idle command budget of one worker process, and how to measure it with Redis's own counters.
// Upstash bills every command, including those BullMQ's Lua scripts run inside Redis (cost.ts), so
// a worker that waits for jobs still costs money.
//
// What an idle BullMQ 6.7 worker runs, per queue it drains (read from bullmq's worker.js):
//   - BZPOPMIN on the queue's marker key, blocking up to `drainDelay` s. A new job's marker wakes
//     it at once, so drainDelay does not delay pickup; when it times out the worker runs the
//     moveToActive script (EVALSHA) and blocks again: one cycle = BZPOPMIN + EVALSHA + the
//     commands moveToActive runs inside Redis, every drainDelay.
//   - the stalled-jobs check (EVALSHA moveStalledJobsToWait + its internal commands) every
//     `stalledInterval` ms.
//   - lock renewal only for running jobs: nothing while idle.
import { Redis } from "ioredis";
import type { QueueName } from "../../shared/jobs/contract.ts";
import { QUEUE_NAMES } from "../../shared/jobs/registry.ts";
import { startRedis } from "../dev/local-services.ts";
import { producerRedisOptions, startFleet, type FleetConfig } from "../../worker/fleet.ts";
import type { FleetHandlers } from "../../worker/runner.ts";

/**
 * Documented budget: commands per minute, per queue it drains, that one idle worker process may
 * cost with the shipped defaults, counted as Upstash bills them — the commands BullMQ's scripts
 * run inside Redis included (README quotes this constant). Measured on bullmq 6.7.0 with the four
 * built-in queues: a drainDelay cycle costs 8.25 on average (BZPOPMIN, EVALSHA and 6 commands
 * inside moveToActive; the email queue's rate limiter adds a GET) and a stalled check 7, so the
 * shipped defaults cost 4 × 8.25 + 7 = 40 per queue; BullMQ's own defaults 12 × 8.25 + 2 × 7 = 113.
 */
export const IDLE_COMMANDS_PER_QUEUE_PER_MINUTE_BUDGET = 45;

/** The budget of a process draining `queues` queues. */
export function idleBudgetPerMinute(queues: number): number {
  return IDLE_COMMANDS_PER_QUEUE_PER_MINUTE_BUDGET * queues;
}

/** Commands a client sends itself; anything else seen in commandstats ran inside a Lua script. */
const CLIENT_COMMANDS = new Set(["bzpopmin", "evalsha", "eval", "auth", "hello", "select", "ping", "client", "info", "quit"]);

export interface IdleSample {
  windowMs: number;
  /** Client-sent commands in the window (what Upstash bills), by name. */
  client: Record<string, number>;
  clientCommands: number;
  /** total_commands_processed delta: client commands plus every command run inside scripts. */
  allCommands: number;
  /** Every command in the window by name, script-internal ones included (what Upstash bills, cost.ts). */
  calls: Record<string, number>;
  /** Of those names, the ones Redis flags `write` (replicated to a global database's read regions). */
  writeNames: string[];
  /** Bytes in + out on the wire in the window. */
  bytes: number;
}

export const perMinute = (count: number, windowMs: number) => (count * 60_000) / windowMs;

async function counters(redis: Redis): Promise<{ total: number; bytes: number; calls: Map<string, number> }> {
  const text = await redis.info("stats", "commandstats");
  const calls = new Map<string, number>();
  for (const m of text.matchAll(/^cmdstat_([^:|]+)(?:\|[^:]+)?:calls=(\d+)/gm)) {
    const name = m[1] ?? "";
    calls.set(name, (calls.get(name) ?? 0) + Number(m[2]));
  }
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, "m").exec(text)?.[1] ?? Number.NaN);
  return { total: field("total_commands_processed"), bytes: field("total_net_input_bytes") + field("total_net_output_bytes"), calls };
}

/** The names among `names` that Redis flags `write` (COMMAND INFO). */
export async function writeCommandNames(redis: Redis, names: string[]): Promise<Set<string>> {
  if (names.length === 0) return new Set();
  const info = (await redis.call("COMMAND", "INFO", ...names)) as Array<[string, number, string[]] | null>;
  return new Set(info.flatMap((c) => (c && c[2].includes("write") ? [c[0].toLowerCase()] : [])));
}

/** Resolves once every worker sits in a blocking BZPOPMIN, i.e. start-up traffic is over. */
async function untilBlocked(redis: Redis, workers: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = String(await redis.client("LIST"));
    if ((list.match(/ cmd=bzpopmin /g) ?? []).length >= workers && list.includes(" flags=b ")) return;
    if (Date.now() > deadline) throw new Error("workers never went idle (no blocked BZPOPMIN)");
    await new Promise((r) => setTimeout(r, 50));
  }
}

export type IdleSettings = Pick<FleetConfig, "drainDelaySeconds" | "stalledIntervalMs" | "lockDurationMs"> & {
  queues?: QueueName[];
  /** Worker processes (fleets) on the same Redis; default 1. 0 = scale to zero: nothing connected. */
  replicas?: number;
};

/**
 * Starts a private redis-server (so the counters are this fleet's alone), an idle fleet on it with
 * the given settings, waits until start-up is over, then counts what Redis processed during
 * `windowMs`. The two INFO calls and the readiness polling happen outside the window.
 */
export async function measureIdle(settings: IdleSettings, windowMs: number, dataDir: string): Promise<IdleSample> {
  const server = await startRedis({ dataDir });
  const admin = new Redis(producerRedisOptions(server.url));
  const queues = settings.queues ?? QUEUE_NAMES;
  const noop = async () => {};
  const handlers: FleetHandlers = { audit: noop, email: noop, "stripe-webhook": noop, report: noop };
  const replicas = settings.replicas ?? 1;
  const start = () => startFleet(
    {
      redisUrl: server.url,
      redisCaCertPath: undefined,
      queuePrefix: "idle",
      queues,
      concurrency: { audit: 1, email: 1, "stripe-webhook": 1, report: 1 },
      emailRatePerSecond: 2,
      ...settings,
    },
    { handlers, scripts: [], log: () => {} },
  );
  const fleets: Array<Awaited<ReturnType<typeof start>>> = [];
  try {
    for (let i = 0; i < replicas; i++) fleets.push(await start());
    if (replicas > 0) await untilBlocked(admin, queues.length * replicas);
    else if (admin.status !== "ready") await new Promise((r) => admin.once("ready", r));
    const first = await counters(admin);
    const before = await counters(admin);
    await new Promise((r) => setTimeout(r, windowMs));
    const after = await counters(admin);
    const client: Record<string, number> = {};
    for (const [name, n] of after.calls) {
      const d = n - (before.calls.get(name) ?? 0) - (name === "info" ? 1 : 0);
      if (d > 0 && CLIENT_COMMANDS.has(name)) client[name] = d;
    }
    const calls: Record<string, number> = {};
    for (const [name, n] of after.calls) {
      const d = n - (before.calls.get(name) ?? 0) - (name === "info" ? 1 : 0);
      if (d > 0) calls[name] = d;
    }
    return {
      windowMs,
      client,
      clientCommands: Object.values(client).reduce((a, b) => a + b, 0),
      // The second INFO is counted in `after`; the first one was counted before the window began.
      allCommands: after.total - before.total - 1,
      calls,
      writeNames: [...(await writeCommandNames(admin, Object.keys(calls)))],
      // Less one INFO round trip (request and reply): the first snapshot's reply lands in the window.
      bytes: after.bytes - before.bytes - (before.bytes - first.bytes),
    };
  } finally {
    await Promise.all(fleets.map((f) => f.close(2_000)));
    admin.disconnect();
    await server.stop();
  }
}
