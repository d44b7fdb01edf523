/**
 * wrangler.toml sets `nodejs_compat_do_not_populate_process_env`: the Worker's bindings (secrets
 * included) reach the edge only as `env`, never mirrored into `process.env`, where any bundled
 * library could read them. Runs inside workerd with the project's wrangler.toml.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

describe("Worker bindings", () => {
  it("are on env and not in process.env", () => {
    const bindings: Record<string, unknown> = { ...env };
    // A var from wrangler.toml and a binding the test config supplies (standing in for a secret).
    expect(bindings.QUEUE_PREFIX).toBe("bull");
    expect(typeof bindings.REDIS_URL).toBe("string");
    expect(process.env.QUEUE_PREFIX).toBeUndefined();
    expect(process.env.REDIS_URL).toBeUndefined();
  });
});
