import { createMiddleware } from "hono/factory";
import { ApiError } from "./errors.ts";

const encoder = new TextEncoder();

/** Lower-case hex SHA-256 of a key: the only form in which the edge knows valid API keys. */
export async function sha256Hex(value: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(value));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Compares equal-length strings without an early exit, so timing reveals nothing about a match. */
function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * `Authorization: Bearer <key>` against a list of SHA-256 hex digests. Every digest is compared
 * (no early return) so the position of a matching key is not observable either.
 */
export function apiKeyAuth(keyHashes: readonly string[]) {
  return createMiddleware(async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S{1,512})\s*$/i.exec(header);
    if (!match?.[1]) {
      throw new ApiError("unauthorized", "missing or malformed Authorization: Bearer <key> header", {
        field: "Authorization",
        headers: { "WWW-Authenticate": 'Bearer realm="edgefleet"' },
      });
    }
    const digest = await sha256Hex(match[1]);
    let ok = false;
    for (const hash of keyHashes) ok = constantTimeEqual(digest, hash) || ok;
    if (!ok) {
      throw new ApiError("unauthorized", "invalid API key", {
        field: "Authorization",
        headers: { "WWW-Authenticate": 'Bearer realm="edgefleet", error="invalid_token"' },
      });
    }
    await next();
  });
}
