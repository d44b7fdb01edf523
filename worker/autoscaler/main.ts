import { jsonLog as log } from "../runner.ts";
import { AutoscalerEnvError, parseAutoscalerEnv, type AutoscalerConfig } from "./config.ts";
import { startAutoscalerService } from "./service.ts";

/**
 * `node worker/autoscaler/main.ts` (same image as the fleet, its own tiny Railway service): scales
 * the fleet's Railway services on their queues' backlog, down to zero. Env: worker/autoscaler/config.ts.
 * SIGTERM/SIGINT: stop the loops (replicas stay as they are), close HTTP and Redis, exit 0.
 */

let config: AutoscalerConfig;
try {
  config = parseAutoscalerEnv(process.env);
} catch (err) {
  if (!(err instanceof AutoscalerEnvError)) throw err;
  console.error(err.message);
  process.exit(2);
}

const service = await startAutoscalerService(config, { log }).catch((err: unknown) => {
  log("error", "autoscaler failed to start", { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) process.exit(1);
  stopping = true;
  log("info", "autoscaler stopping", { signal });
  await service.close();
  log("info", "autoscaler stopped", { redisCommands: service.commands().total });
  process.exit(0);
}
process.on("SIGTERM", (s) => void shutdown(s));
process.on("SIGINT", (s) => void shutdown(s));

log("info", "autoscaler ready", {
  port: service.server.port,
  prefix: config.queuePrefix,
  targets: config.targets.map((t) => `${t.name}:${t.queues.join("+")}:${t.settings.minReplicas}-${t.settings.maxReplicas}`).join(","),
  railway: config.dryRun ? "dry-run" : config.railway?.kind === "project" ? "project token" : "account token",
  pid: process.pid,
});
