/**
 * Response hardening and request checks that do not depend on who is calling: CORS from an
 * allow-list, security headers fit for a JSON API, and 415 for a body that does not claim JSON.
 */
import { cors } from "hono/cors";
import { createMiddleware } from "hono/factory";
import { ApiError } from "./errors.ts";

/**
 * CORS for the configured origins only; every other origin (and every request when the list is
 * empty) gets no CORS header at all and goes on to the route as usual — a preflight from it then
 * fails at the credentials check, which a browser reads as "not allowed".
 *
 * Credentials mode stays off: callers authenticate with `Authorization: Bearer`, which a browser
 * sends under plain CORS; cookies would only add CSRF risk. So `*` (any origin) is accepted in the
 * list, and can never be combined with credentials.
 */
export function corsAllowList(origins: readonly string[]) {
  const any = origins.includes("*");
  const allowed = new Set(origins);
  const handler = cors({
    // Only reached for an admitted origin (the gate below): echo it, or `*` for any.
    origin: (origin) => (any ? "*" : origin),
    allowMethods: ["GET", "POST", "DELETE"],
    allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key"],
    // Headers a browser script may read; the rest of the safelist is implicit.
    exposeHeaders: ["X-Request-Id", "Retry-After", "RateLimit", "RateLimit-Policy"],
    maxAge: 600,
    credentials: false,
  });
  return createMiddleware(async (c, next) => {
    const origin = c.req.header("origin");
    if (origins.length === 0 || !origin || !(any || allowed.has(origin))) return next();
    return handler(c, next);
  });
}

/**
 * The headers every response carries: Hono's secure-headers defaults, tightened for an API whose
 * responses are JSON, never pages (nothing may load or frame them), and `Cache-Control: no-store`
 * to keep job data out of shared caches. protection.test.ts checks this list against what Hono's
 * `secureHeaders` middleware sends with these options, so a change in Hono's defaults shows up.
 */
export const API_RESPONSE_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ["Cross-Origin-Resource-Policy", "same-origin"],
  ["Cross-Origin-Opener-Policy", "same-origin"],
  ["Origin-Agent-Cluster", "?1"],
  ["Referrer-Policy", "no-referrer"],
  ["Strict-Transport-Security", "max-age=31536000; includeSubDomains"],
  ["X-Content-Type-Options", "nosniff"],
  ["X-DNS-Prefetch-Control", "off"],
  ["X-Download-Options", "noopen"],
  ["X-Frame-Options", "DENY"],
  ["X-Permitted-Cross-Domain-Policies", "none"],
  ["X-XSS-Protection", "0"],
  ["Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"],
  ["Cache-Control", "no-store"],
];

/**
 * Sets API_RESPONSE_HEADERS before the route runs, so `c.json` builds the response with them in
 * one go and a handler's own header wins (/docs keeps the CSP its page needs). Hono's
 * `secureHeaders` instead checks and sets each one on the finished response (~29 Headers calls
 * per request); this was measured as one of the larger steps of an enqueue (tools/bench/edge-cpu.ts).
 * A route that returns a Response of its own skips the prepared headers: those get the missing ones after.
 */
export function apiSecureHeaders() {
  return createMiddleware(async (c, next) => {
    for (const [name, value] of API_RESPONSE_HEADERS) c.header(name, value);
    await next();
    const headers = c.res.headers;
    if (headers.has("X-Content-Type-Options")) return;
    for (const [name, value] of API_RESPONSE_HEADERS) if (!headers.has(name)) headers.set(name, value);
  });
}

/**
 * 415 unless a request with a body says `Content-Type: application/json` (parameters such as
 * `; charset=utf-8`, which Stripe sends, are fine). Checked before the body is read.
 */
export function requireJson() {
  return createMiddleware(async (c, next) => {
    if (c.req.method === "POST" || c.req.method === "PUT" || c.req.method === "PATCH") {
      const type = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
      if (type !== "application/json") {
        throw new ApiError("unsupported_media_type", "Content-Type must be application/json", { field: "Content-Type" });
      }
    }
    await next();
  });
}
