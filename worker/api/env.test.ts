import { describe, expect, it } from "vitest";
import { EnvError, parseRole } from "../env.ts";
import { ApiEnvError, parseApiEnv } from "./env.ts";

const HASH = "a".repeat(64);

describe("parseRole", () => {
  it("defaults to worker and accepts api and all", () => {
    expect(parseRole({})).toBe("worker");
    expect(parseRole({ EDGEFLEET_ROLE: " " })).toBe("worker");
    expect(parseRole({ EDGEFLEET_ROLE: "api" })).toBe("api");
    expect(parseRole({ EDGEFLEET_ROLE: "all" })).toBe("all");
  });

  it("refuses anything else, naming the variable and the choices", () => {
    expect(() => parseRole({ EDGEFLEET_ROLE: "edge" })).toThrow(EnvError);
    expect(() => parseRole({ EDGEFLEET_ROLE: "edge" })).toThrow("EDGEFLEET_ROLE: must be one of worker, api, all");
  });
});

describe("parseApiEnv", () => {
  it("reads the edge's settings with the edge's rules, plus PORT", () => {
    const config = parseApiEnv({
      REDIS_URL: "rediss://:pw@redis.example:6380",
      API_KEY_HASHES: `${HASH.toUpperCase()}, ${"b".repeat(64)}`,
      QUEUE_PREFIX: "acme",
      PORT: "3000",
      REDIS_CA_CERT: "/etc/ca.pem",
    });
    expect(config).toEqual({
      apiKeyHashes: [{ digest: HASH }, { digest: "b".repeat(64) }],
      jwt: undefined,
      stripeWebhookSecrets: [],
      queuePrefix: "acme",
      redis: { transport: "socket", url: "rediss://:pw@redis.example:6380" },
      redisCaCertPath: "/etc/ca.pem",
      redisConnectTimeoutMs: 2000,
      redisCommandTimeoutMs: 3000,
      port: 3000,
      shutdownTimeoutMs: 25_000,
      // The edge's defaults (edge/rate-limit.ts); no CORS unless CORS_ORIGINS is set.
      rateLimits: {
        routes: {
          events: { limit: 1000, windowSeconds: 60 },
          emails: { limit: 100, windowSeconds: 60 },
          "jobs.write": { limit: 600, windowSeconds: 60 },
          "jobs.read": { limit: 1200, windowSeconds: 60 },
        },
      },
      corsOrigins: undefined,
    });
  });

  it("takes Upstash REST as the edge does", () => {
    const config = parseApiEnv({ UPSTASH_REDIS_REST_URL: "https://eu1-x.upstash.io", UPSTASH_REDIS_REST_TOKEN: "tok", API_KEY_HASHES: HASH });
    expect(config.redis).toEqual({ transport: "upstash", url: "https://eu1-x.upstash.io", token: "tok" });
    expect(config.port).toBe(8080);
  });

  it("lists every problem of both schemas at once, without echoing values", () => {
    let error: unknown;
    try {
      parseApiEnv({ API_KEY_HASHES: "secret-not-a-digest", PORT: "http", STRIPE_WEBHOOK_SECRET: "sk_live_oops" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ApiEnvError);
    const issues = (error as ApiEnvError).issues.join("\n");
    for (const name of ["REDIS_URL", "API_KEY_HASHES", "PORT", "STRIPE_WEBHOOK_SECRET"]) expect(issues).toContain(name);
    expect(issues).not.toContain("secret-not-a-digest");
    expect(issues).not.toContain("sk_live_oops");
  });
});
