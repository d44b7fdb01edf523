import { z } from "zod";
import { DEFAULT_QUEUE_PREFIX, QUEUE_PREFIX_PATTERN } from "../shared/jobs/contract.ts";

const sha256Hex = /^[0-9a-f]{64}$/;

/**
 * The edge's configuration, parsed once per isolate from the Worker's bindings. The edge holds
 * only what enqueueing and authentication need: a Redis URL, API-key digests and Stripe's webhook
 * signing secrets — no database credentials, no provider API keys.
 */
export const EdgeEnv = z.object({
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: "must be a redis:// or rediss:// URL" }),
  API_KEY_HASHES: z
    .string()
    .transform((value) => value.split(",").map((h) => h.trim().toLowerCase()).filter(Boolean))
    .pipe(z.array(z.string().regex(sha256Hex, "each entry must be a SHA-256 hex digest")).min(1)),
  QUEUE_PREFIX: z.string().regex(QUEUE_PREFIX_PATTERN, "1–64 of A-Z a-z 0-9 _ . -").default(DEFAULT_QUEUE_PREFIX),
  REDIS_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(2000),
  REDIS_COMMAND_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(3000),
  /**
   * Stripe webhook signing secrets, comma-separated (several while rolling one). Optional: unset,
   * `POST /webhooks/stripe` answers 503 and enqueues nothing.
   */
  STRIPE_WEBHOOK_SECRET: z
    .string()
    .optional()
    .transform((value) => (value ?? "").split(",").map((s) => s.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^whsec_\S+$/, "each entry must be a whsec_… signing secret"))),
});
export type EdgeEnv = z.infer<typeof EdgeEnv>;

export class ConfigError extends Error {
  constructor(issues: string[]) {
    super(`invalid edge configuration:\n  ${issues.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

/** Parses bindings, listing every problem at once. Values are never echoed (they may be secrets). */
export function parseEdgeEnv(bindings: Record<string, unknown>): EdgeEnv {
  const result = EdgeEnv.safeParse(bindings);
  if (result.success) return result.data;
  throw new ConfigError(result.error.issues.map((i) => `${i.path.join(".") || "env"}: ${i.message}`));
}
