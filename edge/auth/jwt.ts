import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from "jose";
import { ApiError } from "../errors.ts";

/** End-user token settings as configured (edge/env.ts); nothing here is ever read from a token. */
export interface JwtSettings {
  keys: { kind: "jwks"; url: string } | { kind: "secret"; secret: string };
  issuer: string;
  audience: readonly string[];
  algorithms: readonly string[];
  clockSkewSeconds: number;
  /** The claim holding the caller's account id, enforced onto events' `accountId`. */
  accountClaim: string;
}

/** What the app verifies tokens with: the settings plus a ready key (a JWKS getter or HS256 bytes). */
export interface JwtVerifier extends Omit<JwtSettings, "keys"> {
  key: JWTVerifyGetKey | Uint8Array;
}

export interface VerifiedUser {
  sub: string;
  scopes: ReadonlySet<string>;
  accountId: string | undefined;
}

/**
 * Builds the verifier once per isolate/process: jose's remote JWKS keeps fetched keys in memory
 * (re-fetched after 10 min, or on an unknown `kid` at most every 30 s), so a warm isolate verifies
 * without a network call.
 */
export function createJwtVerifier(settings: JwtSettings): JwtVerifier {
  const { keys, ...rest } = settings;
  const key = keys.kind === "jwks"
    ? createRemoteJWKSet(new URL(keys.url), { timeoutDuration: 3000 })
    : new TextEncoder().encode(keys.secret);
  return { ...rest, key };
}

const bearer = (description: string) => ({
  "WWW-Authenticate": `Bearer realm="edgefleet", error="invalid_token", error_description="${description}"`,
});

function invalid(description: string): ApiError {
  return new ApiError("unauthorized", `invalid token: ${description}`, { field: "Authorization", headers: bearer(description) });
}

/** Token faults a caller must fix (401); anything else is the key source failing (503, retry). */
function classify(err: unknown): ApiError {
  if (err instanceof errors.JWTExpired) return invalid("token expired");
  if (err instanceof errors.JWTClaimValidationFailed) return invalid(`claim "${err.claim}" rejected`);
  if (err instanceof errors.JOSEAlgNotAllowed) return invalid("algorithm not allowed");
  if (err instanceof errors.JWSSignatureVerificationFailed) return invalid("signature verification failed");
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return invalid("no matching key");
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid || err instanceof errors.JOSENotSupported) {
    return invalid("malformed token");
  }
  if (err instanceof errors.JWKInvalid) return invalid("unusable key");
  return new ApiError("auth_unavailable", "token keys are unavailable; retry later", {
    headers: { "Retry-After": "5" },
    cause: err,
  });
}

/** Verifies signature, algorithm, issuer, audience, expiry (required) and `sub` (required). */
export async function verifyUser(verifier: JwtVerifier, token: string): Promise<VerifiedUser> {
  let payload: JWTPayload;
  try {
    const options = {
      algorithms: [...verifier.algorithms],
      issuer: verifier.issuer,
      audience: [...verifier.audience],
      clockTolerance: verifier.clockSkewSeconds,
      requiredClaims: ["exp", "sub"],
    };
    // Two calls rather than a union argument: jose overloads on the key's type.
    payload = verifier.key instanceof Uint8Array
      ? (await jwtVerify(token, verifier.key, options)).payload
      : (await jwtVerify(token, verifier.key, options)).payload;
  } catch (err) {
    throw classify(err);
  }
  if (typeof payload.sub !== "string" || payload.sub === "" || payload.sub.length > 255) throw invalid('claim "sub" rejected');
  const account = payload[verifier.accountClaim];
  return {
    sub: payload.sub,
    scopes: tokenScopes(payload),
    accountId: typeof account === "string" && account !== "" ? account : undefined,
  };
}

/** OAuth's space-separated `scope` (RFC 8693), else `scp` as a list or a string (Azure AD, Okta). */
function tokenScopes(payload: JWTPayload): ReadonlySet<string> {
  const raw = payload.scope ?? payload.scp;
  const list = typeof raw === "string" ? raw.split(" ") : Array.isArray(raw) ? raw.filter((s) => typeof s === "string") : [];
  return new Set(list.filter(Boolean));
}
