import { z } from "zod";
import { DEFAULT_QUEUE_PREFIX, QUEUE_PREFIX_PATTERN } from "../shared/jobs/contract.ts";

const sha256Hex = /^[0-9a-f]{64}$/;

/**
 * The edge's configuration, parsed once per isolate from the Worker's bindings. The edge holds
 * only what enqueueing and authentication need: a Redis URL, API-key digests and Stripe's webhook
 * signing secrets — no database credentials, no provider API keys.
 */
export const EdgeEnv = z.object({
  /** RESP over cloudflare:sockets (rediss:// = TLS). Exactly one of this or the Upstash pair. */
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: "must be a redis:// or rediss:// URL" }).optional(),
  /** Upstash REST over fetch; https:// (http:// only for a local stand-in), with its token. */
  UPSTASH_REDIS_REST_URL: z.url({ protocol: /^https?$/, error: "must be an https:// URL" }).optional(),
  UPSTASH_REDIS_REST_TOKEN: z.string().min(1).optional(),
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
  // `when`: report a missing Redis together with every other problem, not only once the rest parsed.
}).superRefine(checkRedisChoice, { when: () => true }).transform(({ REDIS_URL, UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN, ...rest }) => {
  const redis: RedisTarget = UPSTASH_REDIS_REST_URL && UPSTASH_REDIS_REST_TOKEN
    ? { transport: "upstash", url: UPSTASH_REDIS_REST_URL, token: UPSTASH_REDIS_REST_TOKEN }
    : { transport: "socket", url: REDIS_URL ?? "" };
  return { ...rest, redis };
});
export type EdgeEnv = z.output<typeof EdgeEnv>;

/** Which transport reaches Redis; chosen by configuration alone, same routes either way. */
export type RedisTarget =
  | { transport: "socket"; url: string }
  | { transport: "upstash"; url: string; token: string };

function checkRedisChoice(
  env: { REDIS_URL?: string | undefined; UPSTASH_REDIS_REST_URL?: string | undefined; UPSTASH_REDIS_REST_TOKEN?: string | undefined },
  ctx: z.RefinementCtx,
): void {
  // Runs on partially invalid input too (see `when`), so only strings count as set.
  const text = (value: unknown) => (typeof value === "string" && value ? value : undefined);
  const socket = text(env.REDIS_URL);
  const restUrl = text(env.UPSTASH_REDIS_REST_URL);
  const token = text(env.UPSTASH_REDIS_REST_TOKEN);
  const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
  if (socket && (restUrl || token)) {
    issue("REDIS_URL", "set either REDIS_URL or UPSTASH_REDIS_REST_URL + UPSTASH_REDIS_REST_TOKEN, not both");
  } else if (!socket && !restUrl && !token) {
    issue("REDIS_URL", "required (or UPSTASH_REDIS_REST_URL + UPSTASH_REDIS_REST_TOKEN)");
  }
  if (restUrl && !token) issue("UPSTASH_REDIS_REST_TOKEN", "required with UPSTASH_REDIS_REST_URL");
  if (token && !restUrl && !socket) issue("UPSTASH_REDIS_REST_URL", "required with UPSTASH_REDIS_REST_TOKEN");
  // The bearer token must not cross the network in clear text; plain http only on this machine.
  if (restUrl?.startsWith("http:") && !/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(restUrl)) {
    issue("UPSTASH_REDIS_REST_URL", "must be https:// (http:// only for localhost)");
  }
}

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
