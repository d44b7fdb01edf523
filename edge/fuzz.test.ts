// Hostile input, generated: thousands of requests at every route, inside workerd, against real
// Redis under this test's own key prefix. Whatever arrives, the edge answers below 500, every error
// is the standard body, and a refused request leaves Redis exactly as it was.
import fc from "fast-check";
import { inject, expect, it } from "vitest";
import { ErrorBody } from "./openapi.ts";
import { createSocketTransport } from "./queue/socket-transport.ts";
import { API_KEY, testApp } from "./test-helpers.ts";

/** Fixed, so a failure replays; fast-check prints the counterexample and the path to it. */
const SEED = 20261201;
/** 6-11 s here (2 shared cores, others testing); each case is an in-process request plus a KEYS. */
export const FUZZ_RUNS = 6_000;

const STRIPE_SECRET = "whsec_test_fuzz_0123456789";
const enc = new TextEncoder();
const b64url = (s: string | Uint8Array) =>
  btoa(typeof s === "string" ? s : String.fromCharCode(...s)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

const hostileId = fc.oneof(
  fc.constantFrom("meta", "wait", "active", "id", "de", "events", "..", ".", "a:b", "__proto__", "constructor", "123", "0", "%00",
    "%ff%fe", "%2F", "x".repeat(201), "a%3Ab", "-", "~", "report", "evt_1"),
  fc.string({ maxLength: 40 }).map(encodeURIComponent),
  fc.stringMatching(/^[A-Za-z0-9_\-.~]{1,12}$/),
);
const queue = fc.oneof(fc.constantFrom("report", "audit", "email", "stripe-webhook", "nope", "__proto__", "%00", "report%2Fx"), fc.string({ maxLength: 12 }).map(encodeURIComponent));
const path = fc.oneof(
  fc.constantFrom("/v1/events", "/v1/emails", "/v1/jobs/report", "/v1/health", "/health", "/webhooks/stripe", "/openapi.json", "/docs", "/", "/v1", "/v1/jobs"),
  fc.tuple(queue).map(([q]) => `/v1/jobs/${q}`),
  fc.tuple(queue, hostileId).map(([q, id]) => `/v1/jobs/${q}/${id}`),
  fc.tuple(hostileId).map(([id]) => `/v1/jobs/report/${id}`),
);

/** Bearer strings that look like JWTs: alg none, expired, forged signature, garbage segments. */
const jwtLike = fc
  .record({
    alg: fc.constantFrom("none", "None", "HS256", "RS256", "ES256", "EdDSA", ""),
    exp: fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 2 ** 31 }), fc.constant(-1)),
    sig: fc.oneof(fc.constant(""), fc.uint8Array({ maxLength: 64 }).map(b64url)),
    sub: fc.string({ maxLength: 20 }),
    extra: fc.dictionary(fc.constantFrom("aud", "iss", "scope", "__proto__", "nbf", "iat"), fc.jsonValue({ maxDepth: 2 })),
  })
  .map(({ alg, exp, sig, sub, extra }) => `${b64url(JSON.stringify({ alg, typ: "JWT" }))}.${b64url(JSON.stringify({ sub, exp, ...extra }))}.${sig}`);
const authorization = fc.oneof(
  { weight: 4, arbitrary: fc.constant(`Bearer ${API_KEY}`) },
  fc.constant(undefined),
  jwtLike.map((t) => `Bearer ${t}`),
  fc.string({ maxLength: 80 }).map((s) => `Bearer ${s}`),
  fc.constantFrom("Basic dXNlcjpwYXNz", "Bearer", "bearer  ", `Bearer ${"a".repeat(600)}`, `Bearer ${API_KEY} extra`),
);
const contentType = fc.constantFrom(undefined, "application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x", "application/json; charset=latin1", "application/xml", "*/*", "");

function nested(depth: number, open: string, close: string, inner = "1"): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}
const huge = [
  JSON.stringify({ data: { accountId: "a".repeat(300_000), month: "2026-11" } }),
  JSON.stringify({ events: Array.from({ length: 5_000 }, () => ({ name: "n", type: "domain", payload: {} })) }),
  JSON.stringify({ name: "n", type: "domain", payload: { s: "x".repeat(1_100_000) } }),
  JSON.stringify({ to: Array.from({ length: 10_000 }, (_, i) => `u${i}@example.com`), subject: "s", text: "t" }),
];
const validish = fc.constantFrom<unknown>(
  { data: { accountId: "acct_1", month: "2026-11" } },
  { data: { accountId: "acct_1", month: "2026-11" }, delay: 1000, priority: 3 },
  { name: "n", type: "domain", payload: {} },
  { events: [{ name: "n", type: "integration", payload: { a: [1, { b: null }] } }] },
  { to: "a@example.com", subject: "s", text: "t" },
);
/** Prototype keys at every level a schema might merge: top, data, payload. */
const prototypeKeys = fc.constantFrom(
  '{"__proto__":{"admin":true},"data":{"accountId":"a","month":"2026-11"}}',
  '{"data":{"__proto__":{"x":1},"accountId":"a","month":"2026-11"}}',
  '{"name":"n","type":"domain","payload":{"__proto__":{"polluted":1}}}',
  '{"constructor":{"prototype":{"polluted":1}},"name":"n","type":"domain","payload":{}}',
  '{"data":{"accountId":"a","month":"2026-11","constructor":{"prototype":{}}}}',
  '{"events":[{"name":"n","type":"domain","payload":{},"__proto__":null}]}',
);
const body: fc.Arbitrary<string | Uint8Array | undefined> = fc.oneof(
  fc.constant(undefined),
  { weight: 3, arbitrary: validish.map((v) => JSON.stringify(v)) },
  // A valid body with one field replaced by anything at all (wrong types).
  fc.tuple(validish, fc.jsonValue({ maxDepth: 3 }), fc.nat()).map(([v, x, i]) => {
    const o = { ...(v as Record<string, unknown>) };
    const keys = Object.keys(o);
    o[keys[i % keys.length] ?? "data"] = x;
    return JSON.stringify(o);
  }),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  // Malformed JSON: a valid body cut anywhere.
  fc.tuple(validish, fc.nat()).map(([v, n]) => { const t = JSON.stringify(v); return t.slice(0, n % t.length); }),
  fc.string({ maxLength: 200 }),
  fc.integer({ min: 1, max: 5_000 }).map((d) => nested(d, "[", "]")),
  fc.integer({ min: 1, max: 3_000 }).map((d) => nested(d, '{"a":', "}")),
  fc.integer({ min: 60, max: 200 }).map((d) => `{"data":${nested(d, '{"a":', "}")}}`),
  fc.constantFrom(...huge),
  prototypeKeys,
  // Invalid UTF-8: lone continuation bytes, overlongs, surrogates encoded as UTF-8, 0xFF.
  fc.tuple(validish, fc.uint8Array({ minLength: 1, maxLength: 16 }), fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0x80], [0xfe, 0xfe])).map(
    ([v, noise, bad]) => {
      const text = enc.encode(JSON.stringify(v));
      const at = Math.min(text.length - 2, noise.length);
      return new Uint8Array([...text.slice(0, at), ...bad, ...noise.filter((b) => b > 0x7f), ...text.slice(at)]);
    },
  ),
  fc.constantFrom('{"name":"\\ud800","type":"domain","payload":{}}', '{"name":"\\u0000","type":"domain","payload":{}}', "{", "[", '"', "nul", "1e999999", "-0", "{}", "[]", "null"),
);
/** A route the app serves, with its method: most cases reach a handler, so the body is what is hostile. */
const served = fc.oneof(
  fc.constantFrom("/v1/events", "/v1/emails", "/v1/jobs/report", "/webhooks/stripe").map((p) => ({ method: "POST", path: p })),
  hostileId.map((id) => ({ method: "DELETE", path: `/v1/jobs/report/${id}` })),
  fc.tuple(queue, hostileId).map(([q, id]) => ({ method: "GET", path: `/v1/jobs/${q}/${id}` })),
);
const anyRoute = fc.record({ method: fc.constantFrom("GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"), path });
const envelope = fc.oneof(
  { weight: 3, arbitrary: fc.record({ route: served, authorization: fc.constant(`Bearer ${API_KEY}`), contentType: fc.constant("application/json") }) },
  { weight: 2, arbitrary: fc.record({ route: fc.oneof(served, anyRoute), authorization, contentType }) },
);
const request = fc.record({
  envelope,
  idempotencyKey: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, hostileId, fc.constantFrom("meta", "1", "k".repeat(201), "a b")),
  stripeSignature: fc.oneof(fc.constant(undefined), fc.string({ maxLength: 60 }), fc.integer().map((n) => `t=${n},v1=${"0".repeat(64)}`)),
  body,
});

it(`answers ${FUZZ_RUNS} generated hostile requests with no 5xx, the standard error body, and nothing enqueued when refused`, async () => {
  const t = await testApp({ stripeWebhookSecrets: [STRIPE_SECRET] });
  const redis = createSocketTransport(inject("redisUrl"));
  const keys = async () => ((await redis.pipeline([["KEYS", `${t.prefix}:*`]]))[0] as string[]).sort();
  let known: string[] = [];
  const tally = { accepted: 0, refused: 0 };
  try {
    await fc.assert(
      fc.asyncProperty(request, async ({ envelope: { route, authorization, contentType }, ...rest }) => {
        const r = { ...route, ...rest, authorization, contentType };
        const headers = new Headers();
        if (r.authorization !== undefined) headers.set("authorization", r.authorization);
        if (r.contentType !== undefined) headers.set("content-type", r.contentType);
        if (r.idempotencyKey !== undefined) headers.set("idempotency-key", r.idempotencyKey);
        if (r.stripeSignature !== undefined) headers.set("stripe-signature", r.stripeSignature);
        const withBody = r.method !== "GET" && r.method !== "HEAD" && r.body !== undefined;
        const res = await t.app.request(r.path, { method: r.method, headers, ...(withBody ? { body: r.body } : {}) });
        expect(res.status, `${r.method} ${r.path}`).toBeLessThan(500);
        if (res.status < 400) {
          await res.body?.cancel();
          tally.accepted++;
          known = await keys();
          return;
        }
        tally.refused++;
        if (r.method !== "HEAD") {
          const text = await res.text();
          let parsed: unknown;
          expect(() => { parsed = JSON.parse(text); }, `${r.method} ${r.path} ${res.status}: ${text.slice(0, 200)}`).not.toThrow();
          expect(ErrorBody.safeParse(parsed).error?.issues ?? [], `${r.method} ${r.path} ${res.status}: ${text.slice(0, 200)}`).toEqual([]);
        }
        expect(await keys(), `${r.method} ${r.path} ${res.status} changed Redis`).toEqual(known);
      }),
      { seed: SEED, numRuns: FUZZ_RUNS, endOnFailure: true },
    );
  } finally {
    await redis.close();
  }
  // The generators reach both sides: some requests are accepted (so "nothing enqueued" is measured
  // against a Redis that does change), most are refused.
  expect(tally.accepted).toBeGreaterThan(20);
  expect(tally.refused).toBeGreaterThan(FUZZ_RUNS / 2);
  console.log(JSON.stringify({ fuzz: { seed: SEED, runs: FUZZ_RUNS, ...tally } }));
}, 120_000);
