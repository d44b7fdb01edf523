// What Redis work costs in commands (Upstash bills per command): per job end to end for each
// built-in queue, and per idle minute for one worker process, measured with Redis's own counters
// (INFO commandstats / total_commands_processed) on private servers started here.
// Run alone: `node tools/bench/commands.ts` (about 3 minutes); bench.ts calls `measureJobs` and `measureIdleSettings`.
import { join } from "node:path";
import { Redis } from "ioredis";
import { createNodeTransport } from "../../edge/queue/node-transport.test-helper.ts";
import { createProducer } from "../../edge/queue/producer.ts";
import { auditContract } from "../../shared/jobs/audit.ts";
import type { JobContract, JobOptions, QueueName } from "../../shared/jobs/contract.ts";
import { emailContract } from "../../shared/jobs/email.ts";
import { reportContract } from "../../shared/jobs/report.ts";
import { QUEUE_NAMES } from "../../shared/jobs/registry.ts";
import { stripeWebhookContract } from "../../shared/jobs/stripe-webhook.ts";
import { createDb } from "../../worker/db.ts";
import { ROOT, startPostgres, startRedis } from "../dev/local-services.ts";
import { parseEnv } from "../../worker/env.ts";
import { createHandlers, producerRedisOptions, startFleet } from "../../worker/fleet.ts";
import { idleBudgetPerMinute, measureIdle, perMinute, writeCommandNames, type IdleSettings } from "./idle-budget.ts";
import { ceilingJobsPerSecond, cheapest, classify, monthlyUsage, PLANS, replicationFactor, scale, UNBILLED, type CommandCount } from "./cost.ts";
import { migrate } from "../../worker/migrate.ts";

/** Commands a client sends itself; the rest of commandstats ran inside BullMQ's (or the limiter's) scripts. */
const CLIENT = new Set(["auth", "evalsha", "eval", "bzpopmin", "ping", "hello", "client", "select"]);

/**
 * One way of enqueueing jobs, measured end to end. `callerId`: the request names the job id
 * (Idempotency-Key, Stripe's event id), so the edge adds a ZSCORE of the failed set; `rateLimit`:
 * the route's limiter rides in the same pipeline (EVAL + INCR, an EXISTS prelude per add);
 * `opts` overrides the contract's job options; `retained`: completed jobs already kept (the
 * contract's removeOnComplete count, reached: the steady state where each completion removes one).
 */
export interface JobVariant {
  label: string;
  queue: QueueName;
  callerId: boolean;
  rateLimit: boolean;
  opts?: JobOptions;
  retained?: number;
  /** `opts.maxLenEvents` in the queue's meta hash, as a Queue with `streams.events.maxLen` writes it. */
  maxLenEvents?: number;
}

const kept = (c: JobContract) => (typeof c.defaults.removeOnComplete === "number" ? c.defaults.removeOnComplete : 0);

/** The per-job matrix `npm run bench` measures: every queue as the edge sends it, audit in every combination. */
export function jobVariants(): JobVariant[] {
  const v = (queue: QueueName, contract: JobContract, callerId: boolean, rateLimit: boolean): JobVariant => ({
    label: [callerId ? "caller id" : "generated id", rateLimit ? "rate limit" : "no rate limit"].join(", "),
    queue, callerId, rateLimit, retained: kept(contract),
  });
  return [
    v("audit", auditContract, false, false), v("audit", auditContract, true, false),
    v("audit", auditContract, false, true), v("audit", auditContract, true, true),
    v("email", emailContract, false, false), v("email", emailContract, true, true),
    v("report", reportContract, false, false), v("report", reportContract, true, true),
    // Stripe's event id is always the job id.
    v("stripe-webhook", stripeWebhookContract, true, false), v("stripe-webhook", stripeWebhookContract, true, true),
  ];
}

/** Candidate reductions on the audit queue, each against the shipped row (generated id, no rate limit). */
export function reductionVariants(): JobVariant[] {
  const base = { queue: "audit" as const, callerId: false, rateLimit: false };
  return [
    { ...base, label: "shipped: keep the last 1000 completed (limit reached)", retained: kept(auditContract) },
    { ...base, label: "keep the last 1000, limit not yet reached", retained: 0 },
    { ...base, label: "removeOnComplete: true (no record after completion)", opts: { removeOnComplete: true } },
    { ...base, label: "removeOnComplete: { age: 3600 } (none expired yet)", opts: { removeOnComplete: { age: 3600 } } },
    { ...base, label: "events stream maxLen 100 (meta opts.maxLenEvents)", retained: kept(auditContract), maxLenEvents: 100 },
  ];
}

export interface JobCost {
  queue: QueueName;
  label: string;
  jobs: number;
  /** Jobs that failed instead of completing (then the per-job figures are suspect). */
  failed: number;
  clientPerJob: number;
  /** Client commands Upstash bills (AUTH excluded). */
  clientBilledPerJob: number;
  allPerJob: number;
  /** Upstash's count per job (cost.ts): billed, writes, bytes on the wire. */
  cost: CommandCount;
  mix: string;
}
export interface IdleCost {
  label: string; settings: IdleSettings; windowMs: number; clientPerMinute: number; allPerMinute: number; mix: string;
  /** Per minute, all replicas together. */
  cost: CommandCount;
}

function payload(queue: QueueName, i: number): { contract: JobContract; data: unknown; id: string } {
  const id = `${queue.replace("-", "")}_${Date.now()}_${i}`;
  if (queue === "audit") return { contract: auditContract, id, data: { id, name: "bench", type: "domain", occurredAt: new Date().toISOString(), payload: {} } };
  if (queue === "email") return { contract: emailContract, id, data: { to: "a@example.com", subject: "bench", text: "hi" } };
  // One account per job: the report contract deduplicates on account and month.
  if (queue === "report") return { contract: reportContract, id, data: { accountId: `acct_${id}`, month: "2026-11" } };
  if (queue !== "stripe-webhook") throw new Error(`no benchmark payload for queue ${queue}`);
  const evt = `evt_${id}`;
  return { contract: stripeWebhookContract, id: evt, data: { id: evt, type: "customer.created", created: 1_790_000_000, livemode: false, event: { id: evt, type: "customer.created", data: { object: { id: "cus_1", object: "customer" } } } } };
}

async function stats(redis: Redis) {
  const text = await redis.info("stats", "commandstats");
  const calls = new Map<string, number>();
  for (const m of text.matchAll(/^cmdstat_([^:|]+)(?:\|[^:]+)?:calls=(\d+)/gm)) calls.set(m[1] ?? "", (calls.get(m[1] ?? "") ?? 0) + Number(m[2]));
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, "m").exec(text)?.[1]);
  return { total: field("total_commands_processed"), bytes: field("total_net_input_bytes") + field("total_net_output_bytes"), calls };
}

/** Empties a queue's keys between variants, outside the measured window (BullMQ re-creates what it needs). */
async function resetQueue(redis: Redis, prefix: string, queue: QueueName, retained: number, maxLenEvents?: number): Promise<void> {
  const keys: string[] = [];
  for await (const batch of redis.scanStream({ match: `${prefix}:${queue}:*`, count: 1000 })) keys.push(...(batch as string[]));
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
  // Old completed jobs up to the retention count: each new completion then removes one, as in a
  // deployment that has run a while. Ids without a hash cost removeJob the same commands.
  for (let i = 0; i < retained; i += 500) {
    const n = Math.min(500, retained - i);
    await redis.zadd(`${prefix}:${queue}:completed`, ...Array.from({ length: n }, (_, k) => [1_000 + i + k, `old-${i + k}`]).flat());
  }
  if (maxLenEvents !== undefined) await redis.hset(`${prefix}:${queue}:meta`, "opts.maxLenEvents", maxLenEvents);
}

/**
 * Jobs enqueued one at a time through the edge's own producer (BullMQ's add script over RESP;
 * a fresh connection per job, as the edge opens one socket per request, so AUTH is counted per
 * job), each processed by the real fleet before the next: the low-volume case, where every job
 * wakes an idle worker. Then `backlog` jobs enqueued first and drained at the shipped concurrency,
 * where BullMQ fetches the next job as it completes one. The measuring INFO is subtracted.
 */
export async function measureJobs(
  jobs = 300,
  dir = join(ROOT, ".data/bench-commands", String(process.pid)),
  variants: JobVariant[] = [...jobVariants(), ...reductionVariants()],
  backlog = jobs * 4,
): Promise<JobCost[]> {
  const redisServer = await startRedis({ dataDir: join(dir, "redis") });
  const pg = await startPostgres({ dataDir: join(dir, "postgres") });
  await migrate(pg.url);
  const config = parseEnv({ REDIS_URL: redisServer.url, DATABASE_URL: pg.url, WORKER_CONCURRENCY: "1", EMAIL_RATE_PER_SECOND: "1000", EMAIL_CAPTURE: "1" });
  const database = createDb(pg.url, { driver: "pg" });
  const fleet = await startFleet(config, { handlers: createHandlers(database.db, config), log: () => {} });
  const admin = new Redis(producerRedisOptions(redisServer.url));
  if (admin.status !== "ready") await new Promise((r) => admin.once("ready", r));
  const raw: Array<{ v: JobVariant; jobs: number; failed: number; calls: Map<string, number>; bytes: number }> = [];
  let done = 0;
  let failed = 0;
  for (const [queue, worker] of fleet.workers) {
    worker.on("completed", () => void done++);
    worker.on("failed", (job, err) => {
      // Counted as done so the run goes on; the failure fails the run's verification.
      done++;
      failed++;
      console.error(`${queue} job ${job?.id} failed: ${err.message}`);
    });
  }
  const enqueue = async (v: JobVariant, i: number) => {
    const { contract, data, id } = payload(v.queue, i);
    const transport = createNodeTransport(redisServer.url);
    const limit = v.rateLimit ? { key: `bench:caller:${Math.floor(Date.now() / 60_000)}`, nonce: `${id}`, limit: 1_000_000_000, ttlMs: 61_000 } : undefined;
    const [result] = await createProducer(transport, { prefix: config.queuePrefix }).addAll(
      [{ contract, data: data as never, opts: { ...v.opts, ...(v.callerId ? { jobId: id } : {}) } }],
      limit,
    );
    await transport.close();
    if (result?.outcome !== "accepted") throw new Error(`bench job not accepted: ${result?.error?.message}`);
  };
  const until = async (target: number) => {
    while (done < target) await new Promise((r) => setTimeout(r, 1));
  };
  const window = async (work: () => Promise<void>) => {
    const base = await stats(admin);
    const before = await stats(admin);
    await work();
    const after = await stats(admin);
    const infoBytes = before.bytes - base.bytes;
    const calls = new Map([...after.calls].map(([n, c]) => [n, c - (before.calls.get(n) ?? 0) - (n === "info" ? 1 : 0)] as const).filter(([, d]) => d > 0));
    return { calls, bytes: after.bytes - before.bytes - infoBytes };
  };
  try {
    for (const [n, v] of variants.entries()) {
      await resetQueue(admin, config.queuePrefix, v.queue, v.retained ?? 0, v.maxLenEvents);
      const one = async (i: number) => {
        const target = done + 1;
        await enqueue(v, i);
        await until(target);
      };
      // Warm-up: script cache, pools and JIT on the first variant; after a reset, the queue's meta
      // and id keys (written once per queue) on every one.
      for (let i = 0; i < (n === 0 ? 20 : 5); i++) await one(1_000_000 + i);
      const failedBefore = failed;
      const { calls, bytes } = await window(async () => {
        for (let i = 0; i < jobs; i++) await one(i);
      });
      raw.push({ v, jobs, failed: failed - failedBefore, calls, bytes });
    }
    if (backlog > 0) {
      // The queue's worker closes while the backlog is enqueued; a second fleet process (the
      // shipped concurrency) then drains it: what a busy queue costs per job.
      const busy = parseEnv({ REDIS_URL: redisServer.url, DATABASE_URL: pg.url, WORKER_QUEUES: "audit", EMAIL_CAPTURE: "1" });
      const v: JobVariant = {
        label: `backlog of ${backlog}, drained at concurrency ${busy.concurrency.audit}`, queue: "audit", callerId: false, rateLimit: false, retained: kept(auditContract),
      };
      await fleet.workers.get("audit")?.close();
      await resetQueue(admin, config.queuePrefix, "audit", v.retained ?? 0);
      const failedBefore = failed;
      let drained = 0;
      const { calls, bytes } = await window(async () => {
        for (let i = 0; i < backlog; i++) await enqueue(v, 2_000_000 + i);
        const second = await startFleet(busy, { handlers: createHandlers(database.db, busy), log: () => {} });
        const worker = second.workers.get("audit");
        worker?.on("completed", () => void drained++);
        worker?.on("failed", (job, err) => {
          drained++;
          failed++;
          console.error(`audit job ${job?.id} failed: ${err.message}`);
        });
        const deadline = Date.now() + 300_000;
        while (drained < backlog && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
        await second.close(5_000);
        if (drained < backlog) throw new Error(`backlog: ${drained} of ${backlog} jobs finished within 300 s`);
      });
      raw.push({ v, jobs: backlog, failed: failed - failedBefore, calls, bytes });
    }
    const names = [...new Set(raw.flatMap((r) => [...r.calls.keys()]))];
    const writes = await writeCommandNames(admin, names);
    return raw.map(({ v, jobs: n, failed: f, calls, bytes }) => {
      const client = [...calls].filter(([name]) => CLIENT.has(name));
      const all = [...calls.values()].reduce((a, b) => a + b, 0);
      return {
        queue: v.queue, label: v.label, jobs: n, failed: f,
        clientPerJob: client.reduce((a, [, d]) => a + d, 0) / n,
        clientBilledPerJob: client.filter(([name]) => !UNBILLED.has(name)).reduce((a, [, d]) => a + d, 0) / n,
        allPerJob: all / n,
        cost: scale(classify(Object.fromEntries(calls), writes, bytes), 1 / n),
        mix: client.map(([name, d]) => `${name.toUpperCase()} ${(d / n).toFixed(2)}`).join(", "),
      };
    });
  } finally {
    await fleet.close(5_000);
    admin.disconnect();
    await database.close();
    await pg.stop();
    await redisServer.stop();
  }
}

/**
 * Idle worker processes (all queues each), measured side by side on private servers: BullMQ's
 * defaults, the shipped settings with 1 and 5 replicas, an economy setting, and scale to zero.
 */
export async function measureIdleSettings(windowMs = 120_000, dir = join(ROOT, ".data/bench-commands", `idle-${process.pid}`)): Promise<IdleCost[]> {
  const shipped = parseEnv({ REDIS_URL: "redis://127.0.0.1:1", DATABASE_URL: "postgres://u:p@127.0.0.1:1/db", EMAIL_CAPTURE: "1" });
  const ours = { drainDelaySeconds: shipped.drainDelaySeconds, stalledIntervalMs: shipped.stalledIntervalMs, lockDurationMs: shipped.lockDurationMs };
  const label = `shipped (drainDelay ${shipped.drainDelaySeconds} s, stalled ${shipped.stalledIntervalMs / 1000} s)`;
  const rows: Array<[string, IdleSettings]> = [
    ["BullMQ defaults (drainDelay 5 s, stalled 30 s)", { drainDelaySeconds: 5, stalledIntervalMs: 30_000, lockDurationMs: 30_000 }],
    [label, ours],
    [`${label}, 5 replicas`, { ...ours, replicas: 5 }],
    ["economy (drainDelay 60 s, stalled 120 s)", { drainDelaySeconds: 60, stalledIntervalMs: 120_000, lockDurationMs: 30_000 }],
    ["scaled to zero (no worker process)", { ...ours, replicas: 0 }],
  ];
  return Promise.all(rows.map(async ([label, settings], i) => {
    const s = await measureIdle(settings, windowMs, join(dir, String(i)));
    return {
      label, settings, windowMs,
      clientPerMinute: perMinute(s.clientCommands, windowMs),
      allPerMinute: perMinute(s.allCommands, windowMs),
      cost: scale(classify(s.calls, new Set(s.writeNames), s.bytes), 60_000 / windowMs),
      mix: Object.entries(s.client).map(([n, c]) => `${n.toUpperCase()} ${perMinute(c, windowMs).toFixed(1)}`).join(", "),
    };
  }));
}

const t = (head: string[], rows: string[][]) => [head, head.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
const usd = (n: number) => `$${n < 10 ? n.toFixed(2) : n.toFixed(0)}`;
const num = (n: number, d = 1) => n.toLocaleString("en-US", { maximumFractionDigits: d });

/** Placeholder rows: the autoscaler's poll and a /metrics scrape are measured by their own sections. */
const OTHER_POLLERS = ["autoscaler (per poll)", "/metrics scrape (per scrape)"];

export function formatCommands(jobs: JobCost[], idle: IdleCost[]): string {
  const matrix = jobs.filter((j) => !reductionVariants().some((r) => r.label === j.label) && !j.label.startsWith("backlog"));
  const reductions = jobs.filter((j) => reductionVariants().some((r) => r.label === j.label));
  const backlog = jobs.find((j) => j.label.startsWith("backlog"));
  const jobRow = (j: JobCost) => [j.queue, j.label, String(j.jobs), j.clientPerJob.toFixed(2), j.allPerJob.toFixed(1), j.cost.billed.toFixed(1), j.cost.writes.toFixed(1), num(j.cost.bytes, 0), j.mix];
  const head = ["queue", "how enqueued", "jobs", "client commands", "all (incl. inside scripts)", "billed by Upstash", "writes", "bytes", "client mix"];
  const out = [
    "### Redis commands per job (enqueue through the edge producer + fetch, process, complete; one job at a time)", "",
    "Per job. Billed = every command Redis ran, script-internal ones included, less AUTH/INFO/PING/QUIT/COMMAND (Upstash's rule, tools/bench/cost.ts); " +
      "writes = billed commands Redis flags `write` (billed again in each read region of a global database).", "",
    t(head, [...matrix, ...(backlog ? [backlog] : [])].map(jobRow)),
  ];
  const shipped = reductions[0];
  if (shipped) {
    out.push("", "### Candidate reductions per job (audit queue, generated id, no rate limit)", "",
      t([...head.slice(1, 8), "Δ billed vs shipped"], reductions.map((j) => [...jobRow(j).slice(1, 8), (j.cost.billed - shipped.cost.billed).toFixed(1)])));
  }
  const windowS = idle[0]?.windowMs ? idle[0].windowMs / 1000 : 0;
  out.push("", `### Idle worker processes (${QUEUE_NAMES.length} queues each), ${windowS} s window; budget ${idleBudgetPerMinute(QUEUE_NAMES.length)} commands/min per process, script-internal ones included`, "",
    t(["settings", "client commands / min", "all / min", "billed / min", "writes / min", "bytes / min", "client mix / min"], [
      ...idle.map((r) => [r.label, r.clientPerMinute.toFixed(1), r.allPerMinute.toFixed(1), r.cost.billed.toFixed(1), r.cost.writes.toFixed(1), num(r.cost.bytes, 0), r.mix]),
      ...OTHER_POLLERS.map((p) => [p, "–", "–", "–", "–", "–", "see its own section"]),
    ]));
  const perJob = (list: JobCost[]) => scale(list.reduce((a, j) => ({ all: a.all + j.cost.all, billed: a.billed + j.cost.billed, writes: a.writes + j.cost.writes, bytes: a.bytes + j.cost.bytes }), { all: 0, billed: 0, writes: 0, bytes: 0 }), 1 / Math.max(1, list.length));
  // The costliest way the edge enqueues: a caller-chosen id with the rate limits on (the default).
  const priced = matrix.filter((j) => j.label === "caller id, rate limit");
  const pricedRows = priced.length > 0 ? priced : matrix;
  const job = perJob(pricedRows);
  // The shipped settings' rows: 1 and 5 processes, and 0 (scaled to zero, nothing connected).
  const idleOf = (replicas: number) =>
    idle.find((r) => /^(shipped|scaled to zero)/.test(r.label) && (r.settings.replicas ?? 1) === replicas)?.cost;
  if (matrix.length > 0 && idleOf(1)) {
    const rowsFor = (readRegions: number) => [0, 10_000, 1_000_000].flatMap((perDay) => (perDay === 0 && idleOf(0) ? [0, 1, 5] : [1, 5]).map((replicas) => {
      // The measured replicas row when there is one (5 processes side by side), else 1 × replicas.
      const measured = idleOf(replicas);
      const usage = { perJob: job, idlePerMinute: measured ?? scale(idleOf(1)!, replicas) };
      const { costs, best } = cheapest({ jobsPerDay: perDay, replicas: 1, readRegions }, usage);
      const m = monthlyUsage({ jobsPerDay: perDay, replicas: 1, readRegions }, usage);
      return [num(perDay, 0), String(replicas), `${num(m.commands / 1e6, 2)} M`, num(m.gb, 1),
        ...costs.map((c) => `${c === best ? "**" : ""}${usd(c.usd)}${c.fits ? "" : " ✗"}${c === best ? "**" : ""}`)];
    }));
    const planHead = PLANS.map((p) => p.name);
    out.push("", `### Monthly cost on Upstash (30 days; ${job.billed.toFixed(1)} billed commands per job, ${job.writes.toFixed(1)} of them writes: ` +
      `the mean of the queues' "caller id, rate limit" rows; idle processes billed all month; **bold** = cheapest plan that fits, ✗ = over the plan's commands/s or bandwidth)`, "",
      t(["jobs/day", "worker processes", "billed commands", "GB", ...planHead], rowsFor(0)));
    out.push("", `Global database: each write is billed again per read region — × ${replicationFactor(job, 1).toFixed(2)} per job with 1 read region, ` +
      `× ${replicationFactor(job, 2).toFixed(2)} with 2 (idle: × ${replicationFactor(idleOf(1)!, 1).toFixed(2)} / × ${replicationFactor(idleOf(1)!, 2).toFixed(2)}); a Fixed plan's read region costs 50 % of its price. With 1 read region:`, "",
      t(["jobs/day", "worker processes", "billed commands", "GB", ...planHead], rowsFor(1)));
    const client = { ...job, billed: pricedRows.reduce((a, j) => a + j.clientBilledPerJob, 0) / pricedRows.length, writes: 0 };
    out.push("", "### Throughput ceiling per database (plan's commands/s ÷ billed commands per job)", "",
      t(["plan", "commands/s", "jobs/s, one at a time", ...(backlog ? [`jobs/s, busy queue (${backlog.cost.billed.toFixed(1)}/job)`] : []), "jobs/s if only client commands counted"],
        PLANS.filter((p, i, all) => all.findIndex((q) => q.commandsPerSecond === p.commandsPerSecond) === i).map((p) => [
          PLANS.filter((q) => q.commandsPerSecond === p.commandsPerSecond).map((q) => q.name).join(", "), num(p.commandsPerSecond, 0),
          num(ceilingJobsPerSecond(p, job), 0), ...(backlog ? [num(ceilingJobsPerSecond(p, backlog.cost), 0)] : []), num(ceilingJobsPerSecond(p, client), 0),
        ])));
  }
  return out.join("\n");
}

if (import.meta.main) {
  const [jobs, idle] = await Promise.all([measureJobs(), measureIdleSettings()]);
  console.log(formatCommands(jobs, idle));
}
