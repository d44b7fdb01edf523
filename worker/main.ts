import { createDb } from "./db.ts";
import { EnvError, parseEnv, type WorkerConfig } from "./env.ts";
import { createHandlers, startFleet, type Fleet } from "./fleet.ts";
import { startHealthServer } from "./health.ts";
import { jsonLog as log } from "./runner.ts";

/**
 * Worker entry (`node worker/main.ts`): env → database → queues → health server, then one JSON
 * "worker ready" line. On SIGTERM/SIGINT: stop taking jobs, let running ones finish (bounded by
 * SHUTDOWN_TIMEOUT_MS, below Railway's drainingSeconds), close connections, exit 0.
 */

let config: WorkerConfig;
try {
  config = parseEnv(process.env);
} catch (err) {
  if (!(err instanceof EnvError)) throw err;
  console.error(err.message);
  process.exit(2);
}

const database = createDb(config.databaseUrl, {
  driver: config.databaseDriver,
  connectTimeoutMs: config.databaseConnectTimeoutMs,
  queryTimeoutMs: config.databaseQueryTimeoutMs,
});
let fleet: Fleet;
try {
  fleet = await startFleet(config, { handlers: createHandlers(database.db, config), log });
} catch (err) {
  log("error", "worker failed to start", { error: err instanceof Error ? err.message : String(err) });
  await database.close().catch(() => undefined);
  process.exit(1);
}
const health = await startHealthServer({
  port: config.port,
  checks: { redis: fleet.ping, postgres: database.ping },
  // Queues held off because a dependency is down: `{ email: { dependency: "resend", since, … } }`.
  details: () => ({ outages: fleet.outages() }),
});

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) {
    // A second signal (e.g. Ctrl-C twice) means "now": running jobs will be picked up again once
    // their locks lapse.
    log("warn", "second signal; exiting without waiting", { signal });
    process.exit(1);
  }
  stopping = true;
  log("info", "worker stopping", { signal, timeoutMs: config.shutdownTimeoutMs });
  const started = performance.now();
  const { drained } = await fleet.close(config.shutdownTimeoutMs);
  if (!drained) log("warn", "shutdown timed out; unfinished jobs will be retried by another worker");
  await health.close();
  await database.close();
  log("info", "worker stopped", { drained, ms: Math.round(performance.now() - started) });
  process.exit(0);
}
process.on("SIGTERM", (s) => void shutdown(s));
process.on("SIGINT", (s) => void shutdown(s));

log("info", "worker ready", {
  queues: config.queues.join(","),
  prefix: config.queuePrefix,
  port: health.port,
  db: database.driver,
  email: !config.queues.includes("email") ? "off" : config.emailCapture ? "capture" : "resend",
  pid: process.pid,
});
