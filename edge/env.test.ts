import { describe, expect, it } from "vitest";
import { ConfigError, parseEdgeEnv } from "./env.ts";

const API_KEY_HASHES = "a".repeat(64);

function problems(bindings: Record<string, unknown>): string {
  try {
    parseEdgeEnv(bindings);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("edge env: the Redis transport is chosen by configuration alone", () => {
  it("selects RESP over sockets from REDIS_URL", () => {
    expect(parseEdgeEnv({ API_KEY_HASHES, REDIS_URL: "rediss://:pw@redis.example:6380" }).redis)
      .toEqual({ transport: "socket", url: "rediss://:pw@redis.example:6380" });
  });

  it("selects Upstash REST from its URL and token", () => {
    const env = parseEdgeEnv({ API_KEY_HASHES, UPSTASH_REDIS_REST_URL: "https://eu1-x.upstash.io", UPSTASH_REDIS_REST_TOKEN: "tok" });
    expect(env.redis).toEqual({ transport: "upstash", url: "https://eu1-x.upstash.io", token: "tok" });
  });

  it("lists a missing transport together with every other problem", () => {
    const message = problems({});
    expect(message).toMatch(/API_KEY_HASHES/);
    expect(message).toMatch(/REDIS_URL: required \(or UPSTASH_REDIS_REST_URL \+ UPSTASH_REDIS_REST_TOKEN\)/);
  });

  it("refuses both transports at once, and a REST URL without its token", () => {
    expect(problems({ API_KEY_HASHES, REDIS_URL: "redis://h", UPSTASH_REDIS_REST_URL: "https://x.upstash.io" }))
      .toMatch(/not both[\s\S]*UPSTASH_REDIS_REST_TOKEN: required with UPSTASH_REDIS_REST_URL/);
  });

  it("refuses plain http to a remote host (the token would travel in clear) but allows localhost", () => {
    const secret = "do-not-print-me";
    const message = problems({ API_KEY_HASHES, UPSTASH_REDIS_REST_URL: "http://x.upstash.io", UPSTASH_REDIS_REST_TOKEN: secret });
    expect(message).toMatch(/UPSTASH_REDIS_REST_URL: must be https:\/\//);
    expect(message).not.toContain(secret);
    const local = { API_KEY_HASHES, UPSTASH_REDIS_REST_URL: "http://127.0.0.1:8079", UPSTASH_REDIS_REST_TOKEN: "t" };
    expect(parseEdgeEnv(local).redis.transport).toBe("upstash");
  });
});
