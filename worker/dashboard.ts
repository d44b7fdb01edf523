import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { HonoAdapter } from "@bull-board/hono";
import { serveStatic } from "@hono/node-server/serve-static";
import { Queue } from "bullmq";
import { Hono } from "hono";
import { basicAuth } from "hono/basic-auth";
import { csrf } from "hono/csrf";
import { Redis } from "ioredis";
import type { QueueName } from "../shared/jobs/contract.ts";
import type { WorkerConfig } from "./env.ts";
import { redisOptions } from "./fleet.ts";

/**
 * The queue dashboard (bull-board) under `/dashboard`: inspect, retry, promote and remove jobs.
 * bull-board has no authentication of its own, so everything under the path — page, static files,
 * its JSON API — sits behind HTTP basic auth from configuration (DASHBOARD_USER/DASHBOARD_PASSWORD,
 * compared in constant time by hono's middleware). Off unless configured (worker/env.ts).
 *
 * Basic auth is sent by the browser on every request to the origin, cross-site ones included, so
 * the board also refuses form-type requests from another origin (hono's csrf middleware); its own
 * JSON calls are same-origin. Serve it over HTTPS only (Railway's edge terminates TLS).
 *
 * The board's Queue objects share one Redis connection and send nothing until someone uses the
 * page: the dashboard costs no Redis commands at rest.
 */

export const DASHBOARD_PATH = "/dashboard";

export interface DashboardOptions {
  config: Pick<WorkerConfig, "redisUrl" | "redisCaCertPath" | "queuePrefix" | "queues">;
  auth: { user: string; password: string };
}

export interface Dashboard {
  /** Answers every request under DASHBOARD_PATH. */
  app: Hono;
  close(): Promise<void>;
}

export function createDashboard({ config, auth }: DashboardOptions): Dashboard {
  // Fails a command after one retry instead of waiting out an outage: the page shows an error.
  const connection = new Redis({ ...redisOptions(config.redisUrl, config.redisCaCertPath), maxRetriesPerRequest: 1 });
  connection.on("error", () => undefined);
  const queues = config.queues.map((name: QueueName) => new Queue(name, { connection, prefix: config.queuePrefix }));

  const board = new HonoAdapter(serveStatic);
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q)),
    serverAdapter: board,
    options: { uiConfig: { boardTitle: "edgefleet" } },
  });
  board.setBasePath(DASHBOARD_PATH);

  const app = new Hono();
  app.use(`${DASHBOARD_PATH}/*`, basicAuth({ username: auth.user, password: auth.password, realm: "edgefleet dashboard" }));
  app.use(`${DASHBOARD_PATH}/*`, csrf());
  app.route(DASHBOARD_PATH, board.registerPlugin());
  return {
    app,
    close: async () => {
      await Promise.all(queues.map((q) => q.close()));
      connection.disconnect();
    },
  };
}
