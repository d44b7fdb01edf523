/**
 * Response hardening and request checks that do not depend on who is calling: CORS from an
 * allow-list, security headers fit for a JSON API, and 415 for a body that does not claim JSON.
 */
import { cors } from "hono/cors";
import { createMiddleware } from "hono/factory";
import { secureHeaders } from "hono/secure-headers";
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
 * Hono's secure headers, tightened for an API whose responses are JSON, never pages: nothing may
 * load or frame them. A handler's own header wins (`overwrite: false`), so /docs keeps the CSP it
 * needs for its reference page. `Cache-Control: no-store` keeps job data out of shared caches.
 */
export function apiSecureHeaders() {
  const headers = secureHeaders({
    contentSecurityPolicy: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
    xFrameOptions: "DENY",
    strictTransportSecurity: "max-age=31536000; includeSubDomains",
    overwrite: false,
  });
  return createMiddleware(async (c, next) => {
    await headers(c, next);
    if (!c.res.headers.has("Cache-Control")) c.res.headers.set("Cache-Control", "no-store");
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
