import { Hono } from "hono";
import { secureHeaders } from "hono/secure-headers";
import { describe, expect, it } from "vitest";
import { API_RESPONSE_HEADERS, apiSecureHeaders } from "./protection.ts";
import { testApp } from "./test-helpers.ts";

interface ErrorBody {
  error: { code: string; message: string; requestId: string; field?: string };
}

const event = { id: "p1", name: "n", type: "domain", payload: {} };

describe("CORS", () => {
  const origins = ["https://app.example.com"];

  it("answers an allowed origin's preflight without credentials and exposes the rate-limit headers", async () => {
    const t = await testApp({ deps: { corsOrigins: origins } });
    const res = await t.app.request("/v1/events", {
      method: "OPTIONS",
      headers: { origin: "https://app.example.com", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(res.headers.get("access-control-allow-headers")).toBe("Authorization,Content-Type,Idempotency-Key");
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
    const post = await t.request("/v1/events", { method: "POST", headers: { origin: "https://app.example.com" }, json: event });
    expect(post.status).toBe(202);
    expect(post.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(post.headers.get("access-control-expose-headers")).toContain("RateLimit");
  });

  it("gives an origin not on the list no CORS headers, and its preflight is refused", async () => {
    const t = await testApp({ deps: { corsOrigins: origins } });
    const res = await t.app.request("/v1/events", {
      method: "OPTIONS",
      headers: { origin: "https://evil.example.net", "access-control-request-method": "POST" },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect(res.headers.get("access-control-allow-methods")).toBeNull();
  });

  it("sends no CORS headers at all when no origins are configured", async () => {
    const t = await testApp();
    const res = await t.request("/v1/events", { method: "POST", headers: { origin: "https://app.example.com" }, json: { ...event, id: "p2" } });
    expect(res.status).toBe(202);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("secure response headers", () => {
  it("marks API responses, errors included, as not to be framed, sniffed, loaded or cached", async () => {
    const t = await testApp();
    for (const res of [await t.request("/v1/events", { method: "POST", json: { ...event, id: "p3" } }), await t.app.request("/nope")]) {
      expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("strict-transport-security")).toBe("max-age=31536000; includeSubDomains");
      expect(res.headers.get("referrer-policy")).toBe("no-referrer");
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(res.headers.get("x-request-id")).toBeTruthy();
    }
  });
});

describe("the secure header list", () => {
  const names = (res: Response) => [...res.headers].filter(([name]) => name !== "content-type");

  it("is what Hono's secureHeaders sends with the API's options, plus Cache-Control: no-store", async () => {
    const hono = new Hono()
      .use(secureHeaders({
        contentSecurityPolicy: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
        xFrameOptions: "DENY",
        strictTransportSecurity: "max-age=31536000; includeSubDomains",
        overwrite: false,
      }))
      .get("/", (c) => c.json({}));
    const ours = new Hono().use(apiSecureHeaders()).get("/", (c) => c.json({}));
    const expected = [...names(await hono.request("/")), ["cache-control", "no-store"]].sort();
    expect(names(await ours.request("/")).sort()).toEqual(expected);
    expect(API_RESPONSE_HEADERS).toHaveLength(expected.length);
  });

  it("lets a handler's own header win, and reaches a Response a route built itself", async () => {
    const app = new Hono()
      .use(apiSecureHeaders())
      .get("/own", (c) => {
        c.header("Cache-Control", "public, max-age=60");
        return c.json({});
      })
      .get("/raw", () => new Response("{}", { headers: { "Content-Security-Policy": "default-src 'self'" } }));
    const own = await app.request("/own");
    expect(own.headers.get("cache-control")).toBe("public, max-age=60");
    expect(own.headers.get("x-frame-options")).toBe("DENY");
    const raw = await app.request("/raw");
    expect(raw.headers.get("content-security-policy")).toBe("default-src 'self'");
    expect(raw.headers.get("x-content-type-options")).toBe("nosniff");
    expect(raw.headers.get("cache-control")).toBe("no-store");
  });
});

describe("415 for a body that is not JSON", () => {
  const routes = [
    { path: "/v1/events", body: JSON.stringify(event) },
    { path: "/v1/emails", body: JSON.stringify({ to: "ada@example.com", subject: "Hi", text: "Hello" }) },
    { path: "/v1/jobs/report", body: JSON.stringify({ data: { accountId: "a", month: "2026-11" } }) },
  ];
  for (const route of routes) {
    for (const type of [undefined, "text/plain", "application/x-www-form-urlencoded", "application/jsonp"]) {
      it(`POST ${route.path} with Content-Type ${type ?? "(none)"} answers 415 and enqueues nothing`, async () => {
        const t = await testApp();
        const headers: Record<string, string> = { authorization: "Bearer test-key-0123456789" };
        if (type) headers["content-type"] = type;
        const res = await t.app.request(route.path, { method: "POST", headers, body: route.body });
        expect(res.status).toBe(415);
        const body = (await res.json()) as ErrorBody;
        expect(body.error).toMatchObject({ code: "unsupported_media_type", field: "Content-Type" });
        expect(await t.keys()).toEqual([]);
      });
    }
    it(`POST ${route.path} takes application/json with a charset`, async () => {
      const t = await testApp();
      const res = await t.app.request(route.path, {
        method: "POST",
        headers: { authorization: "Bearer test-key-0123456789", "content-type": "application/json; charset=utf-8" },
        body: route.body,
      });
      expect(res.status).toBe(202);
    });
  }

  it("POST /webhooks/stripe answers 415 for a form body before checking the signature", async () => {
    const t = await testApp({ stripeWebhookSecrets: ["whsec_test"] });
    const res = await t.app.request("/webhooks/stripe", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "stripe-signature": "t=1,v1=00" },
      body: "id=evt_1",
    });
    expect(res.status).toBe(415);
    expect(((await res.json()) as ErrorBody).error.code).toBe("unsupported_media_type");
  });
});

describe("no internals in responses", () => {
  it("answers an unexpected failure with the standard body and no stack trace", async () => {
    const t = await testApp({ redisUrl: "redis://127.0.0.1:1" });
    const res = await t.request("/v1/events", { method: "POST", json: { ...event, id: "p4" } });
    const text = await res.text();
    expect(res.status).toBe(503);
    expect(JSON.parse(text)).toMatchObject({ error: { code: "queue_unavailable" } });
    expect(text).not.toMatch(/\bat \S+ \(|\.ts:\d+|ECONNREFUSED|127\.0\.0\.1/);
  });
});
