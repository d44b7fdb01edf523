// The JWKS URL path, which workerd cannot exercise (a test there cannot serve HTTP): the verifier
// built from configuration fetches the key set over HTTP, keeps it between requests, and answers
// 503 (retryable) rather than 401 when the key source is down.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { createApp } from "../app.ts";
import { parseEdgeEnv } from "../env.ts";
import { createJwtVerifier } from "./jwt.ts";

const ISSUER = "https://id.example.com/";
const AUDIENCE = "edgefleet-api";
let server: Server | undefined;

afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function serveJwks(body: () => { status: number; json: unknown }) {
  const hits = { count: 0 };
  server = createServer((_, res) => {
    hits.count++;
    const { status, json } = body();
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(json));
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`, hits };
}

async function appFor(jwksUrl: string) {
  const env = parseEdgeEnv({
    REDIS_URL: "redis://127.0.0.1:1",
    API_KEY_HASHES: "0".repeat(64),
    JWT_JWKS_URL: jwksUrl,
    JWT_ISSUER: ISSUER,
    JWT_AUDIENCE: AUDIENCE,
  });
  // Requests below are refused (403) or fail at authentication, so Redis is never opened.
  return createApp({ apiKeyHashes: env.API_KEY_HASHES, jwt: env.jwt && createJwtVerifier(env.jwt), openQueue: () => { throw new Error("no Redis in this test"); } });
}

async function keyPair() {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" };
  const sign = () => new SignJWT({ sub: "user-1", scope: "jobs:read" }).setProtectedHeader({ alg: "RS256", kid: "k1" })
    .setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime("5m").sign(privateKey);
  return { jwk, sign };
}

// A token with only jobs:read posting an event: 403 proves the token verified (401 otherwise)
// without needing Redis.
const postEvent = (token: string) => ({
  method: "POST",
  headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
  body: JSON.stringify({ name: "e", type: "domain", payload: {} }),
});

describe("end-user tokens verified against a JWKS URL", () => {
  it("fetches the key set once and verifies later tokens from the cache", async () => {
    const { jwk, sign } = await keyPair();
    const jwks = await serveJwks(() => ({ status: 200, json: { keys: [jwk] } }));
    const app = await appFor(jwks.url);
    for (let i = 0; i < 3; i++) {
      const res = await app.request("/v1/events", postEvent(await sign()));
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: { scope: string } }).error.scope).toBe("events:write");
    }
    expect(jwks.hits.count).toBe(1);
  });

  it("refuses a token signed by a key the set does not hold", async () => {
    const { jwk } = await keyPair();
    const other = await keyPair();
    const jwks = await serveJwks(() => ({ status: 200, json: { keys: [jwk] } }));
    const res = await (await appFor(jwks.url)).request("/v1/events", postEvent(await other.sign()));
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toContain('error="invalid_token"');
  });

  it("answers 503 auth_unavailable with Retry-After when the JWKS URL fails, never 401 or 2xx", async () => {
    const { sign } = await keyPair();
    const jwks = await serveJwks(() => ({ status: 500, json: { error: "down" } }));
    const res = await (await appFor(jwks.url)).request("/v1/events", postEvent(await sign()));
    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toBe("5");
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("auth_unavailable");
  });
});
