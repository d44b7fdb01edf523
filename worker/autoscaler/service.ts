import { Redis } from "ioredis";
import { producerRedisOptions } from "../fleet.ts";
import type { Log } from "../runner.ts";
import type { AutoscalerConfig, TargetConfig } from "./config.ts";
import { startAutoscaler, type Autoscaler, type Clock, type ScaleDriver } from "./loop.ts";
import { commandsPerPoll, readSnapshot } from "./observe.ts";
import { createRailwayClient, createRailwayDriver } from "./railway.ts";
import { startAutoscalerServer, type AutoscalerServer } from "./server.ts";

/**
 * Everything `node worker/autoscaler/main.ts` runs, from a parsed config: one Redis connection, one
 * loop per target (Railway driver, or an in-memory one in a dry run), the HTTP server. Tests start
 * it in-process with their own clock.
 */

export interface AutoscalerService {
  server: AutoscalerServer;
  targets: Array<{ config: TargetConfig; autoscaler: Autoscaler }>;
  /** Redis commands this process sent: in total, and over the last 60 s (by the service's clock). */
  commands(): { total: number; lastMinute: number; perPoll: Record<string, number> };
  close(): Promise<void>;
}

export async function startAutoscalerService(config: AutoscalerConfig, deps: { log: Log; clock?: Clock; run?: boolean }): Promise<AutoscalerService> {
  const { log } = deps;
  const now = () => (deps.clock ?? { now: Date.now }).now();
  // Fails fast instead of queueing commands while Redis is away: a poll that fails is retried by
  // the next tick.
  const redis = new Redis({ ...producerRedisOptions(config.redisUrl, config.redisCaCertPath), lazyConnect: true });
  redis.on("error", (err: Error) => log("warn", "redis connection error", { error: err.message }));
  await redis.connect();

  const sent: Array<{ at: number; n: number }> = [];
  let total = 0;
  const count = (n: number) => {
    total += n;
    sent.push({ at: now(), n });
    while (sent.length > 0 && now() - sent[0]!.at > 60_000) sent.shift();
  };

  const railway = config.railway && !config.dryRun
    ? createRailwayClient({ ...(config.railwayUrl ? { url: config.railwayUrl } : {}), auth: config.railway, timeoutMs: config.railwayTimeoutMs })
    : undefined;

  const targets = config.targets.map((target) => {
    let driver: ScaleDriver;
    if (railway) {
      driver = createRailwayDriver(railway, target, { log, now });
    } else {
      // Dry run: the loop's own belief, starting at minReplicas; nothing outside changes.
      let replicas = target.settings.minReplicas;
      driver = { current: () => replicas, apply: async (n) => void (replicas = n) };
    }
    const autoscaler = startAutoscaler({
      name: target.name,
      driver,
      settings: target.settings,
      log,
      dryRun: config.dryRun,
      ...(deps.clock ? { clock: deps.clock } : {}),
      ...(deps.run === false ? { run: false } : {}),
      observe: async (at) => {
        count(commandsPerPoll(target.queues.length));
        return readSnapshot(redis, config.queuePrefix, target.queues, at);
      },
    });
    return { config: target, autoscaler };
  });

  const commands = () => ({
    total,
    lastMinute: sent.filter((s) => now() - s.at <= 60_000).reduce((a, s) => a + s.n, 0),
    perPoll: Object.fromEntries(config.targets.map((t) => [t.name, commandsPerPoll(t.queues.length)])),
  });

  const server = await startAutoscalerServer({
    port: config.port,
    wakeToken: config.wakeToken,
    targets: targets.map((t) => ({ name: t.config.name, queues: t.config.queues, autoscaler: t.autoscaler })),
    log,
    details: () => ({ dryRun: config.dryRun, redisCommands: commands() }),
  });

  return {
    server,
    targets,
    commands,
    close: async () => {
      await server.close();
      await Promise.all(targets.map((t) => t.autoscaler.stop()));
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
