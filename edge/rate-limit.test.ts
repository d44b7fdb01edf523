import { describe, expect, it } from "vitest";
import type { RateLimitConfig } from "./rate-limit.ts";
import { testApp } from "./test-helpers.ts";

interface ErrorBody {
  error: { code: string; message: string; requestId: string };
}

const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);

/** Limits under a clock the test moves: windows reset by configuration, not by waiting. */
function limits(routes: RateLimitConfig["routes"], start = T0 + 20_000) {
  const clock = { now: start };
  return { clock, rateLimits: { routes, now: () => clock.now } satisfies RateLimitConfig };
}

const event = (id: string) => ({ id, name: "n", type: "domain", payload: {} });

describe("rate limits", () => {
  it("answers 429 with Retry-After and RateLimit headers after the limit, and enqueues nothing for refused requests", async () => {
    const { rateLimits } = limits({ events: { limit: 2, windowSeconds: 60 } });
    const t = await testApp({ deps: { rateLimits } });
    const first = await t.request("/v1/events", { method: "POST", json: event("e1") });
    expect(first.status).toBe(202);
    expect(first.headers.get("ratelimit-policy")).toBe('"events";q=2;w=60');
    // The clock stands 20 s into its minute: 40 s until the window resets.
    expect(first.headers.get("ratelimit")).toBe('"events";r=1;t=40');
    expect((await t.request("/v1/events", { method: "POST", json: event("e2") })).status).toBe(202);

    const refused = await t.request("/v1/events", { method: "POST", json: event("e3") });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("40");
    expect(refused.headers.get("ratelimit")).toBe('"events";r=0;t=40');
    const body = (await refused.json()) as ErrorBody;
    expect(body.error.code).toBe("rate_limited");
    expect(body.error.requestId).toBe(refused.headers.get("x-request-id"));

    const refusedBatch = await t.request("/v1/events", { method: "POST", json: { events: [event("b1"), event("b2"), event("b3")] } });
    expect(refusedBatch.status).toBe(429);
    // Nothing of the refused requests reached BullMQ: no job hash, not in the wait list.
    expect(await t.redis(...["e3", "b1", "b2", "b3"].map((id) => ["EXISTS", `${t.prefix}:audit:${id}`]))).toEqual([0, 0, 0, 0]);
    expect((await t.redis(["LRANGE", `${t.prefix}:audit:wait`, "0", "-1"]))[0]).toEqual(["e2", "e1"]);
  });

  it("counts a batch as one request and accepts it whole within the limit", async () => {
    const { rateLimits } = limits({ events: { limit: 1, windowSeconds: 60 } });
    const t = await testApp({ deps: { rateLimits } });
    const res = await t.request("/v1/events", { method: "POST", json: { events: [event("b1"), event("b2")] } });
    expect(res.status).toBe(202);
    expect((await t.redis(["LLEN", `${t.prefix}:audit:wait`]))[0]).toBe(2);
  });

  it("accepts again once the clock passes into the next window", async () => {
    const { clock, rateLimits } = limits({ events: { limit: 1, windowSeconds: 60 } });
    const t = await testApp({ deps: { rateLimits } });
    expect((await t.request("/v1/events", { method: "POST", json: event("w1") })).status).toBe(202);
    expect((await t.request("/v1/events", { method: "POST", json: event("w2") })).status).toBe(429);
    clock.now += 40_000;
    const next = await t.request("/v1/events", { method: "POST", json: event("w3") });
    expect(next.status).toBe(202);
    expect(next.headers.get("ratelimit")).toBe('"events";r=0;t=60');
    expect((await t.redis(["LRANGE", `${t.prefix}:audit:wait`, "0", "-1"]))[0]).toEqual(["w3", "w1"]);
  });

  it("keeps separate counts per caller and per route", async () => {
    const { rateLimits } = limits({ events: { limit: 1, windowSeconds: 60 }, emails: { limit: 1, windowSeconds: 60 } });
    const t = await testApp({ deps: { rateLimits } });
    expect((await t.request("/v1/events", { method: "POST", json: event("c1") })).status).toBe(202);
    expect((await t.request("/v1/events", { method: "POST", json: event("c2") })).status).toBe(429);
    const other = { authorization: "Bearer another-key" };
    expect((await t.request("/v1/events", { method: "POST", headers: other, json: event("c3") })).status).toBe(202);
    const email = { to: "ada@example.com", subject: "Hi", text: "Hello" };
    expect((await t.request("/v1/emails", { method: "POST", json: email })).status).toBe(202);
  });

  it("counts job reads in the same round trip and refuses a cancel over the limit without removing the job", async () => {
    const { rateLimits } = limits({ "jobs.read": { limit: 1, windowSeconds: 60 }, "jobs.write": { limit: 1, windowSeconds: 60 } });
    const t = await testApp({ deps: { rateLimits } });
    const data = { accountId: "acct_rl", month: "2026-10" };
    expect((await t.request("/v1/jobs/report", { method: "POST", headers: { "Idempotency-Key": "r1" }, json: { data } })).status).toBe(202);
    const read = await t.request("/v1/jobs/report/r1");
    expect(read.status).toBe(200);
    expect(read.headers.get("ratelimit")).toBe('"jobs.read";r=0;t=40');
    expect((await t.request("/v1/jobs/report/r1")).status).toBe(429);

    const cancel = await t.request("/v1/jobs/report/r1", { method: "DELETE" });
    expect(cancel.status).toBe(429);
    expect((await t.redis(["EXISTS", `${t.prefix}:report:r1`]))[0]).toBe(1);
    expect((await t.redis(["LRANGE", `${t.prefix}:report:wait`, "0", "-1"]))[0]).toEqual(["r1"]);
  });

  it("sends no RateLimit headers and writes no counters when limits are off", async () => {
    const t = await testApp();
    const res = await t.request("/v1/events", { method: "POST", json: event("off1") });
    expect(res.status).toBe(202);
    expect(res.headers.get("ratelimit")).toBeNull();
    expect((await t.keys()).filter((k) => k.includes(":edgefleet:rl"))).toEqual([]);
  });
});
