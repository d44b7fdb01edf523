/**
 * Rate limits per caller and route, counted in Redis in the same round trip as the work itself
 * (queue/limiter.ts). This file decides *which* counter and limit a request gets, and answers with
 * the IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-11):
 *   RateLimit-Policy: "events";q=1000;w=60     RateLimit: "events";r=998;t=41
 *
 * Fixed windows, aligned to the clock: one INCR per request (plus one PEXPIRE per window), the
 * reset time follows from the clock without asking Redis, and Upstash bills the fewest commands.
 * The known cost is a burst of up to 2× the limit across a window boundary; for protecting a
 * queue (not metering) that is acceptable. A sliding log or GCRA would smooth it at the price of
 * more commands per request (a sorted set per caller) or of headers that need another read.
 */
import { createMiddleware } from "hono/factory";
import { z } from "zod";
import { sha256Hex, type Caller } from "./auth.ts";
import { ApiError } from "./errors.ts";
import type { LimitCheck } from "./queue/limiter.ts";

/** The routes that carry a limit; GET /v1/health and the Stripe webhook do not. */
export const RATE_LIMITED_ROUTES = ["events", "emails", "jobs.write", "jobs.read"] as const;
export type RateLimitedRoute = (typeof RATE_LIMITED_ROUTES)[number];

export interface RateLimitPolicy {
  /** Requests per window (q). */
  limit: number;
  /** Window length in whole seconds (w). */
  windowSeconds: number;
}

/** Per caller (API key or end user) and route; `jobs.*` count each queue separately. */
export const DEFAULT_RATE_LIMITS: Readonly<Record<RateLimitedRoute, RateLimitPolicy>> = {
  events: { limit: 1000, windowSeconds: 60 },
  emails: { limit: 100, windowSeconds: 60 },
  "jobs.write": { limit: 600, windowSeconds: 60 },
  "jobs.read": { limit: 1200, windowSeconds: 60 },
};

export interface RateLimitConfig {
  routes: Partial<Record<RateLimitedRoute, RateLimitPolicy>>;
  /** Clock (epoch ms) for the windows; injectable so tests move time instead of sleeping. */
  now?: () => number;
}

const UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const;
const ENTRY = /^([a-z.]+)=(?:(off)|(\d{1,9})\/(\d{1,5})([smh]))$/;

/**
 * `RATE_LIMITS`: unset = the defaults; `off` = no limits; otherwise comma-separated overrides of
 * the defaults, `<route>=<limit>/<window>` or `<route>=off`, e.g. `emails=20/1m,jobs.read=off`.
 */
export const RateLimitsEnv = z
  .string()
  .optional()
  .transform((text, ctx): RateLimitConfig | undefined => {
    const value = (text ?? "").trim();
    if (value === "off") return undefined;
    const routes: RateLimitConfig["routes"] = { ...DEFAULT_RATE_LIMITS };
    for (const entry of value.split(",").map((s) => s.trim()).filter(Boolean)) {
      const m = ENTRY.exec(entry);
      const route = RATE_LIMITED_ROUTES.find((r) => r === m?.[1]);
      if (!m || !route) {
        ctx.addIssue({ code: "custom", message: `"${entry.slice(0, 40)}": expected <route>=<limit>/<n>(s|m|h) or <route>=off; routes: ${RATE_LIMITED_ROUTES.join(", ")}` });
        continue;
      }
      const windowSeconds = Number(m[4]) * UNIT_SECONDS[m[5] as keyof typeof UNIT_SECONDS];
      if (m[2]) delete routes[route];
      else if (Number(m[3]) < 1 || windowSeconds < 1 || windowSeconds > 86_400) {
        ctx.addIssue({ code: "custom", message: `"${entry}": limit ≥ 1 and a window of 1 s to 24 h` });
      } else routes[route] = { limit: Number(m[3]), windowSeconds };
    }
    return { routes };
  });

/** Which limited route a request is, and the queue for `jobs.*` (each queue counts on its own). */
function classify(method: string, path: string): { route: RateLimitedRoute; scope: string } | undefined {
  if (method === "POST" && /^\/v1\/events\/?$/.test(path)) return { route: "events", scope: "" };
  if (method === "POST" && /^\/v1\/emails\/?$/.test(path)) return { route: "emails", scope: "" };
  const job = /^\/v1\/jobs\/([\w.-]{1,64})(\/[^/]+)?\/?$/.exec(path);
  if (!job) return undefined;
  const queue = job[1] ?? "";
  if (method === "POST" && !job[2]) return { route: "jobs.write", scope: queue };
  if (method === "DELETE" && job[2]) return { route: "jobs.write", scope: queue };
  if (method === "GET" && job[2]) return { route: "jobs.read", scope: queue };
  return undefined;
}

/**
 * Who is counted: the authenticated caller (this middleware runs after `authenticate`). An API key
 * is already named by a prefix of its digest; a user's subject is hashed, so Redis key names carry
 * neither a credential nor a user id.
 */
async function callerId(caller: Caller | undefined, users: Map<string, string>): Promise<string> {
  if (!caller) throw new Error("rate limits need an authenticated caller: mount rateLimit() after authenticate()");
  const { type, id } = caller.actor;
  if (type === "api_key") return `k${id}`;
  let name = users.get(id);
  if (name === undefined) {
    name = `u${(await sha256Hex(id)).slice(0, 16)}`;
    // Bounded: a flood of distinct subjects only costs their hashes again, never memory.
    if (users.size >= USER_IDS_CACHED) users.clear();
    users.set(id, name);
  }
  return name;
}

/** Hashed user subjects kept per isolate, so an active user's requests skip the SHA-256. */
const USER_IDS_CACHED = 1024;

export interface RateLimitVariables {
  /** The request's check; queue-middleware.ts hands it to the producer with the request's work. */
  rateLimit?: LimitCheck & { resetSeconds: number };
}

/**
 * Puts the request's check on the context (nothing is sent to Redis here) and, once the response
 * is built, adds the RateLimit fields when Redis counted the request. Runs after authentication.
 */
export function rateLimit(config: RateLimitConfig) {
  const now = config.now ?? Date.now;
  const users = new Map<string, string>();
  return createMiddleware<{ Variables: RateLimitVariables }>(async (c, next) => {
    const which = classify(c.req.method, c.req.path);
    const policy = which && config.routes[which.route];
    if (!which || !policy) return next();
    const windowMs = policy.windowSeconds * 1000;
    const at = now();
    const window = Math.floor(at / windowMs);
    const caller = await callerId(c.get("caller"), users);
    const check: NonNullable<RateLimitVariables["rateLimit"]> = {
      key: `${which.route}${which.scope ? `.${which.scope}` : ""}:${caller}:${window}`,
      nonce: crypto.randomUUID(),
      limit: policy.limit,
      // Slack beyond the window: isolates' clocks differ slightly, a late one must find the counter.
      ttlMs: windowMs + 5000,
      resetSeconds: Math.max(1, Math.ceil(((window + 1) * windowMs - at) / 1000)),
    };
    c.set("rateLimit", check);
    await next();
    if (check.count === undefined) return;
    const name = `"${which.route}"`;
    // On the finished response's own headers: `c.header` after the handler returns copies the
    // whole Response once per call. Every response here is built by the app (c.json, onError).
    const headers = c.res.headers;
    headers.set("RateLimit-Policy", `${name};q=${policy.limit};w=${policy.windowSeconds}`);
    headers.set("RateLimit", `${name};r=${Math.max(0, policy.limit - check.count)};t=${check.resetSeconds}`);
  });
}

/** 429 for a request the limiter refused; nothing of it was written. */
export function rateLimited(check: NonNullable<RateLimitVariables["rateLimit"]>): ApiError {
  return new ApiError("rate_limited", `rate limit of ${check.limit} requests per window reached; retry after ${check.resetSeconds} s`, {
    headers: { "Retry-After": String(check.resetSeconds) },
  });
}
