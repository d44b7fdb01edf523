import { createMiddleware } from "hono/factory";
import type { Actor } from "../shared/jobs/audit.ts";
import { verifyUser, type JwtVerifier } from "./auth/jwt.ts";
import { grants, scopeFor } from "./auth/scopes.ts";
import { ApiError } from "./errors.ts";

const encoder = new TextEncoder();

/** A service API key as configured: its digest, and its scopes (`undefined` = every scope). */
export interface ApiKey {
  digest: string;
  scopes?: readonly string[] | undefined;
}

/** Who is calling, as authenticated; put on the context for routes that stamp it onto jobs. */
export interface Caller {
  actor: Actor;
  /** `"all"`: an API key configured without scopes (full access, as before scopes existed). */
  scopes: ReadonlySet<string> | "all";
  /** End users only: the token's account claim; their events are pinned to it. */
  accountId?: string | undefined;
}

declare module "hono" {
  interface ContextVariableMap {
    caller: Caller;
  }
}

/** How many hex digits of a key's digest name it in audit rows and logs: enough to tell keys apart. */
export const KEY_ID_LENGTH = 12;

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

const REALM = 'Bearer realm="edgefleet"';
// Three base64url segments; an unsigned (`alg: none`) token has an empty third one.
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/;

export interface AuthOptions {
  /** Digests (full access) or digests with scopes. */
  apiKeys: readonly (string | ApiKey)[];
  /** End-user tokens; absent = only API keys are accepted. */
  jwt?: JwtVerifier | undefined;
}

/**
 * `Authorization: Bearer <credential>`: an API key (its digest matches one configured) or, when
 * configured, an end-user JWT. Every digest is compared (no early return), so neither a match nor
 * its position is observable. A token that is neither answers 401 with a WWW-Authenticate header.
 */
export function authenticate(options: AuthOptions) {
  const keys = options.apiKeys.map((k): ApiKey => (typeof k === "string" ? { digest: k } : k));
  /**
   * Credentials already proven valid → their caller, so a key's SHA-256 is computed once per
   * isolate instead of once per request. Only matches go in, and a match is one of the configured
   * digests, so the map never holds more entries than `keys` (junk credentials cannot grow it).
   * It lives as long as this app, i.e. one isolate's bindings: changing API_KEY_HASHES builds a
   * new app and drops it. A hit is a Map lookup on the whole credential; it reveals only what the
   * answer reveals anyway (this credential is valid), never how close another one is.
   */
  const known = new Map<string, Caller>();
  return createMiddleware(async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S{1,8192})\s*$/i.exec(header);
    if (!match?.[1]) {
      throw new ApiError("unauthorized", "missing or malformed Authorization: Bearer <credential> header", {
        field: "Authorization",
        headers: { "WWW-Authenticate": REALM },
      });
    }
    const credential = match[1];
    const cached = known.get(credential);
    if (cached) {
      c.set("caller", cached);
      return next();
    }
    const digest = await sha256Hex(credential);
    let found: ApiKey | undefined;
    for (const key of keys) if (constantTimeEqual(digest, key.digest) && !found) found = key;
    if (found) {
      // Shared by every request with this key: frozen, so no route can change it for the others.
      const caller: Caller = Object.freeze({
        actor: Object.freeze({ type: "api_key", id: digest.slice(0, KEY_ID_LENGTH) } as const),
        scopes: found.scopes ? new Set(found.scopes) : "all",
      });
      known.set(credential, caller);
      c.set("caller", caller);
    } else if (options.jwt && JWT_SHAPE.test(credential)) {
      const user = await verifyUser(options.jwt, credential);
      c.set("caller", { actor: { type: "user", id: user.sub }, scopes: user.scopes, accountId: user.accountId });
    } else {
      throw new ApiError("unauthorized", options.jwt ? "invalid API key or token" : "invalid API key", {
        field: "Authorization",
        headers: { "WWW-Authenticate": `${REALM}, error="invalid_token"` },
      });
    }
    await next();
  });
}

export function hasScope(caller: Caller, scope: string): boolean {
  return caller.scopes === "all" || grants(caller.scopes, scope);
}

/** 403 before the body is read when the caller lacks the route's scope (edge/auth/scopes.ts). */
export function authorize() {
  return createMiddleware(async (c, next) => {
    const scope = scopeFor(c.req.method, c.req.path);
    if (scope && !hasScope(c.var.caller, scope)) throw forbidden(scope);
    await next();
  });
}

export function forbidden(scope: string, field?: string): ApiError {
  return new ApiError("forbidden", `this credential lacks the scope "${scope}"`, {
    ...(field ? { field } : {}),
    details: { scope },
    // The scope can come from the path: only a plain one goes into a header.
    headers: { "WWW-Authenticate": `${REALM}, error="insufficient_scope"${/^[\w:.*-]{1,200}$/.test(scope) ? `, scope="${scope}"` : ""}` },
  });
}

/**
 * Stamps the caller onto an event (server-owned `actor`) and pins an end user's events to the
 * account in their token: `accountId` defaults to it, and naming another is refused unless the token
 * holds `events:write:any-account`. API keys are services: they may name any account.
 */
export function stampEvent<E extends { accountId?: string | undefined }>(caller: Caller, event: E, field: string): E & { actor: Actor } {
  if (caller.actor.type !== "user" || hasScope(caller, "events:write:any-account")) return { ...event, actor: caller.actor };
  if (!caller.accountId) {
    throw new ApiError("forbidden", "this token names no account, so it cannot write events", {
      field,
      details: { scope: "events:write:any-account" },
    });
  }
  if (event.accountId !== undefined && event.accountId !== caller.accountId) {
    throw new ApiError("forbidden", `${field}: this token may only write events for its own account`, {
      field,
      details: { scope: "events:write:any-account" },
    });
  }
  return { ...event, accountId: caller.accountId, actor: caller.actor };
}
