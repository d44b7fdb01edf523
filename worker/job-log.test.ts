import type { Job } from "bullmq";
import { afterEach, describe, expect, it } from "vitest";
import { auditContract } from "../shared/jobs/audit.ts";
import { memoryLog, settled, startTestFleet, uniqueId, type TestFleet } from "../tools/testing/fixtures.ts";
import { createJobLog, type JobLogOptions } from "./job-log.ts";
import { createProcessor } from "./runner.ts";

/** A job log on a hand-driven clock: the summary timer never fires by itself, `flush()` stands in. */
function manual(options: JobLogOptions = {}) {
  const logs = memoryLog();
  let t = 0;
  const jobLog = createJobLog(logs.log, { summaryIntervalMs: 10_000, ...options, now: () => t, schedule: () => undefined });
  const complete = (n: number, durationMs = 2, queue = "audit") => {
    for (let i = 0; i < n; i++) jobLog.completed(queue, durationMs, { queue, jobId: `${queue}-${t}-${i}`, attempt: 1, durationMs, outcome: "completed" });
  };
  return { logs, jobLog, complete, advance: (ms: number) => void (t += ms) };
}

const completedLines = (lines: Array<Record<string, unknown>>) => lines.filter((l) => l.msg === "job completed");
const summaries = (lines: Array<Record<string, unknown>>) => lines.filter((l) => l.msg === "jobs completed (summary)");

describe("completed-job lines", () => {
  it("logs every completed job, with id, queue, attempt and duration, while a queue stays under the rate", () => {
    const { logs, jobLog, complete, advance } = manual({ perSecond: 5 });
    for (let s = 0; s < 4; s++) {
      complete(5);
      advance(1_000);
    }
    jobLog.flush();
    expect(completedLines(logs.lines)).toHaveLength(20);
    expect(logs.lines[0]).toMatchObject({ level: "info", queue: "audit", jobId: expect.any(String), attempt: 1, durationMs: 2 });
    expect(summaries(logs.lines)).toEqual([]);
  });

  it("above the rate logs the first lines of each second and folds the rest into one summary per queue", () => {
    const { logs, jobLog, complete, advance } = manual({ perSecond: 3 });
    complete(10, 4);
    complete(2, 8, "email");
    advance(1_000);
    complete(10, 6);
    advance(500);
    jobLog.flush();
    const lines = completedLines(logs.lines);
    expect(lines.filter((l) => l.queue === "audit")).toHaveLength(6); // 3 in each second
    expect(lines.filter((l) => l.queue === "email")).toHaveLength(2);
    expect(summaries(logs.lines)).toEqual([
      { level: "info", msg: "jobs completed (summary)", queue: "audit", intervalMs: 1_500, completed: 20, unlogged: 14, p50Ms: 4, p95Ms: 6, p99Ms: 6, maxMs: 6 },
    ]);
  });

  it("always logs a slow job, marked slow, even when the second's budget is spent", () => {
    const { logs, complete } = manual({ perSecond: 1, slowMs: 500 });
    complete(3, 2);
    complete(1, 750);
    expect(completedLines(logs.lines).map((l) => [l.durationMs, l.slow])).toEqual([
      [2, undefined],
      [750, true],
    ]);
  });

  it("logs every line with perSecond all (JOB_LOG_RATE=all)", () => {
    const { logs, jobLog, complete } = manual({ perSecond: "all" });
    complete(500);
    jobLog.flush();
    expect(completedLines(logs.lines)).toHaveLength(500);
    expect(summaries(logs.lines)).toEqual([]);
  });

  it("starts a new summary interval after the previous one ended", () => {
    const { logs, jobLog, complete, advance } = manual({ perSecond: 0 });
    complete(4, 1);
    jobLog.flush();
    advance(20_000);
    complete(2, 3);
    jobLog.flush();
    expect(summaries(logs.lines).map((l) => [l.completed, l.unlogged, l.maxMs])).toEqual([
      [4, 4, 1],
      [2, 2, 3],
    ]);
  });
});

describe("the runner with the budget spent", () => {
  const fakeJob = (id: string, data: unknown) =>
    ({ id, name: auditContract.name, data, attemptsMade: 0, opts: { attempts: 3 } }) as Job<unknown, unknown>;
  const valid = { id: "e1", name: "x", type: "domain", occurredAt: "2026-11-23T10:00:00Z", payload: {} };

  it("still logs every failure (permanent and retryable) with its job id while completions are only counted", async () => {
    const { logs, jobLog } = manual({ perSecond: 0 });
    let fail = false;
    const processor = createProcessor(auditContract, async () => {
      if (fail) throw new Error("db busy");
    }, { log: logs.log, jobLog });
    await processor(fakeJob("ok-1", valid));
    await processor(fakeJob("ok-2", valid));
    await expect(processor(fakeJob("bad", { ...valid, type: "nope" }))).rejects.toThrow(/invalid payload/);
    fail = true;
    await expect(processor(fakeJob("retry", valid))).rejects.toThrow();
    jobLog.flush();
    expect(logs.lines.filter((l) => l.msg === "job failed").map((l) => [l.jobId, l.level, l.outcome, l.queue, l.attempt, typeof l.durationMs])).toEqual([
      ["bad", "error", "failed-permanently", "audit", 1, "number"],
      ["retry", "warn", "will-retry", "audit", 1, "number"],
    ]);
    expect(completedLines(logs.lines)).toEqual([]);
    expect(summaries(logs.lines)).toMatchObject([{ queue: "audit", completed: 2, unlogged: 2 }]);
  });
});

describe("a fleet with JOB_LOG_RATE=0", () => {
  let t: TestFleet | undefined;
  afterEach(() => t?.stop());

  it("writes a summary of the completions it did not log when it closes, and logs the failed job", async () => {
    const logs = memoryLog();
    const noop = async () => undefined;
    t = await startTestFleet(
      { handlers: { audit: noop, email: noop, "stripe-webhook": noop, report: noop }, scripts: [], log: logs.log },
      { queues: ["audit"], jobLog: { perSecond: 0, slowMs: 60_000 } },
    );
    const ids = Array.from({ length: 5 }, () => uniqueId("evt"));
    for (const id of ids) await t.add(auditContract, { id, name: "n", type: "domain", occurredAt: "2026-11-23T10:00:00Z", payload: {} }, { jobId: id });
    const bad = await t.add(auditContract, { id: "x", name: "", type: "nope" } as never, { jobId: uniqueId("bad") });
    for (const id of [...ids, bad.id!]) await settled(t.queue("audit"), id);
    await t.stop();
    t = undefined;
    expect(completedLines(logs.lines)).toEqual([]);
    expect(logs.lines.find((l) => l.msg === "job failed")).toMatchObject({ jobId: bad.id, queue: "audit", attempt: 1, outcome: "failed-permanently" });
    expect(summaries(logs.lines)).toMatchObject([{ queue: "audit", completed: 5, unlogged: 5 }]);
  });
});
