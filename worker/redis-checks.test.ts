import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, startRedis, type LocalRedis } from "../tools/dev/local-services.ts";
import { producerRedisOptions, redisOptions } from "./fleet.ts";
import { RECONNECT_BASE_MS, RECONNECT_MAX_MS, reconnectDelay } from "./redis-checks.ts";
import { memoryLog, startTestFleet } from "../tools/testing/fixtures.ts";

const noop = async () => {};
const handlers = { audit: noop, email: noop, "stripe-webhook": noop };

// A private Redis: these tests change server settings (eviction policy, ACL users) that would
// disturb every other test on the shared one.
let server: LocalRedis;
beforeAll(async () => {
  server = await startRedis({ dataDir: join(ROOT, ".data/test", `redis-checks-${process.pid}`) });
  const admin = new Redis(redisOptions(server.url));
  await admin.config("SET", "maxmemory-policy", "allkeys-lru");
  // Like Upstash: everything allowed except CONFIG.
  await admin.acl("SETUSER", "limited", "on", ">limited-pw", "~*", "&*", "+@all", "-config");
  admin.disconnect();
});
afterAll(() => server.stop());

function asUser(url: string, user: string, password: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  return u.toString();
}

describe("start-up eviction check", () => {
  it("warns in one log line when maxmemory-policy is not noeviction", async () => {
    const { log, lines } = memoryLog();
    const t = await startTestFleet({ handlers, scripts: [], log }, { redisUrl: server.url, queues: ["audit"] });
    await t.stop();
    const warnings = lines.filter((l) => String(l.msg).includes("maxmemory-policy"));
    expect(warnings).toEqual([expect.objectContaining({ level: "warn", policy: "allkeys-lru" })]);
  });

  it("starts anyway, logging at info, when CONFIG is refused", async () => {
    const { log, lines } = memoryLog();
    const url = asUser(server.url, "limited", "limited-pw");
    const t = await startTestFleet({ handlers, scripts: [], log }, { redisUrl: url, queues: ["audit"] });
    expect(t.fleet.workers.get("audit")?.isRunning()).toBe(true);
    await t.stop();
    const checks = lines.filter((l) => String(l.msg).includes("maxmemory-policy"));
    expect(checks).toEqual([expect.objectContaining({ level: "info", error: expect.stringMatching(/NOPERM|config/i) })]);
  });
});

describe("connection settings", () => {
  it("backs off exponentially with jitter and caps the reconnect delay", () => {
    expect(reconnectDelay(1, () => 0)).toBe(RECONNECT_BASE_MS / 2);
    expect(reconnectDelay(1, () => 1)).toBe(RECONNECT_BASE_MS);
    expect(reconnectDelay(4, () => 1)).toBe(RECONNECT_BASE_MS * 8);
    expect(reconnectDelay(50, () => 1)).toBe(RECONNECT_MAX_MS);
    expect(reconnectDelay(50, () => 0)).toBe(RECONNECT_MAX_MS / 2);
  });

  it("a producer connection fails fast while Redis is down instead of queueing the command", async () => {
    const down = await startRedis({ dataDir: join(ROOT, ".data/test", `redis-down-${process.pid}`) });
    const redis = new Redis({ ...producerRedisOptions(down.url, undefined, 500), lazyConnect: true });
    redis.on("error", () => {});
    try {
      await redis.connect();
      expect(await redis.ping()).toBe("PONG");
      await down.stop();
      const started = performance.now();
      await expect(redis.set("k", "v")).rejects.toThrow();
      expect(performance.now() - started).toBeLessThan(2_000);
    } finally {
      redis.disconnect();
      await down.stop();
    }
  });
});
