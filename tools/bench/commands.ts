// What Redis work costs in commands (Upstash bills per command): per job end to end for each
// built-in queue, and per idle minute for one worker process, measured with Redis's own counters
// (INFO commandstats / total_commands_processed) on private servers started here.
// Run alone: `node tools/bench/commands.ts` (about 2.5 minutes); bench.ts calls `measureJobs` and `measureIdleSettings`.
import { join } from "node:path";
import { Redis } from "ioredis";
import { createNodeTransport } from "../../edge/queue/node-transport.test-helper.ts";
import { createProducer } from "../../edge/queue/producer.ts";
import { auditContract } from "../../shared/jobs/audit.ts";
import type { JobContract, QueueName } from "../../shared/jobs/contract.ts";
import { emailContract } from "../../shared/jobs/email.ts";
import { reportContract } from "../../shared/jobs/report.ts";
import { QUEUE_NAMES } from "../../shared/jobs/registry.ts";
import { stripeWebhookContract } from "../../shared/jobs/stripe-webhook.ts";
import { createDb } from "../../worker/db.ts";
import { ROOT, startPostgres, startRedis } from "../dev/local-services.ts";
import { parseEnv } from "../../worker/env.ts";
import { createHandlers, producerRedisOptions, startFleet } from "../../worker/fleet.ts";
import { idleBudgetPerMinute, measureIdle, perMinute, type IdleSettings } from "./idle-budget.ts";
import { migrate } from "../../worker/migrate.ts";

/** Upstash Pay-As-You-Go: $0.20 per 100K commands (upstash.com/docs/redis/overall/billing). */
export const USD_PER_100K_COMMANDS = 0.2;
const CLIENT = new Set(["auth", "evalsha", "eval", "bzpopmin", "ping", "hello", "client", "select"]);

export interface JobCost {
  queue: QueueName;
  jobs: number;
  /** Jobs that failed instead of completing (then the per-job figures are suspect). */
  failed: number;
  clientPerJob: number;
  allPerJob: number;
  mix: string;
}
export interface IdleCost { label: string; settings: IdleSettings; windowMs: number; clientPerMinute: number; allPerMinute: number; mix: string }

function payload(queue: QueueName, i: number): { contract: JobContract; data: unknown; id: string } {
  const id = `${queue.replace("-", "")}_${Date.now()}_${i}`;
  if (queue === "audit") return { contract: auditContract, id, data: { id, name: "bench", type: "domain", occurredAt: new Date().toISOString(), payload: {} } };
  if (queue === "email") return { contract: emailContract, id, data: { to: "a@example.com", subject: "bench", text: "hi" } };
  // One account per job: the report contract deduplicates on account and month.
  if (queue === "report") return { contract: reportContract, id, data: { accountId: `acct_${i}`, month: "2026-11" } };
  if (queue !== "stripe-webhook") throw new Error(`no benchmark payload for queue ${queue}`);
  const evt = `evt_${id}`;
  return { contract: stripeWebhookContract, id: evt, data: { id: evt, type: "customer.created", created: 1_790_000_000, livemode: false, event: { id: evt, type: "customer.created", data: { object: { id: "cus_1", object: "customer" } } } } };
}

async function stats(redis: Redis) {
  const text = await redis.info("stats", "commandstats");
  const calls = new Map([...text.matchAll(/^cmdstat_([^:|]+)(?:\|[^:]+)?:calls=(\d+)/gm)].map((m) => [m[1] ?? "", Number(m[2])]));
  return { total: Number(/^total_commands_processed:(\d+)/m.exec(text)?.[1]), calls };
}

/**
 * Jobs enqueued one at a time through the edge's own producer (BullMQ's add script over RESP;
 * a fresh connection per job, as the edge opens one socket per request, so AUTH is counted per
 * job), each processed by the real fleet before the next: the low-volume case, where every job
 * wakes an idle worker. Commands of the measuring connection (two INFO) are subtracted.
 */
export async function measureJobs(jobs = 300, dir = join(ROOT, ".data/bench-commands", String(process.pid))): Promise<JobCost[]> {
  const redisServer = await startRedis({ dataDir: join(dir, "redis") });
  const pg = await startPostgres({ dataDir: join(dir, "postgres") });
  await migrate(pg.url);
  const config = parseEnv({ REDIS_URL: redisServer.url, DATABASE_URL: pg.url, WORKER_CONCURRENCY: "1", EMAIL_RATE_PER_SECOND: "1000", EMAIL_CAPTURE: "1" });
  const database = createDb(pg.url, { driver: "pg" });
  const fleet = await startFleet(config, { handlers: createHandlers(database.db, config), log: () => {} });
  const admin = new Redis(producerRedisOptions(redisServer.url));
  const results: JobCost[] = [];
  try {
    for (const queue of config.queues) {
      const worker = fleet.workers.get(queue);
      if (!worker) throw new Error(`no worker for ${queue}`);
      let done = 0;
      let failed = 0;
      worker.on("completed", () => void done++);
      worker.on("failed", (job, err) => {
        // Counted as done so the run goes on; the failure fails the run's verification.
        done++;
        failed++;
        console.error(`${queue} job ${job?.id} failed: ${err.message}`);
      });
      const run = async (i: number) => {
        const { contract, data, id } = payload(queue, i);
        const transport = createNodeTransport(redisServer.url);
        const target = done + 1;
        await createProducer(transport, { prefix: config.queuePrefix }).add({ contract, data: data as never, opts: { jobId: id } });
        await transport.close();
        while (done < target) await new Promise((r) => setTimeout(r, 1));
      };
      for (let i = 0; i < 20; i++) await run(1_000_000 + i); // warm-up: script cache, pools, JIT
      const before = await stats(admin);
      for (let i = 0; i < jobs; i++) await run(i);
      const after = await stats(admin);
      const client = [...after.calls].map(([n, c]) => [n, c - (before.calls.get(n) ?? 0) - (n === "info" ? 1 : 0)] as const).filter(([n, d]) => d > 0 && CLIENT.has(n));
      results.push({
        queue, jobs, failed,
        clientPerJob: client.reduce((a, [, d]) => a + d, 0) / jobs,
        allPerJob: (after.total - before.total - 1) / jobs,
        mix: client.map(([n, d]) => `${n.toUpperCase()} ${(d / jobs).toFixed(2)}`).join(", "),
      });
    }
  } finally {
    await fleet.close(5_000);
    admin.disconnect();
    await database.close();
    await pg.stop();
    await redisServer.stop();
  }
  return results;
}

/** One idle worker process with all three queues, measured side by side on private servers. */
export async function measureIdleSettings(windowMs = 120_000, dir = join(ROOT, ".data/bench-commands", `idle-${process.pid}`)): Promise<IdleCost[]> {
  const shipped = parseEnv({ REDIS_URL: "redis://127.0.0.1:1", DATABASE_URL: "postgres://u:p@127.0.0.1:1/db", EMAIL_CAPTURE: "1" });
  const rows: Array<[string, IdleSettings]> = [
    ["BullMQ defaults (drainDelay 5 s, stalled 30 s)", { drainDelaySeconds: 5, stalledIntervalMs: 30_000, lockDurationMs: 30_000 }],
    [`shipped (drainDelay ${shipped.drainDelaySeconds} s, stalled ${shipped.stalledIntervalMs / 1000} s)`,
      { drainDelaySeconds: shipped.drainDelaySeconds, stalledIntervalMs: shipped.stalledIntervalMs, lockDurationMs: shipped.lockDurationMs }],
    ["economy (drainDelay 60 s, stalled 120 s)", { drainDelaySeconds: 60, stalledIntervalMs: 120_000, lockDurationMs: 30_000 }],
  ];
  return Promise.all(rows.map(async ([label, settings], i) => {
    const s = await measureIdle(settings, windowMs, join(dir, String(i)));
    return {
      label, settings, windowMs,
      clientPerMinute: perMinute(s.clientCommands, windowMs),
      allPerMinute: perMinute(s.allCommands, windowMs),
      mix: Object.entries(s.client).map(([n, c]) => `${n.toUpperCase()} ${perMinute(c, windowMs).toFixed(1)}`).join(", "),
    };
  }));
}

/** Monthly (30-day) USD for `jobsPerDay` at `perJob` commands plus `replicas` idle processes. */
export function monthlyUsd(jobsPerDay: number, perJob: number, replicas: number, idlePerMinute: number): number {
  const commands = 30 * (jobsPerDay * perJob + replicas * idlePerMinute * 1440);
  return (commands / 100_000) * USD_PER_100K_COMMANDS;
}

export function formatCommands(jobs: JobCost[], idle: IdleCost[]): string {
  const t = (head: string[], rows: string[][]) => [head, head.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
  const meanJob = jobs.reduce((a, j) => a + j.clientPerJob, 0) / jobs.length;
  const cost = idle.filter((r) => !r.label.startsWith("economy")).flatMap((r) => [0, 10_000, 1_000_000].map((perDay) => [
    r.label, perDay.toLocaleString("en-US"),
    ...[1, 5].map((n) => `$${monthlyUsd(perDay, meanJob, n, r.clientPerMinute).toFixed(2)}`),
  ]));
  return [
    "### Redis commands per job (enqueue through the edge producer + process + complete)", "",
    t(["queue", "jobs", "client commands / job", "all commands / job (incl. inside scripts)", "client mix / job"],
      jobs.map((j) => [j.queue, String(j.jobs), j.clientPerJob.toFixed(2), j.allPerJob.toFixed(1), j.mix])),
    "", `### Idle worker process (${QUEUE_NAMES.length} queues), ${idle[0]?.windowMs ? idle[0].windowMs / 1000 : "?"} s window; budget ${idleBudgetPerMinute(QUEUE_NAMES.length)} client commands/min`, "",
    t(["settings", "client commands / min", "all commands / min", "client mix / min"],
      idle.map((r) => [r.label, r.clientPerMinute.toFixed(1), r.allPerMinute.toFixed(1), r.mix])),
    "", `### Monthly cost at $${USD_PER_100K_COMMANDS} per 100K commands (client commands; ${meanJob.toFixed(2)} per job, mean of the queues; idle counted all month)`, "",
    t(["settings", "jobs/day", "1 replica", "5 replicas"], cost),
  ].join("\n");
}

if (import.meta.main) {
  const [jobs, idle] = await Promise.all([measureJobs(), measureIdleSettings()]);
  console.log(formatCommands(jobs, idle));
}
