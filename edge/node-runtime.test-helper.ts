/**
 * The edge route tests' app on Node: the same `createApp` deps served over real HTTP by the
 * self-host server (worker/api/server.ts) with the production Node transport (one shared
 * connection, worker/api/node-transport.ts). edge/test-helpers.ts picks this when the vitest
 * project provides `edgeRuntime: "node"`; the test files are the same for both runtimes.
 */
import { onTestFinished } from "vitest";
import type { AppDeps } from "./app.ts";
import { createApp } from "./app.ts";
import { createProducer } from "./queue/producer.ts";
import type { RedisTransport } from "./queue/transport.ts";
import { createNodeRedis, type NodeRedisOptions } from "../worker/api/node-transport.ts";
import { startApiServer } from "../worker/api/server.ts";

export interface NodeAppOptions {
  deps: Omit<AppDeps, "openQueue">;
  prefix: string;
  redisUrl: string;
  redis: NodeRedisOptions;
  /** Replaces the shared connection (a test counting connections, or another transport). */
  transport?: () => RedisTransport;
}

/** Starts the server on a free port; it and its connection close when the current test ends. */
export async function serveOnNode(options: NodeAppOptions) {
  const shared = createNodeRedis(options.redisUrl, options.redis);
  const app = createApp({
    ...options.deps,
    openQueue: () => {
      const transport = options.transport?.() ?? shared.session();
      return { producer: createProducer(transport, { prefix: options.prefix }), close: () => transport.close() };
    },
  });
  const server = await startApiServer({ port: 0, app, checks: { redis: shared.ping } });
  onTestFinished(async () => {
    await server.close(5_000);
    await shared.close();
  });
  const base = `http://127.0.0.1:${server.port}`;
  return {
    request: (path: string, init?: RequestInit) => fetch(new URL(path, base), init),
    connectionsOpened: () => shared.connectionsOpened,
  };
}
