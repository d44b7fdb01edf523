import { UnrecoverableError, type Job } from "bullmq";
import { describe, expect, it } from "vitest";
import { auditContract } from "../shared/jobs/audit.ts";
import { classify, createProcessor, PermanentError, type FleetHandlers, type JobContext } from "./runner.ts";
import { memoryLog } from "../tools/testing/fixtures.ts";

const handler = async () => "ok";

// Compile-time check (tsc --noEmit): a handler map without every built-in queue does not type.
// @ts-expect-error 'stripe-webhook' is missing
const incomplete: FleetHandlers = { audit: handler, email: handler };
void incomplete;

function fakeJob(data: unknown, overrides: Partial<Job> = {}): Job<unknown, unknown> {
  return { id: "j1", name: auditContract.name, data, attemptsMade: 0, opts: { attempts: 3 }, ...overrides } as Job<unknown, unknown>;
}

const valid = { id: "e1", name: "x", type: "domain", occurredAt: "2026-11-23T10:00:00Z", payload: { secret: "s3cr3t" } };

describe("createProcessor", () => {
  it("hands the parsed payload and attempt info to the handler and logs one line without the payload", async () => {
    const logs = memoryLog();
    let seen: { data: unknown; ctx: JobContext } | undefined;
    const processor = createProcessor(auditContract, async (data, ctx) => ((seen = { data, ctx }), 7), logs.log);
    expect(await processor(fakeJob(valid, { attemptsMade: 2 }))).toBe(7);
    expect(seen?.data).toEqual(valid);
    expect(seen?.ctx).toMatchObject({ jobId: "j1", attempt: 3, maxAttempts: 3, isFinalAttempt: true });
    expect(logs.lines).toHaveLength(1);
    expect(logs.lines[0]).toMatchObject({ queue: "audit", jobId: "j1", name: "record-event", attempt: 3, outcome: "completed" });
    expect(JSON.stringify(logs.lines)).not.toContain("s3cr3t");
  });

  it("turns an invalid payload or a wrong job name into UnrecoverableError without calling the handler", async () => {
    let calls = 0;
    const processor = createProcessor(auditContract, async () => void calls++, memoryLog().log);
    await expect(processor(fakeJob({ ...valid, type: "other" }))).rejects.toBeInstanceOf(UnrecoverableError);
    await expect(processor(fakeJob(valid, { name: "other" }))).rejects.toThrow(/unexpected job name/);
    expect(calls).toBe(0);
  });

  it("rethrows transient failures as retryable and logs will-retry", async () => {
    const logs = memoryLog();
    const processor = createProcessor(auditContract, async () => Promise.reject(new Error("db busy")), logs.log);
    const err = await processor(fakeJob(valid)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(UnrecoverableError);
    // A plain Error's text may quote anything; only its name leaves the process.
    expect(logs.lines[0]).toMatchObject({ outcome: "will-retry", error: "Error" });
  });
});

describe("classify", () => {
  it("maps PermanentError to UnrecoverableError and leaves other errors retryable", () => {
    expect(classify(new PermanentError("no"))).toBeInstanceOf(UnrecoverableError);
    expect(classify(new Error("later"))).not.toBeInstanceOf(UnrecoverableError);
    expect(classify("text")).toBeInstanceOf(Error);
  });
});
