// GET /health is liveness (no Redis, no auth); GET /v1/health is readiness behind the API key.
import { describe, expect, inject, it } from "vitest";
import { createSocketTransport } from "./queue/socket-transport.ts";
import { testApp } from "./test-helpers.ts";

const unreachable = "redis://:x@127.0.0.1:1";

describe("GET /health", () => {
  it("answers 200 without an API key and without opening a Redis connection, even when Redis is down", async () => {
    let opened = 0;
    const t = await testApp({
      transport: () => {
        opened++;
        return createSocketTransport(unreachable, { connectTimeoutMs: 500, commandTimeoutMs: 500 });
      },
    });
    for (let i = 0; i < 5; i++) {
      const res = await t.app.request("/health");
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "ok" });
    }
    expect(opened).toBe(0);
  });
});

describe("GET /v1/health", () => {
  it("needs the API key", async () => {
    const t = await testApp();
    expect((await t.app.request("/v1/health")).status).toBe(401);
  });

  it("reports Redis ok and, plainly, that no fleet has announced itself on this prefix", async () => {
    const t = await testApp();
    const res = await t.request("/v1/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok", redis: "ok", fleet: `none on prefix ${t.prefix}` });
  });

  it("reports the fleet it sees on the same prefix", async () => {
    const t = await testApp();
    const key = `${t.prefix}:edgefleet:fleet`;
    await t.redis(["HSET", key, "audit", "2026-12-01T10:00:00.000Z", "email", "2026-12-01T10:00:01.000Z"]);
    try {
      const res = await t.request("/v1/health");
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        status: "ok", redis: "ok", fleet: "seen",
        fleetQueues: { audit: "2026-12-01T10:00:00.000Z", email: "2026-12-01T10:00:01.000Z" },
      });
      // A fleet on another prefix does not count.
      const other = await testApp({ redisUrl: inject("redisUrl") });
      expect(await (await other.request("/v1/health")).json()).toMatchObject({ fleet: `none on prefix ${other.prefix}` });
    } finally {
      await t.redis(["DEL", key]);
    }
  });

  it("answers 503 queue_unavailable with Retry-After when Redis is down", async () => {
    const t = await testApp({ redisUrl: unreachable });
    const res = await t.request("/v1/health");
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("2");
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("queue_unavailable");
  });
});
