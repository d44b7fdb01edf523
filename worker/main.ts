import { ApiEnvError, parseApiEnv, type ApiConfig } from "./api/env.ts";
import { createNodeApi, startApiServer, type ApiServer } from "./api/server.ts";
import type { Dashboard } from "./dashboard.ts";
import { createDb, type Database } from "./db.ts";
import { EnvError, parseEnv, parseRole, type Role, type WorkerConfig } from "./env.ts";
import { createHandlers, startFleet, type Fleet } from "./fleet.ts";
import { startHealthServer, type Check, type HealthServer } from "./health.ts";
import { createMetrics } from "./metrics.ts";
import { jsonLog as log } from "./runner.ts";

/**
 * The image's entry (`node worker/main.ts`); EDGEFLEET_ROLE picks what it runs:
 * - `worker` (default): env → database → queues → health server, then one "worker ready" line.
 * - `api`: the HTTP API (edge/app.ts on Node) on PORT, then one "api ready" line.
 * - `all`: both; the API's server also answers /healthz and /readyz, then "worker ready".
 * On SIGTERM/SIGINT: stop accepting HTTP (api, all), stop taking jobs and let running ones finish
 * (bounded by SHUTDOWN_TIMEOUT_MS, below Railway's drainingSeconds), close connections, exit 0.
 */

let role = "worker" as Role;
let config: WorkerConfig | undefined;
let apiConfig: ApiConfig | undefined;
{
  const problems: string[] = [];
  const attempt = (parse: () => void) => {
    try {
      parse();
    } catch (err) {
      if (!(err instanceof EnvError || err instanceof ApiEnvError)) throw err;
      problems.push(err.message);
    }
  };
  attempt(() => (role = parseRole(process.env)));
  if (problems.length === 0) {
    if (role !== "api") attempt(() => (config = parseEnv(process.env)));
    if (role !== "worker") attempt(() => (apiConfig = parseApiEnv(process.env)));
  }
  if (problems.length > 0) {
    console.error(problems.join("\n"));
    process.exit(2);
  }
}

let database: Database | undefined;
let fleet: Fleet | undefined;
if (config) {
  database = createDb(config.databaseUrl, {
    driver: config.databaseDriver,
    connectTimeoutMs: config.databaseConnectTimeoutMs,
    queryTimeoutMs: config.databaseQueryTimeoutMs,
  });
  try {
    fleet = await startFleet(config, { handlers: createHandlers(database.db, config), log });
  } catch (err) {
    log("error", "worker failed to start", { error: err instanceof Error ? err.message : String(err) });
    await database.close().catch(() => undefined);
    process.exit(1);
  }
}

const checks: Record<string, Check> = {};
// Queues held off because a dependency is down: `{ email: { dependency: "resend", since, … } }`.
const details = fleet ? () => ({ outages: fleet.outages() }) : undefined;
if (fleet) checks.redis = fleet.ping;
if (database) checks.postgres = database.ping;

// /metrics and /dashboard wherever the fleet runs (worker/health.ts); off in role api.
const metrics = fleet && config && createMetrics({ queues: config.queues, jobs: fleet.jobs, backlog: fleet.backlog, outages: fleet.outages, checks });
// Imported only when configured: bull-board and its UI cost seconds of CPU to load.
const dashboard: Dashboard | undefined = config?.dashboard && (await import("./dashboard.ts")).createDashboard({ config, auth: config.dashboard });
const ops = { metrics, metricsToken: config?.metricsToken, dashboard: dashboard?.app };

let api: (ReturnType<typeof createNodeApi> & { server: ApiServer }) | undefined;
let health: HealthServer | undefined;
if (apiConfig) {
  const nodeApi = createNodeApi(apiConfig);
  // With the fleet in the process, `redis` is the fleet's connection; the API's own is checked too.
  checks[fleet ? "api-redis" : "redis"] = nodeApi.ping;
  api = { ...nodeApi, server: await startApiServer({ port: apiConfig.port, app: nodeApi.app, checks, ...ops, ...(details ? { details } : {}) }) };
} else {
  health = await startHealthServer({ port: config?.port ?? 8080, checks, ...ops, ...(details ? { details } : {}) });
}
const port = api?.server.port ?? health?.port;

const shutdownTimeoutMs = config?.shutdownTimeoutMs ?? apiConfig?.shutdownTimeoutMs ?? 25_000;
const name = role === "api" ? "api" : "worker";
let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) {
    // A second signal (e.g. Ctrl-C twice) means "now": running jobs will be picked up again once
    // their locks lapse.
    log("warn", "second signal; exiting without waiting", { signal });
    process.exit(1);
  }
  stopping = true;
  log("info", `${name} stopping`, { signal, timeoutMs: shutdownTimeoutMs });
  const started = performance.now();
  // HTTP first: a request accepted now would enqueue into a process about to stop draining; the
  // load balancer sends it to another instance instead. In-flight requests finish (bounded).
  const answered = api ? await api.server.close(shutdownTimeoutMs) : true;
  if (!answered) log("warn", "shutdown cut off HTTP requests still running");
  let drained = true;
  if (fleet) {
    // One budget for the whole stop: the platform kills at drainingSeconds whatever took the time.
    const left = Math.max(1, shutdownTimeoutMs - (performance.now() - started));
    ({ drained } = await fleet.close(left));
    if (!drained) log("warn", "shutdown timed out; unfinished jobs will be retried by another worker");
  }
  await health?.close();
  await dashboard?.close();
  await api?.close();
  await database?.close();
  // drained: every running job finished; answered: every HTTP request in flight got its answer.
  log("info", `${name} stopped`, {
    ...(fleet ? { drained } : {}),
    ...(api ? { answered } : {}),
    ms: Math.round(performance.now() - started),
  });
  process.exit(0);
}
process.on("SIGTERM", (s) => void shutdown(s));
process.on("SIGINT", (s) => void shutdown(s));

if (config) {
  log("info", "worker ready", {
    queues: config.queues.join(","),
    prefix: config.queuePrefix,
    port,
    db: database?.driver,
    email: !config.queues.includes("email") ? "off" : config.emailCapture ? "capture" : "resend",
    metrics: config.metricsToken ? "/metrics (bearer token)" : "/metrics",
    dashboard: dashboard ? "/dashboard" : "off",
    ...(apiConfig ? { role, api: apiConfig.redis.transport } : {}),
    pid: process.pid,
  });
} else if (apiConfig) {
  log("info", "api ready", { role, prefix: apiConfig.queuePrefix, port, redis: apiConfig.redis.transport, pid: process.pid });
}
