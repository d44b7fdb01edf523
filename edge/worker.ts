// The Worker entry: parse bindings once per isolate, build the app, and give each request its own
// Redis socket (cloudflare:sockets connections cannot be shared across requests).
import { createApp } from "./app.ts";
import { parseEdgeEnv, type EdgeEnv } from "./env.ts";
import { createProducer } from "./queue/producer.ts";
import { createSocketTransport } from "./queue/socket-transport.ts";

let cached: { bindings: unknown; app: ReturnType<typeof createApp> } | undefined;

function appFor(bindings: Record<string, unknown>) {
  if (cached?.bindings !== bindings) {
    const env: EdgeEnv = parseEdgeEnv(bindings);
    const app = createApp({
      apiKeyHashes: env.API_KEY_HASHES,
      stripeWebhookSecrets: env.STRIPE_WEBHOOK_SECRET,
      openQueue: () => {
        const transport = createSocketTransport(env.REDIS_URL, {
          connectTimeoutMs: env.REDIS_CONNECT_TIMEOUT_MS,
          commandTimeoutMs: env.REDIS_COMMAND_TIMEOUT_MS,
        });
        return { producer: createProducer(transport, { prefix: env.QUEUE_PREFIX }), close: () => transport.close() };
      },
    });
    cached = { bindings, app };
  }
  return cached.app;
}

export default {
  fetch(request, bindings, ctx) {
    let app;
    try {
      app = appFor(bindings);
    } catch (err) {
      // A misconfigured deployment: log every problem (names only, never values) and refuse.
      console.error(String(err));
      return Response.json(
        { error: { code: "internal_error", message: "the edge is misconfigured", requestId: crypto.randomUUID() } },
        { status: 500 },
      );
    }
    return app.fetch(request, bindings, ctx);
  },
} satisfies ExportedHandler<Record<string, unknown>>;
