import { describe, expect, it } from "vitest";
import { ConfigError, parseEdgeEnv } from "../env.ts";

const A = "a".repeat(64);
const B = "b".repeat(64);
const base = { REDIS_URL: "redis://127.0.0.1:6379" };

function problems(bindings: Record<string, string>): string {
  try {
    parseEdgeEnv({ ...base, ...bindings });
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  return "";
}

describe("auth configuration", () => {
  it("reads digests alone (full access) and digests followed by their scopes", () => {
    const env = parseEdgeEnv({ ...base, API_KEY_HASHES: `${A.toUpperCase()}, ${B} events:write jobs:write:report\n${"c".repeat(64)} jobs:cancel:*` });
    expect(env.API_KEY_HASHES).toEqual([
      { digest: A },
      { digest: B, scopes: ["events:write", "jobs:write:report"] },
      { digest: "c".repeat(64), scopes: ["jobs:cancel:*"] },
    ]);
    expect(env.jwt).toBeUndefined();
  });

  it("refuses an unknown scope or queue, naming it", () => {
    expect(problems({ API_KEY_HASHES: `${A} event:write` })).toMatch(/API_KEY_HASHES.*unknown scope "event:write"/);
    expect(problems({ API_KEY_HASHES: `${A} jobs:write:nope` })).toMatch(/unknown queue in scope "jobs:write:nope"/);
  });

  it("builds HS256 settings with defaults, and JWKS settings with asymmetric defaults", () => {
    const secret = "s".repeat(32);
    expect(parseEdgeEnv({ ...base, API_KEY_HASHES: A, JWT_HS256_SECRET: secret, JWT_ISSUER: "iss", JWT_AUDIENCE: "aud1, aud2" }).jwt).toEqual({
      keys: { kind: "secret", secret },
      issuer: "iss",
      audience: ["aud1", "aud2"],
      algorithms: ["HS256"],
      clockSkewSeconds: 30,
      accountClaim: "account_id",
    });
    const jwks = parseEdgeEnv({ ...base, API_KEY_HASHES: A, JWT_JWKS_URL: "https://id.example.com/jwks", JWT_ISSUER: "iss", JWT_AUDIENCE: "aud", JWT_CLOCK_SKEW_SECONDS: "5", JWT_ACCOUNT_CLAIM: "org_id" }).jwt;
    expect(jwks).toMatchObject({ keys: { kind: "jwks", url: "https://id.example.com/jwks" }, algorithms: ["RS256", "ES256"], clockSkewSeconds: 5, accountClaim: "org_id" });
  });

  it("refuses token settings that would trust the token's own choices or miss a check, without echoing secrets", () => {
    const secret = "short-secret";
    const message = problems({ API_KEY_HASHES: A, JWT_HS256_SECRET: secret, JWT_ALGORITHMS: "none,RS256" });
    expect(message).toMatch(/JWT_HS256_SECRET: at least 32/);
    expect(problems({ API_KEY_HASHES: A, JWT_HS256_SECRET: "s".repeat(32), JWT_ALGORITHMS: "none" })).toMatch(/JWT_ALGORITHMS: "none" does not fit/);
    expect(problems({ API_KEY_HASHES: A, JWT_JWKS_URL: "https://id.example.com/jwks", JWT_ISSUER: "i", JWT_AUDIENCE: "a", JWT_ALGORITHMS: "HS256" })).toMatch(/JWT_ALGORITHMS: "HS256" does not fit a JWKS/);
    const missing = problems({ API_KEY_HASHES: A, JWT_JWKS_URL: "https://id.example.com/jwks" });
    expect(missing).toMatch(/JWT_ISSUER: required/);
    expect(missing).toMatch(/JWT_AUDIENCE: required/);
    expect(problems({ API_KEY_HASHES: A, JWT_JWKS_URL: "http://id.example.com/jwks", JWT_ISSUER: "i", JWT_AUDIENCE: "a" })).toMatch(/JWT_JWKS_URL: must be https/);
    expect(problems({ API_KEY_HASHES: A, JWT_ISSUER: "i" })).toMatch(/JWT_ISSUER: needs JWT_JWKS_URL or JWT_HS256_SECRET/);
    expect(message).not.toContain(secret);
  });
});
