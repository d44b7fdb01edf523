// Identities and roles, inside workerd: API keys with and without scopes, end-user JWTs (HS256
// secret, and a JWKS handed to the app as a key set: workerd cannot serve one; the remote URL path
// is tested on Node in auth/jwks.node.test.ts), 401 for every bad token, 403 per route, and the
// caller's identity stamped onto what reaches Redis.
import { base64url, createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type JWTPayload } from "jose";
import { describe, expect, it } from "vitest";
import { inject } from "vitest";
import { createApp } from "./app.ts";
import { sha256Hex, type ApiKey } from "./auth.ts";
import type { JwtVerifier } from "./auth/jwt.ts";
import { scopeFor } from "./auth/scopes.ts";
import { createProducer } from "./queue/producer.ts";
import { createSocketTransport } from "./queue/socket-transport.ts";

const SECRET = "a-test-hs256-secret-of-at-least-32-chars";
const ISSUER = "https://id.example.com/";
const AUDIENCE = "https://api.example.com";

interface ErrorBody {
  error: { code: string; message: string; requestId: string; field?: string; scope?: string };
}

const hs256: JwtVerifier = {
  key: new TextEncoder().encode(SECRET),
  issuer: ISSUER,
  audience: [AUDIENCE],
  algorithms: ["HS256"],
  clockSkewSeconds: 30,
  accountClaim: "account_id",
};

async function setup(options: { keys?: Record<string, readonly string[] | undefined>; jwt?: JwtVerifier } = {}) {
  const redisUrl = inject("redisUrl");
  const prefix = `t${crypto.randomUUID().slice(0, 8)}`;
  const keys = options.keys ?? { "full-key": undefined };
  const apiKeyHashes: ApiKey[] = await Promise.all(
    Object.entries(keys).map(async ([key, scopes]) => ({ digest: await sha256Hex(key), scopes })),
  );
  const app = createApp({
    apiKeyHashes,
    jwt: options.jwt ?? hs256,
    openQueue: () => {
      const transport = createSocketTransport(redisUrl);
      return { producer: createProducer(transport, { prefix }), close: () => transport.close() };
    },
  });
  const redis = async (...command: string[]) => {
    const transport = createSocketTransport(redisUrl);
    try {
      return (await transport.pipeline([command]))[0];
    } finally {
      await transport.close();
    }
  };
  const call = (path: string, credential: string, init: { method?: string; json?: unknown } = {}) =>
    app.request(path, {
      method: init.method ?? (init.json === undefined ? "GET" : "POST"),
      headers: { authorization: `Bearer ${credential}`, ...(init.json === undefined ? {} : { "content-type": "application/json" }) },
      ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
    });
  const jobData = async (queue: string, id: string) => JSON.parse((await redis("HGET", `${prefix}:${queue}:${id}`, "data")) as string) as Record<string, unknown>;
  const keysInRedis = async () => (await redis("KEYS", `${prefix}:*`)) as string[];
  return { call, jobData, keysInRedis };
}

const now = () => Math.floor(Date.now() / 1000);

function userToken(claims: JWTPayload = {}, options: { secret?: string; alg?: string } = {}) {
  // Claims in the payload, not through the setters, so a test's own `iss`/`aud`/`exp` win.
  const payload = { sub: "user-42", account_id: "acct_1", scope: "events:write", iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + 300, ...claims };
  return new SignJWT(payload)
    .setProtectedHeader({ alg: options.alg ?? "HS256" })
    .sign(new TextEncoder().encode(options.secret ?? SECRET));
}

const event = (extra: Record<string, unknown> = {}) => ({ name: "order.placed", type: "domain", payload: {}, ...extra });

async function expectUnauthorized(res: Response, description?: RegExp) {
  expect(res.status).toBe(401);
  const body = (await res.json()) as ErrorBody;
  expect(body.error).toMatchObject({ code: "unauthorized", field: "Authorization" });
  expect(body.error.requestId).toBeTypeOf("string");
  const challenge = res.headers.get("WWW-Authenticate") ?? "";
  expect(challenge).toMatch(/^Bearer realm="edgefleet", error="invalid_token"/);
  if (description) expect(challenge).toMatch(description);
}

describe("service API keys", () => {
  it("a key configured without scopes keeps full access, and its event records the key id, not the key", async () => {
    const t = await setup();
    const res = await t.call("/v1/events", "full-key", { json: event({ id: "evt-k1", accountId: "acct_9" }) });
    expect(res.status).toBe(202);
    const data = await t.jobData("audit", "evt-k1");
    const digest = await sha256Hex("full-key");
    expect(data.actor).toEqual({ type: "api_key", id: digest.slice(0, 12) });
    expect(data.accountId).toBe("acct_9");
    expect(JSON.stringify(data)).not.toContain("full-key");
  });

  it("a scoped key reaches its routes and gets 403 naming the scope elsewhere, enqueueing nothing", async () => {
    const t = await setup({ keys: { "events-key": ["events:write"] } });
    expect((await t.call("/v1/events", "events-key", { json: event({ id: "evt-k2" }) })).status).toBe(202);
    const before = (await t.keysInRedis()).sort();
    const res = await t.call("/v1/emails", "events-key", { json: { to: "a@example.com", subject: "s", text: "t" } });
    expect(res.status).toBe(403);
    const body = (await res.json()) as ErrorBody;
    expect(body.error).toMatchObject({ code: "forbidden", scope: "emails:send" });
    expect(body.error.message).toContain('"emails:send"');
    expect(res.headers.get("WWW-Authenticate")).toBe('Bearer realm="edgefleet", error="insufficient_scope", scope="emails:send"');
    expect((await t.keysInRedis()).sort()).toEqual(before);
  });

  it.each([
    ["POST", "/v1/events", "events:write"],
    ["POST", "/v1/emails", "emails:send"],
    ["POST", "/v1/jobs/report", "jobs:write:report"],
    ["GET", "/v1/jobs/report/some-id", "jobs:read"],
    ["DELETE", "/v1/jobs/report/some-id", "jobs:cancel:report"],
    ["GET", "/v1/health", "health:read"],
  ])("%s %s without %s answers 403 and touches no Redis key", async (method, path, scope) => {
    // Holds every scope but the one the route needs.
    const all = ["events:write", "emails:send", "jobs:write:report", "jobs:read", "jobs:cancel:report", "health:read"];
    const t = await setup({ keys: { "almost-key": all.filter((s) => s !== scope) } });
    const res = await t.call(path, "almost-key", { method, ...(method === "POST" ? { json: {} } : {}) });
    expect(res.status).toBe(403);
    expect(((await res.json()) as ErrorBody).error).toMatchObject({ code: "forbidden", scope });
    expect(await t.keysInRedis()).toEqual([]);
  });

  it("jobs:write:* grants every queue; the scope is checked before the body", async () => {
    const t = await setup({ keys: { "jobs-key": ["jobs:write:*", "jobs:read"] } });
    const res = await t.call("/v1/jobs/report", "jobs-key", { json: { data: { accountId: "acct_1", month: "2026-11" } } });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    expect((await t.call(`/v1/jobs/report/${id}`, "jobs-key")).status).toBe(200);
  });

  it("every /v1 route the app serves needs a scope", () => {
    const app = createApp({ apiKeyHashes: [], openQueue: () => { throw new Error("unused"); } });
    const routes = app.routes.filter((r) => r.path.startsWith("/v1/") && r.method !== "ALL");
    expect(routes.length).toBeGreaterThan(5);
    for (const r of routes) expect(scopeFor(r.method, r.path.replaceAll(/:\w+/g, "x")), `${r.method} ${r.path}`).toBeDefined();
  });
});

describe("end-user JWTs", () => {
  it("a valid token's event is pinned to its account and records the user as actor", async () => {
    const t = await setup();
    const res = await t.call("/v1/events", await userToken(), { json: event({ id: "evt-u1" }) });
    expect(res.status).toBe(202);
    expect(await t.jobData("audit", "evt-u1")).toMatchObject({ accountId: "acct_1", actor: { type: "user", id: "user-42" } });
  });

  it("an event naming another account is refused with 403 on that field, in a batch too", async () => {
    const t = await setup();
    const token = await userToken();
    const single = await t.call("/v1/events", token, { json: event({ accountId: "acct_2" }) });
    expect(single.status).toBe(403);
    expect(((await single.json()) as ErrorBody).error).toMatchObject({ code: "forbidden", field: "accountId" });
    const batch = await t.call("/v1/events", token, { json: { events: [event({ accountId: "acct_1" }), event({ accountId: "acct_2" })] } });
    expect(batch.status).toBe(403);
    expect(((await batch.json()) as ErrorBody).error).toMatchObject({ code: "forbidden", field: "events[1].accountId" });
    expect(await t.keysInRedis()).toEqual([]);
  });

  it("events:write:any-account lets a token write for another account", async () => {
    const t = await setup();
    const token = await userToken({ scope: "events:write events:write:any-account" });
    const res = await t.call("/v1/events", token, { json: event({ id: "evt-u2", accountId: "acct_2" }) });
    expect(res.status).toBe(202);
    expect(await t.jobData("audit", "evt-u2")).toMatchObject({ accountId: "acct_2", actor: { type: "user", id: "user-42" } });
  });

  it("a token without the account claim cannot write events", async () => {
    const t = await setup();
    const res = await t.call("/v1/events", await userToken({ account_id: undefined }), { json: event() });
    expect(res.status).toBe(403);
    expect(await t.keysInRedis()).toEqual([]);
  });

  it("reads scopes from `scp` (a list) when `scope` is absent", async () => {
    const t = await setup();
    const token = await userToken({ scope: undefined, scp: ["jobs:read"] });
    expect((await t.call("/v1/events", token, { json: event() })).status).toBe(403);
    expect((await t.call("/v1/jobs/report/none", token)).status).toBe(404);
  });

  it("a body carrying the server-owned `actor` is refused with 400 naming it", async () => {
    const t = await setup();
    const res = await t.call("/v1/events", "full-key", { json: event({ actor: { type: "user", id: "someone-else" } }) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as ErrorBody).error).toMatchObject({ code: "validation_failed", field: "actor" });
    expect(await t.keysInRedis()).toEqual([]);
  });

  it("accepts a token expired within the configured clock skew", async () => {
    const t = await setup();
    expect((await t.call("/v1/events", await userToken({ exp: now() - 10 }), { json: event() })).status).toBe(202);
  });

  const unsigned = (claims: JWTPayload) => {
    const part = (value: object) => base64url.encode(JSON.stringify(value));
    return `${part({ alg: "none", typ: "JWT" })}.${part({ sub: "user-42", iss: ISSUER, aud: AUDIENCE, exp: now() + 300, scope: "events:write", account_id: "acct_1", ...claims })}.`;
  };

  it.each<[string, () => Promise<string>, RegExp]>([
    ["alg: none", async () => unsigned({}), /malformed token|algorithm not allowed/],
    ["expired beyond the clock skew", () => userToken({ exp: now() - 120 }), /token expired/],
    ["for another audience", () => userToken({ aud: "https://other.example.com" }), /claim "aud"/],
    ["from another issuer", () => userToken({ iss: "https://evil.example.com/" }), /claim "iss"/],
    ["signed with another secret (forged)", () => userToken({}, { secret: "another-secret-that-is-32-chars-long!!" }), /signature verification failed/],
    ["with a tampered payload", async () => {
      const [h, , s] = (await userToken()).split(".");
      return `${h}.${base64url.encode(JSON.stringify({ sub: "admin", iss: ISSUER, aud: AUDIENCE, exp: now() + 300, scope: "events:write events:write:any-account" }))}.${s}`;
    }, /signature verification failed/],
    ["in an algorithm not allowed (HS512)", () => userToken({}, { alg: "HS512" }), /algorithm not allowed/],
    ["without exp", () => new SignJWT({ sub: "u", scope: "events:write" }).setProtectedHeader({ alg: "HS256" }).setIssuer(ISSUER).setAudience(AUDIENCE).sign(new TextEncoder().encode(SECRET)), /claim "exp"/],
    ["without sub", () => userToken({ sub: undefined }), /claim "sub"/],
    ["not yet valid (nbf ahead of the skew)", () => userToken({ nbf: now() + 600 }), /claim "nbf"/],
  ])("a token %s gets 401 with a WWW-Authenticate challenge, enqueueing nothing", async (_, token, description) => {
    const t = await setup();
    await expectUnauthorized(await t.call("/v1/events", await token(), { json: event() }), description);
    expect(await t.keysInRedis()).toEqual([]);
  });

  it("401 for a missing or unknown credential", async () => {
    const t = await setup();
    const missing = await (async () => {
      const app = createApp({ apiKeyHashes: [], jwt: hs256, openQueue: () => { throw new Error("unused"); } });
      return app.request("/v1/health");
    })();
    expect(missing.status).toBe(401);
    expect(missing.headers.get("WWW-Authenticate")).toBe('Bearer realm="edgefleet"');
    await expectUnauthorized(await t.call("/v1/events", "not-a-key", { json: event() }));
  });
});

describe("end-user JWTs from a JWKS", () => {
  async function jwksSetup() {
    const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" };
    const t = await setup({ jwt: { ...hs256, key: createLocalJWKSet({ keys: [jwk] }), algorithms: ["ES256"] } });
    const sign = (header: { kid: string }) =>
      new SignJWT({ sub: "user-7", account_id: "acct_3", scope: "events:write" })
        .setProtectedHeader({ alg: "ES256", ...header })
        .setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime(now() + 300)
        .sign(privateKey);
    return { t, sign };
  }

  it("accepts a token signed by a key in the set", async () => {
    const { t, sign } = await jwksSetup();
    const res = await t.call("/v1/events", await sign({ kid: "k1" }), { json: event({ id: "evt-j1" }) });
    expect(res.status).toBe(202);
    expect(await t.jobData("audit", "evt-j1")).toMatchObject({ accountId: "acct_3", actor: { type: "user", id: "user-7" } });
  });

  it("refuses a token naming a key not in the set, and an HS256 token (algorithm confusion)", async () => {
    const { t, sign } = await jwksSetup();
    await expectUnauthorized(await t.call("/v1/events", await sign({ kid: "k2" }), { json: event() }), /no matching key/);
    await expectUnauthorized(await t.call("/v1/events", await userToken(), { json: event() }), /algorithm not allowed/);
    expect(await t.keysInRedis()).toEqual([]);
  });
});
