// The Worker entry: parse bindings once per isolate, build the app, and give each request its own
// Redis transport (cloudflare:sockets connections cannot be shared across requests). Which
// transport is configuration alone: REDIS_URL → RESP over sockets, UPSTASH_REDIS_REST_* → REST.
import { createApp } from "./app.ts";
import { createJwtVerifier } from "./auth/jwt.ts";
import { parseEdgeEnv, type EdgeEnv } from "./env.ts";
import { createProducer } from "./queue/producer.ts";
import { createDurableObjectTransport } from "./queue/durable-object-transport.ts";
import { createSocketTransport } from "./queue/socket-transport.ts";
import type { RedisTransport } from "./queue/transport.ts";
import { createUpstashTransport } from "./queue/upstash-transport.ts";
import { createWake } from "./wake.ts";

let cached: { bindings: unknown; app: ReturnType<typeof createApp> } | undefined;

function appFor(bindings: Record<string, unknown>) {
  if (cached?.bindings !== bindings) {
    const env: EdgeEnv = parseEdgeEnv(bindings);
    if (env.REDIS_TRANSPORT === "durable-object" && !bindings.REDIS_CONNECTION) {
      throw new Error("REDIS_TRANSPORT=durable-object needs the REDIS_CONNECTION Durable Object binding (wrangler.toml)");
    }
    const accepted = env.wake && createWake(env.wake);
    const app = createApp({
      apiKeyHashes: env.API_KEY_HASHES,
      // Built with the app, once per isolate, so jose's JWKS cache outlives each request.
      jwt: env.jwt && createJwtVerifier(env.jwt),
      stripeWebhookSecrets: env.STRIPE_WEBHOOK_SECRET,
      rateLimits: env.RATE_LIMITS,
      corsOrigins: env.CORS_ORIGINS,
      openQueue: () => {
        const transport = openTransport(env, bindings);
        return { producer: createProducer(transport, { prefix: env.QUEUE_PREFIX }), close: () => transport.close(), accepted };
      },
    });
    cached = { bindings, app };
  }
  return cached.app;
}

function openTransport(env: EdgeEnv, bindings: Record<string, unknown>): RedisTransport {
  const { redis } = env;
  if (env.REDIS_TRANSPORT === "durable-object") {
    return createDurableObjectTransport(bindings.REDIS_CONNECTION as DurableObjectNamespace, {
      shards: env.REDIS_DO_SHARDS,
      locationHint: env.REDIS_DO_LOCATION_HINT,
      // The object's own bounds (connect + command) plus a margin for the hop to it.
      timeoutMs: env.REDIS_CONNECT_TIMEOUT_MS + env.REDIS_COMMAND_TIMEOUT_MS + 1000,
    });
  }
  if (redis.transport === "upstash") {
    // One HTTPS request covers connect + command, so it gets both budgets (default 5 s).
    return createUpstashTransport(redis.url, redis.token, {
      timeoutMs: env.REDIS_CONNECT_TIMEOUT_MS + env.REDIS_COMMAND_TIMEOUT_MS,
    });
  }
  return createSocketTransport(redis.url, {
    connectTimeoutMs: env.REDIS_CONNECT_TIMEOUT_MS,
    commandTimeoutMs: env.REDIS_COMMAND_TIMEOUT_MS,
  });
}

// The Durable Object class behind the REDIS_CONNECTION binding must be exported by the entry.
export { RedisConnection } from "./queue/redis-connection-object.ts";

export default {
  fetch(request, bindings, ctx) {
    let app;
    try {
      app = appFor(bindings);
    } catch (err) {
      // A misconfigured deployment: log every problem (names only, never values) and refuse. The
      // log line carries the request id the caller sees, like every other log line of the edge.
      const requestId = crypto.randomUUID();
      console.error(JSON.stringify({ level: "error", requestId, code: "internal_error", error: String(err) }));
      return Response.json(
        { error: { code: "internal_error", message: "the edge is misconfigured", requestId } },
        { status: 500, headers: { "X-Request-Id": requestId } },
      );
    }
    return app.fetch(request, bindings, ctx);
  },
} satisfies ExportedHandler<Record<string, unknown>>;
