import { z } from "zod";
import type { ApiKey } from "../../edge/auth.ts";
import type { JwtSettings } from "../../edge/auth/jwt.ts";
import { EdgeEnv, type RedisTarget } from "../../edge/env.ts";
import type { WakeTarget } from "../../edge/wake.ts";

/**
 * The API's configuration when it runs on Node (EDGEFLEET_ROLE=api or all). The edge's own schema
 * (edge/env.ts) decides Redis, API keys, end-user tokens, Stripe secrets, queue prefix and timeouts, so a setting
 * means the same on Workers and on Node; Node adds what a long-lived server needs.
 */
const NodeOnly = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
  /** PEM file with a CA to trust for rediss:// (added to Node's default CAs), as for the fleet. */
  REDIS_CA_CERT: z.string().trim().transform((s) => (s === "" ? undefined : s)).optional(),
  /** Bound on finishing in-flight HTTP requests after SIGTERM; the same variable as the fleet's drain. */
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().positive().default(25_000),
});

export interface ApiConfig {
  apiKeyHashes: ApiKey[];
  jwt: JwtSettings | undefined;
  stripeWebhookSecrets: string[];
  rateLimits: EdgeEnv["RATE_LIMITS"];
  corsOrigins: string[] | undefined;
  queuePrefix: string;
  redis: RedisTarget;
  /** The autoscaler's wake endpoint (edge/wake.ts); absent = no wake call. */
  wake: WakeTarget | undefined;
  redisCaCertPath: string | undefined;
  redisConnectTimeoutMs: number;
  redisCommandTimeoutMs: number;
  port: number;
  shutdownTimeoutMs: number;
}

/** Every problem of both schemas at once, as `VAR: message` lines; values are never echoed. */
export class ApiEnvError extends Error {
  readonly issues: string[];
  constructor(issues: string[]) {
    super(`invalid API configuration:\n  - ${issues.join("\n  - ")}`);
    this.name = "ApiEnvError";
    this.issues = issues;
  }
}

export function parseApiEnv(source: Record<string, string | undefined>): ApiConfig {
  const edge = EdgeEnv.safeParse(source);
  const node = NodeOnly.safeParse(source);
  if (!edge.success || !node.success) {
    const issues = [...(edge.error?.issues ?? []), ...(node.error?.issues ?? [])];
    throw new ApiEnvError(issues.map((i) => `${i.path.join(".") || "(env)"}: ${i.message}`));
  }
  return {
    apiKeyHashes: edge.data.API_KEY_HASHES,
    jwt: edge.data.jwt,
    stripeWebhookSecrets: edge.data.STRIPE_WEBHOOK_SECRET,
    rateLimits: edge.data.RATE_LIMITS,
    corsOrigins: edge.data.CORS_ORIGINS,
    queuePrefix: edge.data.QUEUE_PREFIX,
    redis: edge.data.redis,
    wake: edge.data.wake,
    redisCaCertPath: node.data.REDIS_CA_CERT,
    redisConnectTimeoutMs: edge.data.REDIS_CONNECT_TIMEOUT_MS,
    redisCommandTimeoutMs: edge.data.REDIS_COMMAND_TIMEOUT_MS,
    port: node.data.PORT,
    shutdownTimeoutMs: node.data.SHUTDOWN_TIMEOUT_MS,
  };
}
