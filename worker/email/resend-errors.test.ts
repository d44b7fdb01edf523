import { describe, expect, it } from "vitest";
import { PermanentError } from "../runner.ts";
import { resendFailure } from "./handler.ts";

describe("resendFailure", () => {
  it.each([
    [429, "rate_limit_exceeded", false],
    [409, "concurrent_idempotent_requests", false],
    [500, "internal_server_error", false],
    [null, "application_error", false],
    [422, "validation_error", true],
    [409, "invalid_idempotent_request", true],
    [403, "invalid_api_key", true],
    [404, "not_found", true],
  ] as const)("status %s %s → permanent: %s", (statusCode, name, permanent) => {
    const err = resendFailure({ statusCode, name, message: "m" });
    expect(err instanceof PermanentError).toBe(permanent);
    expect(err.message).toContain(name);
  });
});
