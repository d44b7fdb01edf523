import { describe, expect, it } from "vitest";
import type { JobCost } from "./commands.ts";
import type { DrainRun } from "./drain.ts";
import type { EnqueueSettings, TargetName, TargetResult } from "./enqueue.ts";
import type { LoopResult } from "./load.ts";
import { emptyCounters } from "./redis-stats.ts";
import { emptyUsage } from "./system.ts";
import type { TransportResult } from "./transports.ts";
import { verifyReport, type VerifiedSections } from "./verify.ts";

const loop = (ok: number): LoopResult => ({ ok, errors: 0, wallMs: 1000, perSecond: ok, p50Ms: 1, p99Ms: 2, samplesMs: [] });

function target(name: TargetName, accepted: number | undefined): TargetResult {
  return {
    name, rounds: [loop(100)], perSecond: 100, p50Ms: 1, p99Ms: 2, ok: 100, errors: 0,
    redis: emptyCounters(), usage: emptyUsage(), accepted: accepted ?? 100,
    ...(accepted === undefined ? {} : { jobsInRedis: accepted }),
    latency: { samples: 10, p50Ms: 1, p99Ms: 2, p999Ms: Number.NaN, roundP50Ms: [1], errors: 0 },
  };
}

const drainRun = (consumer: DrainRun["consumer"]): DrainRun => ({
  consumer, jobs: 200, ms: 100, perSecond: 2000, preloadPerSecond: 5000, failed: 0, verified: 200, usage: emptyUsage(),
});

const transport = (name: "resp" | "rest"): TransportResult => ({ ...loop(70), transport: name, accepted: 70, jobsInRedis: 70, requestBytes: 600 });

const commandsRow = (queue: JobCost["queue"]): JobCost => ({
  queue, label: "generated id, no rate limit", jobs: 3, failed: 0, clientPerJob: 7, clientBilledPerJob: 6, allPerJob: 60,
  cost: { all: 60, billed: 59, writes: 25, bytes: 900 }, mix: "",
});

/** The shape of a sound run, as bench.ts assembles it (every section present). */
function soundRun(): VerifiedSections {
  return {
    enqueue: {
      settings: { concurrency: 25, requests: 100, warmup: 5, rounds: 1, requestTimeoutMs: 10_000, roundDeadlineMs: 60_000 } satisfies EnqueueSettings,
      results: [target("edge", 130), target("empty", undefined), target("socket-open", undefined), target("socket-ping", undefined), target("node", 130)],
    },
    transports: { requests: 20, concurrency: 25, results: [transport("resp"), transport("rest")] },
    drain: {
      jobs: 200, concurrency: 100, rounds: 1,
      result: { runs: [drainRun("fleet"), drainRun("fleet-serial"), drainRun("insert-only"), drainRun("noop")], perSecond: { fleet: 2000, "fleet-serial": 1500, "insert-only": 2100, noop: 4000 }, workerSettings: { drainDelaySeconds: 15, stalledIntervalMs: 60_000, lockDurationMs: 30_000 }, writesInFlight: 3, remote: { rttMs: 2, runs: [drainRun("fleet"), drainRun("fleet-serial")], perSecond: { fleet: 1800, "fleet-serial": 1500 } } },
    },
    stripe: {
      settings: { lifecycles: 2, concurrency: 25, workerConcurrency: 20, deadlineMs: 60_000 },
      result: { events: 14, deliveries: 28, acceptedPerSecond: 100, eventsPerSecond: 50, rows: 14, processed: 14, non200: 0 },
    },
    commands: { jobs: [commandsRow("audit"), commandsRow("email"), commandsRow("stripe-webhook")], idle: [] },
  };
}

describe("the benchmark's verification", () => {
  it("passes a run where every accepted job, row and delivery is accounted for", () => {
    expect(verifyReport(soundRun())).toEqual([]);
  });

  it("ignores missed targets and the probes' (job-less) figures", () => {
    const run = soundRun();
    run.drain!.result.perSecond = { fleet: 1, "fleet-serial": 1, "insert-only": 1, noop: 4000 };
    run.enqueue!.results[1]!.errors = 3;
    expect(verifyReport(run)).toEqual([]);
  });

  const cases: Array<[string, (r: VerifiedSections) => void, RegExp]> = [
    ["the edge left fewer jobs in Redis than it accepted", (r) => void (r.enqueue!.results[0]!.jobsInRedis = 129), /^enqueue edge: 129 jobs in Redis for 130 accepted requests$/],
    ["Queue.add requests failed", (r) => Object.assign(r.enqueue!.results[4]!, { errors: 2, firstError: "ECONNRESET" }), /^enqueue node: 2 requests failed \(ECONNRESET\)$/],
    ["edge latency requests failed", (r) => void (r.enqueue!.results[0]!.latency!.errors = 1), /^enqueue edge: 1 latency requests failed/],
    ["a transport lost a job", (r) => void (r.transports!.results[1]!.jobsInRedis = 69), /^transport rest: 69 jobs in Redis for 70 accepted enqueues$/],
    ["a transport enqueue failed", (r) => void (r.transports!.results[0]!.errors = 1), /^transport resp: 1 enqueues failed/],
    ["the fleet wrote fewer audit rows than jobs", (r) => void (r.drain!.result.runs[0]!.verified = 199), /^drain run 1 \(fleet\): 199 audit_logs rows for 200 jobs$/],
    ["drained jobs failed", (r) => void (r.drain!.result.runs[3]!.failed = 4), /^drain run 4 \(noop\): 4 jobs failed$/],
    ["the insert-only consumer lost a row", (r) => void (r.drain!.result.runs[2]!.verified = 150), /^drain run 3 \(insert-only\): 150 audit_logs rows for 200 jobs$/],
    ["the fleet lost a row against the farther database", (r) => void (r.drain!.result.remote!.runs[1]!.verified = 198), /^drain run, Postgres 2 ms away, 2 \(fleet-serial\): 198 audit_logs rows for 200 jobs$/],
    ["Stripe rows are off", (r) => void (r.stripe!.result.rows = 13), /^stripe: 13 webhook_events rows for 14 events$/],
    ["Stripe events were not all processed", (r) => void (r.stripe!.result.processed = 12), /^stripe: 12 of 14 events PROCESSED before the deadline$/],
    ["a Stripe delivery was refused", (r) => void (r.stripe!.result.non200 = 1), /^stripe: 1 of 28 deliveries not answered 200$/],
    ["a job failed while counting commands", (r) => void (r.commands!.jobs[1]!.failed = 1), /^commands email: 1 jobs failed$/],
  ];
  it.each(cases)("fails when %s", (_, spoil, line) => {
    const run = soundRun();
    spoil(run);
    const failures = verifyReport(run);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(line);
  });
});
