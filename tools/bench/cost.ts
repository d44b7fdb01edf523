// What a deployment costs on Upstash Redis, from the commands `npm run bench` counts with Redis's
// own INFO commandstats. Pure: no I/O, so the model is unit-tested (cost.test.ts) apart from the
// measurement (commands.ts).
//
// Upstash's rules, as its docs state them (read 2026-12-01 from the upstash/docs repository,
// redis/overall/billing.mdx, published at https://upstash.com/docs/redis/overall/billing):
// - "Pricing is based on the number of commands (requests) executed … Operational commands such as
//   INFO, PING, and AUTH are not charged" (AUTH, INFO, PING, QUIT, COMMAND per
//   redis/howto/getstartedawslambda.mdx).
// - "each command inside a pipeline or transaction is still billed individually".
// - Commands run inside Lua scripts: no page says it in a sentence; the rate-limit SDK's cost table
//   (https://upstash.com/docs/redis/sdks/ratelimit-ts/costs) counts them ("EVAL, INCR, PEXPIRE" = 3).
//   This model bills them, as that table does.
// - Global databases: "each write is replicated to every read region, and each replicated write
//   counts as a command for billing"; a read region on a Fixed plan costs 50 % of the tier's price.
// - Fixed plans: "A flat monthly price with a cap on throughput and data size" (no per-command charge).

/** Commands Upstash does not bill (see above). Everything else counts, including script-internal ones. */
export const UNBILLED = new Set(["auth", "info", "ping", "quit", "command"]);

export const PAYG_USD_PER_100K = 0.2;
/** PAYG bandwidth: free up to 200 GB a month, then $0.03 per GB. */
export const PAYG_FREE_GB = 200;
export const PAYG_USD_PER_GB = 0.03;

export interface Plan {
  name: string;
  /** Flat price a month; undefined = Pay-As-You-Go (per command). */
  usdPerMonth?: number;
  commandsPerSecond: number;
  /** Monthly bandwidth included (GB); undefined = PAYG's priced bandwidth. */
  bandwidthGb?: number;
  dataSize: string;
}

/** The "All plans and limits" table of https://upstash.com/docs/redis/overall/billing (2026-12-01). */
export const PLANS: readonly Plan[] = [
  { name: "PAYG", commandsPerSecond: 10_000, dataSize: "100 GB" },
  { name: "Fixed 250 MB", usdPerMonth: 10, commandsPerSecond: 10_000, bandwidthGb: 50, dataSize: "250 MB" },
  { name: "Fixed 1 GB", usdPerMonth: 20, commandsPerSecond: 10_000, bandwidthGb: 100, dataSize: "1 GB" },
  { name: "Fixed 5 GB", usdPerMonth: 100, commandsPerSecond: 10_000, bandwidthGb: 500, dataSize: "5 GB" },
  { name: "Fixed 10 GB", usdPerMonth: 200, commandsPerSecond: 10_000, bandwidthGb: 1_000, dataSize: "10 GB" },
  { name: "Fixed 50 GB", usdPerMonth: 400, commandsPerSecond: 10_000, bandwidthGb: 5_000, dataSize: "50 GB" },
  { name: "Fixed 100 GB", usdPerMonth: 800, commandsPerSecond: 16_000, bandwidthGb: 10_000, dataSize: "100 GB" },
  { name: "Fixed 500 GB", usdPerMonth: 1_500, commandsPerSecond: 16_000, bandwidthGb: 20_000, dataSize: "500 GB" },
];

/** Commands of one unit of work (a job, or an idle minute) as Upstash would count them. */
export interface CommandCount {
  /** Everything Redis processed, script-internal commands included. */
  all: number;
  /** `all` minus the unbilled commands. */
  billed: number;
  /** Billed commands Redis flags `write`: replicated, and billed again, in each read region. */
  writes: number;
  /** Bytes in + out on the wire (Upstash meters bandwidth both ways). */
  bytes: number;
}

/** Sums commandstats calls into a CommandCount; `writeNames` are the names Redis flags `write`. */
export function classify(calls: Readonly<Record<string, number>>, writeNames: ReadonlySet<string>, bytes = 0): CommandCount {
  let all = 0;
  let billed = 0;
  let writes = 0;
  for (const [name, n] of Object.entries(calls)) {
    all += n;
    if (UNBILLED.has(name)) continue;
    billed += n;
    if (writeNames.has(name)) writes += n;
  }
  return { all, billed, writes, bytes };
}

export function scale(c: CommandCount, k: number): CommandCount {
  return { all: c.all * k, billed: c.billed * k, writes: c.writes * k, bytes: c.bytes * k };
}

/** Billed commands of one unit with `readRegions` read regions of a global database. */
export function billedWithReplicas(c: CommandCount, readRegions: number): number {
  return c.billed + c.writes * readRegions;
}

/** The replication factor: billed commands with `readRegions` over billed commands without. */
export function replicationFactor(c: CommandCount, readRegions: number): number {
  return c.billed === 0 ? 1 + readRegions : billedWithReplicas(c, readRegions) / c.billed;
}

export interface Workload {
  jobsPerDay: number;
  /** Worker processes running all month (idle cost each). */
  replicas: number;
  readRegions?: number;
}

export interface Usage {
  perJob: CommandCount;
  /** One worker process, idle, per minute. */
  idlePerMinute: CommandCount;
  /** Commands/min of everything else polling Redis (autoscaler, /metrics scrapes); optional. */
  extraPerMinute?: CommandCount;
}

const DAYS = 30;

/** Billed commands and GB for 30 days. Idle is counted all month (an upper bound when busy). */
export function monthlyUsage(w: Workload, u: Usage): { commands: number; gb: number; avgCommandsPerSecond: number } {
  const r = w.readRegions ?? 0;
  const minutes = DAYS * 1440;
  const extra = u.extraPerMinute ?? { all: 0, billed: 0, writes: 0, bytes: 0 };
  const commands =
    DAYS * w.jobsPerDay * billedWithReplicas(u.perJob, r) +
    minutes * (w.replicas * billedWithReplicas(u.idlePerMinute, r) + billedWithReplicas(extra, r));
  const bytes = DAYS * w.jobsPerDay * u.perJob.bytes + minutes * (w.replicas * u.idlePerMinute.bytes + extra.bytes);
  return { commands, gb: bytes / 1e9, avgCommandsPerSecond: commands / (minutes * 60) };
}

export interface PlanCost {
  plan: Plan;
  usd: number;
  /** False when the average command rate or the bandwidth exceeds the plan's limits. */
  fits: boolean;
}

export function planCost(plan: Plan, w: Workload, u: Usage): PlanCost {
  const { commands, gb, avgCommandsPerSecond } = monthlyUsage(w, u);
  const r = w.readRegions ?? 0;
  if (plan.usdPerMonth === undefined) {
    const usd = (commands / 100_000) * PAYG_USD_PER_100K + Math.max(0, gb - PAYG_FREE_GB) * PAYG_USD_PER_GB;
    return { plan, usd, fits: avgCommandsPerSecond <= plan.commandsPerSecond };
  }
  return {
    plan,
    usd: plan.usdPerMonth * (1 + 0.5 * r),
    fits: avgCommandsPerSecond <= plan.commandsPerSecond && gb <= (plan.bandwidthGb ?? Number.POSITIVE_INFINITY),
  };
}

/** Every plan's cost for the workload, and the cheapest one that fits. */
export function cheapest(w: Workload, u: Usage, plans: readonly Plan[] = PLANS): { costs: PlanCost[]; best: PlanCost | undefined } {
  const costs = plans.map((p) => planCost(p, w, u));
  const best = costs.filter((c) => c.fits).reduce<PlanCost | undefined>((a, c) => (a === undefined || c.usd < a.usd ? c : a), undefined);
  return { costs, best };
}

/**
 * Jobs per second a plan's command limit allows: limit ÷ billed commands per job (with read
 * regions). Whether Upstash's per-second limit counts script-internal commands is not documented;
 * pass `perJob` with `billed` = client commands only for the optimistic bound.
 */
export function ceilingJobsPerSecond(plan: Plan, perJob: CommandCount, readRegions = 0): number {
  const n = billedWithReplicas(perJob, readRegions);
  return n === 0 ? Number.POSITIVE_INFINITY : plan.commandsPerSecond / n;
}
