import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineJob, queueNameProblem } from "./contract.ts";
import { QUEUE_NAMES } from "./registry.ts";

describe("queue names", () => {
  it("accepts every registered queue and refuses names that would share keys or break URLs", () => {
    for (const q of QUEUE_NAMES) expect(queueNameProblem(q), q).toBeUndefined();
    for (const bad of ["edgefleet", "a:b", "Reports", "", "-x", "a/b", "x".repeat(65)]) expect(queueNameProblem(bad), bad).toBeTypeOf("string");
  });

  it("refuses a contract on a reserved queue name when it is defined, not when a job first runs", () => {
    expect(() => defineJob({ queue: "edgefleet", name: "x", schema: z.object({}), defaults: {} })).toThrow(/reserved for the fleet/);
  });
});
