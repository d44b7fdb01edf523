// Worker memory at rest and under load, read from its own /metrics (process_resident_memory_bytes),
// and the Redis commands one scrape costs. Runs the real entry point (node worker/main.ts, all four
// queues, audit at concurrency 100) against a Redis and Postgres of its own; 127.0.0.1 only.
//   bash tools/dev/with-node.sh node tools/bench/worker-rss.ts [jobs=20000]
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { auditContract } from "../../shared/jobs/audit.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { migrate } from "../../worker/migrate.ts";
import { runMain } from "../testing/main-process.ts";
import { startPostgres, startRedis } from "../dev/local-services.ts";
import { auditEvent } from "./enqueue.ts";

const jobs = Number(process.argv[2] ?? 20_000);
const dir = join(tmpdir(), `edgefleet-rss-${process.pid}`);
const redisServer = await startRedis({ dataDir: join(dir, "redis") });
const pg = await startPostgres({ dataDir: join(dir, "pg") });
const stops: Array<() => Promise<unknown>> = [redisServer.stop, pg.stop];
try {
  await migrate(pg.url);
  const main = runMain({ REDIS_URL: redisServer.url, DATABASE_URL: pg.url, EMAIL_CAPTURE: "1", PORT: "0", WORKER_CONCURRENCY_AUDIT: "100" });
  stops.unshift(async () => {
    main.child.kill("SIGTERM");
    await main.exitedWithin(30_000);
  });
  const ready = await main.waitForLine("worker ready", 60_000);
  const url = `http://127.0.0.1:${String(ready.port)}/metrics`;
  const scrape = async () => {
    const text = await (await fetch(url)).text();
    const value = (name: string, labels = "") => Number(new RegExp(`^${name}${labels.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
    return { rss: value("process_resident_memory_bytes"), completed: value("edgefleet_jobs_total", '{queue="audit",name="record-event",outcome="completed"}') };
  };
  const mb = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MB`;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  await sleep(3_000);
  const justStarted = (await scrape()).rss;
  // At rest: 30 s idle after start-up, when start-up garbage has been collected.
  await sleep(30_000);
  const rest: number[] = [];
  for (let i = 0; i < 5; i++) {
    rest.push((await scrape()).rss);
    await sleep(500);
  }

  // Commands one scrape costs (INFO's own count subtracted); the fleet's idle polling may land in
  // a window, so the smallest of five.
  const admin = new Redis(redisOptions(redisServer.url));
  const processed = async () => Number(/total_commands_processed:(\d+)/.exec(await admin.info("stats"))![1]);
  const perScrape: number[] = [];
  for (let i = 0; i < 5; i++) {
    const before = await processed();
    await scrape();
    perScrape.push((await processed()) - before - 1);
  }

  const queue = new Queue("audit", { connection: redisOptions(redisServer.url) });
  const started = performance.now();
  let peak = 0;
  let done = false;
  const sampler = (async () => {
    while (!done) {
      peak = Math.max(peak, (await scrape()).rss);
      await sleep(200);
    }
  })();
  for (let i = 0; i < jobs; i += 1_000) {
    const batch = Array.from({ length: Math.min(1_000, jobs - i) }, (_, k) => {
      const id = `rss-${i + k}`;
      return { name: auditContract.name, data: { ...auditEvent(id), occurredAt: new Date().toISOString() }, opts: { ...auditContract.defaults, jobId: id } };
    });
    await queue.addBulk(batch);
  }
  const deadline = Date.now() + 300_000;
  while ((await scrape()).completed < jobs) {
    if (Date.now() > deadline) throw new Error("drain did not finish in 300 s");
    await sleep(200);
  }
  const ms = performance.now() - started;
  done = true;
  await sampler;
  await sleep(5_000);
  const after = (await scrape()).rss;
  await queue.close();
  admin.disconnect();
  console.log(
    JSON.stringify({
      jobs,
      startedRss: mb(justStarted),
      restRssMedian: mb(median(rest)),
      loadRssPeak: mb(peak),
      afterDrainRss: mb(after),
      drainSeconds: Math.round(ms / 100) / 10,
      redisCommandsPerScrape: { min: Math.min(...perScrape), all: perScrape },
    }),
  );
} finally {
  for (const stop of stops) await stop().catch((err: unknown) => console.error(err));
  rmSync(dir, { recursive: true, force: true });
}
