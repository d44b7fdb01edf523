// What `appendfsync always` costs against `everysec` for the queues: BullMQ `Queue.add` through one
// shared connection, at `concurrency` in flight and one at a time, in interleaved rounds on one
// private Redis whose policy is switched with CONFIG SET between rounds. The AOF lives in the
// checkout's `.data/` (the disk the dev/test Redis uses), so fsync hits a real file system.
// Part of `npm run bench` (`--skip-fsync`); alone: `node tools/bench/fsync.ts [--jobs N]
// [--concurrency N] [--rounds N]` prints the table.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Queue, type JobsOptions } from "bullmq";
import { Redis } from "ioredis";
import { auditContract } from "../../shared/jobs/audit.ts";
import { ROOT, startRedis } from "../dev/local-services.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { auditEvent } from "./enqueue.ts";
import { closedLoop, median, percentile } from "./load.ts";

export type Fsync = "everysec" | "always";

export interface FsyncResult {
  policy: Fsync;
  /** Median over rounds of jobs/s with `concurrency` adds in flight. */
  perSecond: number;
  /** Percentiles of one add at a time, samples of all rounds pooled. */
  p50Ms: number;
  p99Ms: number;
}

export interface FsyncSettings {
  /** Adds per policy per round with `concurrency` in flight; a fifth of that one at a time. */
  jobs: number;
  concurrency: number;
  rounds: number;
}

export async function benchFsync(settings: FsyncSettings, dataDir = join(ROOT, ".data/bench-fsync", String(process.pid))): Promise<FsyncResult[]> {
  const server = await startRedis({ dataDir });
  const admin = new Redis(redisOptions(server.url));
  const queue = new Queue(auditContract.queue, { connection: redisOptions(server.url), prefix: "bench-fsync" });
  const opts = auditContract.defaults as JobsOptions;
  const add = (id: string) => queue.add(auditContract.name, { ...auditEvent(id), occurredAt: new Date().toISOString() }, { ...opts, jobId: id });
  const throughput = new Map<Fsync, number[]>();
  const single = new Map<Fsync, number[]>();
  try {
    await add("warm-up");
    for (let round = 0; round < settings.rounds; round++) {
      const order: Fsync[] = round % 2 === 0 ? ["everysec", "always"] : ["always", "everysec"];
      for (const policy of order) {
        await admin.config("SET", "appendfsync", policy);
        const loaded = await closedLoop({ concurrency: settings.concurrency, count: settings.jobs, deadlineMs: 120_000 }, (i) =>
          add(`${policy}-${round}-c${i}`).then(() => undefined),
        );
        const alone = await closedLoop({ concurrency: 1, count: Math.ceil(settings.jobs / 5), deadlineMs: 120_000 }, (i) =>
          add(`${policy}-${round}-s${i}`).then(() => undefined),
        );
        if (loaded.errors + alone.errors > 0) throw new Error(`${policy}: ${loaded.firstError ?? alone.firstError}`);
        throughput.set(policy, [...(throughput.get(policy) ?? []), loaded.perSecond]);
        single.set(policy, [...(single.get(policy) ?? []), ...alone.samplesMs]);
        await admin.flushdb();
      }
    }
  } finally {
    await queue.close();
    admin.disconnect();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return (["everysec", "always"] as const).map((policy) => {
    const samples = (single.get(policy) ?? []).sort((a, b) => a - b);
    return {
      policy,
      perSecond: median(throughput.get(policy) ?? []),
      p50Ms: percentile(samples, 0.5),
      p99Ms: percentile(samples, 0.99),
    };
  });
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { jobs: { type: "string" }, concurrency: { type: "string" }, rounds: { type: "string" } } });
  const settings = { jobs: Number(values.jobs ?? 5000), concurrency: Number(values.concurrency ?? 25), rounds: Number(values.rounds ?? 3) };
  console.log(formatFsync(settings, await benchFsync(settings)));
}

export function formatFsync(settings: FsyncSettings, results: FsyncResult[]): string {
  const by = (p: Fsync) => results.find((r) => r.policy === p);
  const [everysec, always] = [by("everysec"), by("always")];
  return [
    `### AOF fsync policy: BullMQ \`Queue.add\` with \`appendfsync everysec\` vs \`always\` (${settings.rounds} interleaved rounds × ${settings.jobs} adds, ` +
      `${settings.concurrency} in flight; then ${Math.ceil(settings.jobs / 5)} one at a time)`,
    "",
    "| appendfsync | jobs/s | one at a time p50 ms | p99 ms |",
    "| --- | --- | --- | --- |",
    ...results.map((r) => `| ${r.policy} | ${r.perSecond.toFixed(0)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} |`),
    "",
    everysec && always
      ? `\`always\` gives ${((always.perSecond / everysec.perSecond) * 100).toFixed(0)} % of \`everysec\`'s throughput here; ` +
        "what it buys is no loss of acknowledged jobs when the machine (not only Redis) crashes."
      : "",
  ].join("\n");
}
