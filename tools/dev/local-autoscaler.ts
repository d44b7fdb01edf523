// The autoscaler as `npm run dev` and the local scaling test run it: the same loop, policy and
// POST /wake server as the Railway service (worker/autoscaler), with the process driver instead of
// Railway — each replica is a `node worker/main.ts` process on this machine.
//
// Minimum 0 by default, as deployed: the fleet starts at zero and the edge's wake call
// (AUTOSCALER_WAKE_URL → this server) starts the first process when a job arrives. The settings are
// the production policy with its windows shortened so a newcomer sees a burst scale up and back
// down within a minute instead of the deployed five.
import { Redis } from "ioredis";
import type { QueueName } from "../../shared/jobs/contract.ts";
import { QUEUE_NAMES } from "../../shared/jobs/registry.ts";
import { startAutoscaler, type Autoscaler, type LoopSettings } from "../../worker/autoscaler/loop.ts";
import { commandsPerPoll, readSnapshot } from "../../worker/autoscaler/observe.ts";
import { DEFAULT_POLICY } from "../../worker/autoscaler/policy.ts";
import { createProcessDriver, type ProcessDriver } from "../../worker/autoscaler/processes.ts";
import { startAutoscalerServer } from "../../worker/autoscaler/server.ts";
import { producerRedisOptions } from "../../worker/fleet.ts";
import type { Log } from "../../worker/runner.ts";
import { ROOT } from "./local-services.ts";

/** Local windows: seconds instead of minutes; min 0 and the deployed activation rule. */
export const LOCAL_SCALING: LoopSettings = {
  ...DEFAULT_POLICY,
  minReplicas: 0,
  maxReplicas: 4,
  jobsPerReplica: 1_000,
  stabilizationSeconds: 10,
  scaleDownCooldownSeconds: 5,
  idleSeconds: 20,
  pollingIntervalSeconds: 2,
  safetyPollSeconds: 30,
  rateWindowSeconds: 10,
};

export interface LocalAutoscalerOptions {
  redisUrl: string;
  queuePrefix: string;
  /** The replicas' whole environment (REDIS_URL, DATABASE_URL, …); PORT is chosen per replica. */
  workerEnv: Record<string, string>;
  /** Bearer token for POST /wake (the edge's AUTOSCALER_WAKE_TOKEN). */
  wakeToken: string;
  log: Log;
  settings?: Partial<LoopSettings>;
  queues?: readonly QueueName[];
  /** 0 = any free port. */
  port?: number;
  /** Replicas' own log lines through `log` (default true). */
  forwardLogs?: boolean;
}

export interface LocalAutoscaler {
  /** POST here with the token to wake the fleet (what the edge calls). */
  wakeUrl: string;
  autoscaler: Autoscaler;
  driver: ProcessDriver;
  settings: LoopSettings;
  /** Redis commands the autoscaler spent on polls so far. */
  commands(): number;
  /** Stops the loop and the server, then every replica (graceful drain), then Redis. */
  close(): Promise<void>;
}

export async function startLocalAutoscaler(options: LocalAutoscalerOptions): Promise<LocalAutoscaler> {
  const settings = { ...LOCAL_SCALING, ...options.settings };
  const queues = options.queues ?? QUEUE_NAMES;
  const redis = new Redis({ ...producerRedisOptions(options.redisUrl, undefined), lazyConnect: true });
  redis.on("error", (err: Error) => options.log("warn", "redis connection error", { error: err.message }));
  await redis.connect();
  let commands = 0;
  const driver = createProcessDriver({
    env: options.workerEnv,
    cwd: ROOT,
    log: options.log,
    forwardLogs: options.forwardLogs ?? true,
    // A laptop (or a shared box) starting several processes at once can be slow; a replica that
    // misses this is stopped and the next tick tries again.
    readyTimeoutMs: 120_000,
  });
  const autoscaler = startAutoscaler({
    name: "local",
    driver,
    settings,
    log: options.log,
    observe: async (at) => {
      commands += commandsPerPoll(queues.length);
      return readSnapshot(redis, options.queuePrefix, queues, at);
    },
  });
  const server = await startAutoscalerServer({
    port: options.port ?? 0,
    wakeToken: options.wakeToken,
    targets: [{ name: "local", queues, autoscaler }],
    log: options.log,
  });
  return {
    wakeUrl: `http://127.0.0.1:${server.port}/wake`,
    autoscaler,
    driver,
    settings,
    commands: () => commands,
    close: async () => {
      await server.close();
      await autoscaler.stop();
      await driver.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
