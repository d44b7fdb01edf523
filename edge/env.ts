import { z } from "zod";
import { DEFAULT_QUEUE_PREFIX, QUEUE_PREFIX_PATTERN } from "../shared/jobs/contract.ts";
import type { ApiKey } from "./auth.ts";
import type { JwtSettings } from "./auth/jwt.ts";
import { scopeProblem } from "./auth/scopes.ts";
import { RateLimitsEnv } from "./rate-limit.ts";
import type { WakeTarget } from "./wake.ts";

const sha256Hex = /^[0-9a-f]{64}$/;
const commaList = z.string().transform((value) => value.split(",").map((s) => s.trim()).filter(Boolean));

function parseApiKey(entry: string, ctx: z.RefinementCtx): ApiKey {
  const [first = "", ...scopes] = entry.split(/\s+/);
  const digest = first.toLowerCase();
  if (!sha256Hex.test(digest)) ctx.addIssue({ code: "custom", message: "each entry must start with a SHA-256 hex digest" });
  for (const scope of scopes) {
    const problem = scopeProblem(scope);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }
  return scopes.length > 0 ? { digest, scopes } : { digest };
}

const ASYMMETRIC = new Set(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"]);

/** The token settings go together, and the algorithms must fit the key source (never `none`). */
function checkJwt(
  env: { JWT_JWKS_URL?: string | undefined; JWT_HS256_SECRET?: string | undefined; JWT_ISSUER?: string | undefined; JWT_AUDIENCE?: string[] | undefined; JWT_ALGORITHMS?: string[] | undefined },
  ctx: z.RefinementCtx,
): void {
  const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
  const jwks = env.JWT_JWKS_URL;
  const secret = env.JWT_HS256_SECRET;
  if (jwks && secret) issue("JWT_JWKS_URL", "set either JWT_JWKS_URL or JWT_HS256_SECRET, not both");
  if (!jwks && !secret) {
    for (const name of ["JWT_ISSUER", "JWT_AUDIENCE", "JWT_ALGORITHMS"] as const) {
      if (env[name] !== undefined) issue(name, "needs JWT_JWKS_URL or JWT_HS256_SECRET");
    }
    return;
  }
  if (!env.JWT_ISSUER) issue("JWT_ISSUER", "required with JWT_JWKS_URL / JWT_HS256_SECRET");
  if (!env.JWT_AUDIENCE?.length) issue("JWT_AUDIENCE", "required with JWT_JWKS_URL / JWT_HS256_SECRET");
  if (jwks?.startsWith("http:") && !/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(jwks)) {
    issue("JWT_JWKS_URL", "must be https:// (http:// only for localhost)");
  }
  for (const alg of env.JWT_ALGORITHMS ?? []) {
    const fits = secret ? alg === "HS256" : ASYMMETRIC.has(alg);
    if (!fits) issue("JWT_ALGORITHMS", `"${alg}" does not fit ${secret ? "an HS256 secret (use HS256)" : `a JWKS (use ${[...ASYMMETRIC].join(", ")})`}`);
  }
}

/**
 * The edge's configuration, parsed once per isolate from the Worker's bindings. The edge holds
 * only what enqueueing and authentication need: a Redis URL, API-key digests, end-user token
 * settings and Stripe's webhook signing secrets — no database credentials, no provider API keys.
 */
export const EdgeEnv = z.object({
  /** RESP over cloudflare:sockets (rediss:// = TLS). Exactly one of this or the Upstash pair. */
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: "must be a redis:// or rediss:// URL" }).optional(),
  /** Upstash REST over fetch; https:// (http:// only for a local stand-in), with its token. */
  UPSTASH_REDIS_REST_URL: z.url({ protocol: /^https?$/, error: "must be an https:// URL" }).optional(),
  UPSTASH_REDIS_REST_TOKEN: z.string().min(1).optional(),
  /**
   * API keys by SHA-256 hex digest, entries separated by commas or newlines. An entry is a digest,
   * optionally followed by its scopes separated by spaces: `<digest> events:write jobs:read`. A
   * digest alone keeps full access (as before scopes existed).
   */
  API_KEY_HASHES: z
    .string()
    .transform((value) => value.split(/[,\n]/).map((entry) => entry.trim()).filter(Boolean))
    .pipe(z.array(z.string().transform(parseApiKey)).min(1, "at least one key digest")),
  /** End-user JWTs: a JWKS URL or an HS256 secret (not both); unset = API keys only. */
  JWT_JWKS_URL: z.url({ protocol: /^https?$/, error: "must be an https:// URL" }).optional(),
  JWT_HS256_SECRET: z.string().min(32, "at least 32 characters (256 bits)").optional(),
  JWT_ISSUER: z.string().min(1).optional(),
  JWT_AUDIENCE: commaList.optional(),
  /** Accepted `alg` values; default RS256,ES256 with a JWKS, HS256 with a secret. */
  JWT_ALGORITHMS: commaList.optional(),
  JWT_CLOCK_SKEW_SECONDS: z.coerce.number().int().min(0).max(300).default(30),
  JWT_ACCOUNT_CLAIM: z.string().regex(/^[\w.:/-]{1,100}$/, "a claim name").default("account_id"),
  QUEUE_PREFIX: z.string().regex(QUEUE_PREFIX_PATTERN, "1–64 of A-Z a-z 0-9 _ . -").default(DEFAULT_QUEUE_PREFIX),
  REDIS_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(2000),
  REDIS_COMMAND_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(3000),
  /**
   * How REDIS_URL is reached: `socket` = a fresh connection per request; `durable-object` = through
   * the RedisConnection objects (binding REDIS_CONNECTION), which hold their connection across
   * requests (edge/queue/durable-object-transport.ts). Spread over REDIS_DO_SHARDS objects, created
   * near REDIS_DO_LOCATION_HINT (a Durable Object location hint such as `enam`, `weur`).
   */
  REDIS_TRANSPORT: z.enum(["socket", "durable-object"]).default("socket"),
  REDIS_DO_SHARDS: z.coerce.number().int().min(1).max(256).default(1),
  REDIS_DO_LOCATION_HINT: z.enum(["wnam", "enam", "sam", "weur", "eeur", "apac", "apac-ne", "apac-se", "oc", "afr", "me"]).optional(),
  /**
   * Stripe webhook signing secrets, comma-separated (several while rolling one). Optional: unset,
   * `POST /webhooks/stripe` answers 503 and enqueues nothing.
   */
  STRIPE_WEBHOOK_SECRET: z
    .string()
    .optional()
    .transform((value) => (value ?? "").split(",").map((s) => s.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^whsec_\S+$/, "each entry must be a whsec_… signing secret"))),
  /** Per caller and route (edge/rate-limit.ts): unset = the documented defaults, `off` = none. */
  RATE_LIMITS: RateLimitsEnv,
  /** Browser origins allowed by CORS, comma-separated (`*` = any); unset = no CORS headers. */
  CORS_ORIGINS: commaList
    .pipe(z.array(z.string().regex(/^(\*|https?:\/\/[\w.-]+(:\d{1,5})?)$/, "each entry must be an origin (scheme://host[:port]) or *")))
    .optional(),
  /**
   * The autoscaler's wake endpoint (edge/wake.ts) and its bearer token, both or neither: after an
   * accepted enqueue the edge wakes a fleet scaled to zero. Unset = no wake call (a fleet that never
   * scales to zero). https:// (http:// only for localhost), since the token travels with it.
   */
  AUTOSCALER_WAKE_URL: z.url({ protocol: /^https?$/, error: "must be an https:// URL" }).optional(),
  AUTOSCALER_WAKE_TOKEN: z.string().min(16, "at least 16 characters").optional(),
  // `when`: report a missing Redis together with every other problem, not only once the rest parsed.
}).superRefine(checkRedisChoice, { when: () => true }).superRefine(checkJwt).superRefine(checkWake).transform(({ REDIS_URL, UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN, AUTOSCALER_WAKE_URL, AUTOSCALER_WAKE_TOKEN, ...rest }) => {
  const redis: RedisTarget = UPSTASH_REDIS_REST_URL && UPSTASH_REDIS_REST_TOKEN
    ? { transport: "upstash", url: UPSTASH_REDIS_REST_URL, token: UPSTASH_REDIS_REST_TOKEN }
    : { transport: "socket", url: REDIS_URL ?? "" };
  const { JWT_JWKS_URL, JWT_HS256_SECRET, JWT_ISSUER, JWT_AUDIENCE, JWT_ALGORITHMS, JWT_CLOCK_SKEW_SECONDS, JWT_ACCOUNT_CLAIM, ...others } = rest;
  const keys: JwtSettings["keys"] | undefined = JWT_JWKS_URL
    ? { kind: "jwks", url: JWT_JWKS_URL }
    : JWT_HS256_SECRET ? { kind: "secret", secret: JWT_HS256_SECRET } : undefined;
  const jwt: JwtSettings | undefined = keys && {
    keys,
    issuer: JWT_ISSUER ?? "",
    audience: JWT_AUDIENCE ?? [],
    algorithms: JWT_ALGORITHMS ?? (keys.kind === "jwks" ? ["RS256", "ES256"] : ["HS256"]),
    clockSkewSeconds: JWT_CLOCK_SKEW_SECONDS,
    accountClaim: JWT_ACCOUNT_CLAIM,
  };
  const wake: WakeTarget | undefined = AUTOSCALER_WAKE_URL && AUTOSCALER_WAKE_TOKEN ? { url: AUTOSCALER_WAKE_URL, token: AUTOSCALER_WAKE_TOKEN } : undefined;
  return { ...others, redis, jwt, wake };
});
export type EdgeEnv = z.output<typeof EdgeEnv>;

/** Which transport reaches Redis; chosen by configuration alone, same routes either way. */
export type RedisTarget =
  | { transport: "socket"; url: string }
  | { transport: "upstash"; url: string; token: string };

function checkRedisChoice(
  env: { REDIS_URL?: string | undefined; UPSTASH_REDIS_REST_URL?: string | undefined; UPSTASH_REDIS_REST_TOKEN?: string | undefined; REDIS_TRANSPORT?: string | undefined },
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
  if (restUrl && env.REDIS_TRANSPORT === "durable-object") issue("REDIS_TRANSPORT", "durable-object needs REDIS_URL, not Upstash REST");
  if (restUrl && !token) issue("UPSTASH_REDIS_REST_TOKEN", "required with UPSTASH_REDIS_REST_URL");
  if (token && !restUrl && !socket) issue("UPSTASH_REDIS_REST_URL", "required with UPSTASH_REDIS_REST_TOKEN");
  // The bearer token must not cross the network in clear text; plain http only on this machine.
  if (restUrl?.startsWith("http:") && !/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(restUrl)) {
    issue("UPSTASH_REDIS_REST_URL", "must be https:// (http:// only for localhost)");
  }
}

function checkWake(env: { AUTOSCALER_WAKE_URL?: string | undefined; AUTOSCALER_WAKE_TOKEN?: string | undefined }, ctx: z.RefinementCtx): void {
  const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
  if (env.AUTOSCALER_WAKE_URL && !env.AUTOSCALER_WAKE_TOKEN) issue("AUTOSCALER_WAKE_TOKEN", "required with AUTOSCALER_WAKE_URL");
  if (env.AUTOSCALER_WAKE_TOKEN && !env.AUTOSCALER_WAKE_URL) issue("AUTOSCALER_WAKE_URL", "required with AUTOSCALER_WAKE_TOKEN");
  if (env.AUTOSCALER_WAKE_URL?.startsWith("http:") && !/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(env.AUTOSCALER_WAKE_URL)) {
    issue("AUTOSCALER_WAKE_URL", "must be https:// (http:// only for localhost)");
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
