/**
 * The edge's Hono app served by Node (`@hono/node-server`): the same routes, API keys, validation
 * and error bodies as on Workers; only the way Redis is reached differs (one shared connection
 * instead of a socket per request). Probes for the platform sit in front of the app:
 * - `/healthz`: 200 whenever the process answers (liveness);
 * - `/readyz`: 200 only when every check passes, else 503 naming the failing ones (readiness).
 * The app's own `/health` and `/v1/health` answer as they do on the edge.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { createApp, type AppDeps } from "../../edge/app.ts";
import { createJwtVerifier } from "../../edge/auth/jwt.ts";
import { createProducer } from "../../edge/queue/producer.ts";
import { createUpstashTransport } from "../../edge/queue/upstash-transport.ts";
import { createWake } from "../../edge/wake.ts";
import { createOpsApp, isOpsPath, type Check, type HealthOptions } from "../health.ts";
import type { ApiConfig } from "./env.ts";
import { createNodeRedis } from "./node-transport.ts";

/**
 * `checks`: readiness checks for `/readyz` (Redis; Postgres too when the fleet shares the process);
 * `metrics` and `dashboard` when the fleet runs here (role all). See worker/health.ts.
 */
export interface ApiServerOptions extends HealthOptions {
  /** Anything with a fetch handler: `createApp(...)`. */
  app: { fetch(request: Request): Response | Promise<Response> };
}

export interface ApiServer {
  readonly port: number;
  /**
   * Stops accepting connections and waits for in-flight requests, at most `timeoutMs`; then cuts
   * the connections still open. Resolves true when every request finished.
   */
  close(timeoutMs: number): Promise<boolean>;
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const ops = createOpsApp(options);
  const listener = getRequestListener(async (request) => {
    const path = new URL(request.url).pathname;
    if (isOpsPath(path, options)) return ops.fetch(request);
    return options.app.fetch(request);
  });
  const server: Server = createServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: (closeTimeoutMs) =>
      new Promise<boolean>((resolve) => {
        // close() refuses new connections, closes idle keep-alive ones, and calls back once the
        // busy ones finished their request; a slow client past the bound is cut off.
        const timer = setTimeout(() => {
          server.closeAllConnections();
          resolve(false);
        }, closeTimeoutMs);
        server.close(() => {
          clearTimeout(timer);
          resolve(true);
        });
        server.closeIdleConnections();
      }),
  };
}

/** The app wired for Node from the parsed configuration, and what it holds open. */
export function createNodeApi(config: ApiConfig) {
  let openQueue: AppDeps["openQueue"];
  let ping: Check;
  let close: () => Promise<void>;
  const { redis } = config;
  // Fire-and-forget as on the edge: the process lives on, so the wake simply runs after the 202.
  const accepted = config.wake && createWake(config.wake);
  if (redis.transport === "upstash") {
    // REST over fetch: Node's fetch pools its HTTPS connections itself; a transport per request
    // keeps Upstash's read-your-writes token scoped to the request, as on the edge.
    const transport = () =>
      createUpstashTransport(redis.url, redis.token, { timeoutMs: config.redisConnectTimeoutMs + config.redisCommandTimeoutMs });
    openQueue = () => {
      const t = transport();
      return { producer: createProducer(t, { prefix: config.queuePrefix }), close: () => t.close(), accepted };
    };
    ping = () => createProducer(transport(), { prefix: config.queuePrefix }).ping();
    close = async () => {};
  } else {
    const shared = createNodeRedis(redis.url, {
      connectTimeoutMs: config.redisConnectTimeoutMs,
      commandTimeoutMs: config.redisCommandTimeoutMs,
      ...(config.redisCaCertPath ? { caCertPath: config.redisCaCertPath } : {}),
    });
    openQueue = () => {
      const t = shared.session();
      return { producer: createProducer(t, { prefix: config.queuePrefix }), close: () => t.close(), accepted };
    };
    ping = shared.ping;
    close = shared.close;
  }
  const app = createApp({
    apiKeyHashes: config.apiKeyHashes,
    jwt: config.jwt && createJwtVerifier(config.jwt),
    stripeWebhookSecrets: config.stripeWebhookSecrets,
    rateLimits: config.rateLimits,
    corsOrigins: config.corsOrigins,
    openQueue,
  });
  return { app, ping, close };
}
