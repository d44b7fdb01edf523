import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { requestId } from "hono/request-id";
import { authenticate, authorize, type ApiKey } from "./auth.ts";
import type { JwtVerifier } from "./auth/jwt.ts";
import { ApiError, onError } from "./errors.ts";
import { apiSecureHeaders, corsAllowList, requireJson } from "./protection.ts";
import { rateLimit, type RateLimitConfig } from "./rate-limit.ts";
import { apiDocs } from "./openapi.ts";
import { queueSession, type QueueSession, type QueueVariables } from "./queue-middleware.ts";
import { emails } from "./routes/emails.ts";
import { events } from "./routes/events.ts";
import { jobs } from "./routes/jobs.ts";
import { stripeWebhooks } from "./routes/stripe-webhooks.ts";

/** Largest accepted request body: 100 events or one email with a large HTML part fit well inside. */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface AppDeps {
  /**
   * SHA-256 hex digests of the valid API keys (full access), or digests with their scopes; the keys
   * themselves never reach the edge.
   */
  apiKeyHashes: readonly (string | ApiKey)[];
  /** End-user JWTs (edge/auth/jwt.ts `createJwtVerifier`); absent = API keys only. */
  jwt?: JwtVerifier | undefined;
  /** Opens a Redis session for one request (a Worker socket cannot outlive its request). */
  openQueue: () => QueueSession;
  /** Stripe webhook signing secrets; empty or absent = webhooks answer 503 (not configured). */
  stripeWebhookSecrets?: readonly string[];
  /** Per caller and route (edge/rate-limit.ts); absent = no limits. */
  rateLimits?: RateLimitConfig | undefined;
  /** Browser origins allowed to call the API (`*` = any); absent or empty = no CORS headers. */
  corsOrigins?: readonly string[] | undefined;
}

export function createApp(deps: AppDeps) {
  const app = new Hono<{ Variables: QueueVariables }>();
  app.use(requestId({ headerName: "X-Request-Id" }));
  app.use(apiSecureHeaders());
  // Before the credentials check: a browser's preflight carries no Authorization header.
  if (deps.corsOrigins?.length) app.use(corsAllowList(deps.corsOrigins));
  app.use(queueSession(deps.openQueue));

  // Liveness only, and unauthenticated: it must not touch Redis, or anyone could multiply Redis
  // connections (and Upstash's bill) by calling it. Readiness is /v1/health, behind the API key.
  app.get("/health", (c) => c.json({ status: "ok" }));
  // The API description and its reference page are public, like the API they describe.
  app.route("/", apiDocs);

  // Before the API-key guard: Stripe authenticates with its signature; the route has its own limit.
  app.use("/webhooks/stripe", requireJson());
  app.route("/webhooks/stripe", stripeWebhooks(deps.stripeWebhookSecrets ?? []));

  app.use("/v1/*", authenticate({ apiKeys: deps.apiKeyHashes, jwt: deps.jwt }));
  app.use("/v1/*", authorize());
  app.use("/v1/*", requireJson());
  if (deps.rateLimits) app.use("/v1/*", rateLimit(deps.rateLimits));
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) =>
        onError(new ApiError("payload_too_large", `request body exceeds ${MAX_BODY_BYTES} bytes`, { field: "body" }), c),
    }),
  );
  app.get("/v1/health", async (c) => {
    const { prefix, fleet } = await c.var.queue.readiness();
    const queues = Object.keys(fleet);
    // Status stays 200: Redis is fine and the edge accepts jobs; a missing fleet is said plainly,
    // since it usually means the edge and the fleet were given different QUEUE_PREFIX values.
    return c.json({
      status: "ok",
      redis: "ok",
      fleet: queues.length > 0 ? "seen" : `none on prefix ${prefix}`,
      ...(queues.length > 0 ? { fleetQueues: fleet } : {}),
    });
  });
  app.route("/v1/events", events);
  app.route("/v1/emails", emails);
  app.route("/v1/jobs", jobs);

  app.notFound((c) => onError(new ApiError("not_found", `no route ${c.req.method} ${c.req.path}`), c));
  app.onError(onError);
  return app;
}
