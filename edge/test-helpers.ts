// Shared by the edge's route tests: an app wired to the test Redis under a unique key prefix,
// and a raw connection to inspect what (if anything) reached Redis. The same tests run on both
// runtimes: inside workerd (the app called in-process, a socket per request) and, when the vitest
// project provides `edgeRuntime: "node"`, on Node (the self-host server over real HTTP, one shared
// connection; see node-runtime.test-helper.ts).
import { inject } from "vitest";
import { createApp, type AppDeps } from "./app.ts";
import { sha256Hex } from "./auth.ts";
import { createProducer } from "./queue/producer.ts";
import type { Reply } from "./queue/resp.ts";
import { createSocketTransport, type SocketTransportOptions } from "./queue/socket-transport.ts";
import type { RedisTransport } from "./queue/transport.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** "node": serve the app with the self-host Node server; absent: call it inside workerd. */
    edgeRuntime?: "node";
  }
}

export const API_KEY = "test-key-0123456789";

export interface TestAppOptions {
  redisUrl?: string;
  stripeWebhookSecrets?: string[];
  /** Another way to reach the test Redis (e.g. Upstash REST); default: a socket to `redisUrl`. */
  transport?: () => RedisTransport;
  /**
   * Socket timeouts. Default: the production defaults (2 s connect, 3 s command), so a 100-event
   * batch or a 1 MiB body on a loaded machine gets the budget it gets in production; only tests
   * about timeouts set their own.
   */
  socket?: SocketTransportOptions;
  /** More app deps (rate limits, CORS origins, …) on top of the test keys and Stripe secrets. */
  deps?: Partial<Omit<AppDeps, "openQueue">>;
}

export async function testApp(options: TestAppOptions = {}) {
  const redisUrl = options.redisUrl ?? inject("redisUrl");
  const prefix = `t${crypto.randomUUID().slice(0, 8)}`;
  const deps = {
    apiKeyHashes: [await sha256Hex("another-key"), await sha256Hex(API_KEY)],
    ...(options.stripeWebhookSecrets ? { stripeWebhookSecrets: options.stripeWebhookSecrets } : {}),
    ...options.deps,
  };
  let app: { request(path: string, init?: RequestInit): Promise<Response> };
  if (inject("edgeRuntime") === "node") {
    if (options.socket?.connect) throw new Error("socket.connect replaces a workerd primitive; it has no meaning on Node");
    // Imported only here: the workerd project never loads the Node server.
    const { serveOnNode } = await import("./node-runtime.test-helper.ts");
    app = await serveOnNode({
      deps,
      prefix,
      redisUrl,
      redis: { ...(options.socket?.connectTimeoutMs ? { connectTimeoutMs: options.socket.connectTimeoutMs } : {}),
        ...(options.socket?.commandTimeoutMs ? { commandTimeoutMs: options.socket.commandTimeoutMs } : {}) },
      ...(options.transport ? { transport: options.transport } : {}),
    });
  } else {
    const hono = createApp({
      ...deps,
      openQueue: () => {
        const transport = options.transport?.() ?? createSocketTransport(redisUrl, options.socket);
        return { producer: createProducer(transport, { prefix }), close: () => transport.close() };
      },
    });
    app = { request: async (path, init) => hono.request(path, init) };
  }
  /** Runs raw commands on the test Redis (e.g. to list what this test's prefix holds). */
  async function redis(...commands: string[][]): Promise<Reply[]> {
    const transport = createSocketTransport(inject("redisUrl"));
    try {
      return await transport.pipeline(commands);
    } finally {
      await transport.close();
    }
  }
  const keys = async () => ((await redis(["KEYS", `${prefix}:*`]))[0] as string[]).sort();
  const request = (path: string, init: RequestInit & { json?: unknown } = {}) => {
    const headers = new Headers(init.headers);
    if (!headers.has("authorization")) headers.set("authorization", `Bearer ${API_KEY}`);
    const body = init.json !== undefined ? JSON.stringify(init.json) : init.body;
    if (init.json !== undefined) headers.set("content-type", "application/json");
    return app.request(path, { ...init, headers, body });
  };
  return { app, prefix, request, redis, keys };
}
