import { describe, expect, it } from "vitest";
import { ConfigError, parseEdgeEnv } from "./env.ts";
import { DEFAULT_RATE_LIMITS } from "./rate-limit.ts";

const base = { API_KEY_HASHES: "a".repeat(64), REDIS_URL: "redis://h" };

describe("edge env: rate limits and CORS origins", () => {
  it("applies the documented defaults when RATE_LIMITS is unset, and none with off", () => {
    expect(parseEdgeEnv(base).RATE_LIMITS).toEqual({ routes: DEFAULT_RATE_LIMITS });
    expect(parseEdgeEnv({ ...base, RATE_LIMITS: "off" }).RATE_LIMITS).toBeUndefined();
  });

  it("overrides single routes and switches one off, keeping the other defaults", () => {
    const { RATE_LIMITS } = parseEdgeEnv({ ...base, RATE_LIMITS: "emails=20/1m, jobs.read=off, events=5/10s" });
    expect(RATE_LIMITS?.routes).toEqual({
      events: { limit: 5, windowSeconds: 10 },
      emails: { limit: 20, windowSeconds: 60 },
      "jobs.write": DEFAULT_RATE_LIMITS["jobs.write"],
    });
  });

  it("refuses an unknown route or a malformed entry, naming the variable", () => {
    for (const value of ["uploads=1/1m", "events=10", "events=0/1m", "events=1/2d"]) {
      expect(() => parseEdgeEnv({ ...base, RATE_LIMITS: value })).toThrow(ConfigError);
      expect(() => parseEdgeEnv({ ...base, RATE_LIMITS: value })).toThrow(/RATE_LIMITS/);
    }
  });

  it("takes CORS origins as a comma list and refuses anything that is not an origin", () => {
    expect(parseEdgeEnv({ ...base, CORS_ORIGINS: "https://app.example.com, http://localhost:5173" }).CORS_ORIGINS)
      .toEqual(["https://app.example.com", "http://localhost:5173"]);
    expect(parseEdgeEnv(base).CORS_ORIGINS).toBeUndefined();
    expect(() => parseEdgeEnv({ ...base, CORS_ORIGINS: "https://app.example.com/path" })).toThrow(/CORS_ORIGINS/);
  });
});
