// What one enqueued job costs Redis, from `INFO stats` and `INFO commandstats` deltas.
// The snapshot's own INFO call shows up in the next delta; `baseline()` measures that (two
// back-to-back snapshots) so it can be subtracted.
import type { Redis } from "ioredis";

export interface RedisCounters {
  commands: number;
  bytesIn: number;
  bytesOut: number;
  connections: number;
  /** Read / write events on client sockets (a closing socket's EOF counts as a read). */
  reads: number;
  writes: number;
  /** Calls per command, lower-case (`evalsha`, `auth`, `hset`, … — commands run by scripts included). */
  calls: Map<string, number>;
}

const STATS = {
  commands: "total_commands_processed",
  bytesIn: "total_net_input_bytes",
  bytesOut: "total_net_output_bytes",
  connections: "total_connections_received",
  reads: "total_reads_processed",
  writes: "total_writes_processed",
} as const;

/**
 * Commands a client sends itself. Everything else in these workloads (hincrby, lpush, xadd, …)
 * runs inside BullMQ's Lua scripts: Redis counts those in commandstats and in
 * total_commands_processed too, but they cost no network round trip.
 */
const CLIENT_COMMANDS = new Set(["auth", "hello", "select", "ping", "evalsha", "eval", "evalsha_ro", "eval_ro", "info", "quit", "multi", "exec"]);

export async function snapshot(redis: Redis): Promise<RedisCounters> {
  const text = await redis.info("stats", "commandstats");
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, "m").exec(text)?.[1] ?? Number.NaN);
  const calls = new Map<string, number>();
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1] ?? "", Number(m[2]));
  return {
    commands: field(STATS.commands),
    bytesIn: field(STATS.bytesIn),
    bytesOut: field(STATS.bytesOut),
    connections: field(STATS.connections),
    reads: field(STATS.reads),
    writes: field(STATS.writes),
    calls,
  };
}

export function emptyCounters(): RedisCounters {
  return { commands: 0, bytesIn: 0, bytesOut: 0, connections: 0, reads: 0, writes: 0, calls: new Map() };
}

/** `a - b`, field by field (also used to subtract the baseline). */
export function diff(a: RedisCounters, b: RedisCounters): RedisCounters {
  const calls = new Map<string, number>();
  for (const [name, n] of a.calls) {
    const d = n - (b.calls.get(name) ?? 0);
    if (d !== 0) calls.set(name, d);
  }
  return {
    commands: a.commands - b.commands,
    bytesIn: a.bytesIn - b.bytesIn,
    bytesOut: a.bytesOut - b.bytesOut,
    connections: a.connections - b.connections,
    reads: a.reads - b.reads,
    writes: a.writes - b.writes,
    calls,
  };
}

export function sum(a: RedisCounters, b: RedisCounters): RedisCounters {
  const calls = new Map(a.calls);
  for (const [name, n] of b.calls) calls.set(name, (calls.get(name) ?? 0) + n);
  return {
    commands: a.commands + b.commands,
    bytesIn: a.bytesIn + b.bytesIn,
    bytesOut: a.bytesOut + b.bytesOut,
    connections: a.connections + b.connections,
    reads: a.reads + b.reads,
    writes: a.writes + b.writes,
    calls,
  };
}

/** The cost of taking a snapshot itself (one INFO command, its request and reply bytes). */
export async function baseline(redis: Redis): Promise<RedisCounters> {
  const a = await snapshot(redis);
  const b = await snapshot(redis);
  return diff(b, a);
}

/** Measures `work` and returns its Redis counters with the snapshot's own cost removed. */
export async function measure<T>(redis: Redis, base: RedisCounters, work: () => Promise<T>): Promise<[T, RedisCounters]> {
  const before = await snapshot(redis);
  const result = await work();
  const after = await snapshot(redis);
  return [result, diff(diff(after, before), base)];
}

export interface PerJob {
  clientCommands: number;
  allCommands: number;
  bytesIn: number;
  bytesOut: number;
  connections: number;
  reads: number;
  writes: number;
  /** Client-sent commands per job, e.g. `AUTH 1.00, EVALSHA 1.00`. */
  clientMix: string;
}

export function perJob(c: RedisCounters, jobs: number): PerJob {
  const client = [...c.calls].filter(([name]) => CLIENT_COMMANDS.has(name.split("|")[0] ?? name));
  const clientTotal = client.reduce((n, [, calls]) => n + calls, 0);
  return {
    clientCommands: clientTotal / jobs,
    allCommands: c.commands / jobs,
    bytesIn: c.bytesIn / jobs,
    bytesOut: c.bytesOut / jobs,
    connections: c.connections / jobs,
    reads: c.reads / jobs,
    writes: c.writes / jobs,
    clientMix: client
      .sort((a, b) => b[1] - a[1])
      .map(([name, calls]) => `${name.toUpperCase()} ${(calls / jobs).toFixed(2)}`)
      .join(", "),
  };
}
