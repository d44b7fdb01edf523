// The benchmark's own checks: figures from a run that lost jobs, rows or deliveries mean nothing,
// so such a run fails (bench.ts exits 1) instead of printing a plausible table. Targets (edge ≥
// 80 % of the empty Worker, …) are results, not checks: missing one is reported, not a failure.
import type { DrainRun } from "./drain.ts";
import type { ReportInput } from "./report.ts";

export type VerifiedSections = Omit<ReportInput, "machine" | "totalSeconds">;

/** One line per failed check; empty when the run is sound. */
export function verifyReport(report: VerifiedSections): string[] {
  const failures: string[] = [];
  const fail = (line: string) => void failures.push(line);

  for (const r of report.enqueue?.results ?? []) {
    // Only the edge and Queue.add enqueue; the empty Worker and the probes write no job.
    if (r.name !== "edge" && r.name !== "node") continue;
    if (r.errors > 0) fail(`enqueue ${r.name}: ${r.errors} requests failed (${r.firstError ?? "no message"})`);
    if (r.latency && r.latency.errors > 0) fail(`enqueue ${r.name}: ${r.latency.errors} latency requests failed (${r.latency.firstError ?? "no message"})`);
    if (r.jobsInRedis !== r.accepted) fail(`enqueue ${r.name}: ${r.jobsInRedis} jobs in Redis for ${r.accepted} accepted requests`);
  }

  for (const r of report.transports?.results ?? []) {
    if (r.errors > 0) fail(`transport ${r.transport}: ${r.errors} enqueues failed (${r.firstError ?? "no message"})`);
    if (r.jobsInRedis !== r.accepted) fail(`transport ${r.transport}: ${r.jobsInRedis} jobs in Redis for ${r.accepted} accepted enqueues`);
  }

  const drainRuns = (runs: DrainRun[], name: string) => {
    for (const [i, r] of runs.entries()) {
      const what = r.consumer === "noop" ? "completed jobs" : "audit_logs rows";
      if (r.failed > 0) fail(`${name} ${i + 1} (${r.consumer}): ${r.failed} jobs failed`);
      if (r.verified !== r.jobs) fail(`${name} ${i + 1} (${r.consumer}): ${r.verified} ${what} for ${r.jobs} jobs`);
    }
  };
  drainRuns(report.drain?.result.runs ?? [], "drain run");
  const remote = report.drain?.result.remote;
  if (remote) drainRuns(remote.runs, `drain run, Postgres ${remote.rttMs} ms away,`);

  const stripe = report.stripe?.result;
  if (stripe) {
    if (stripe.non200 > 0) fail(`stripe: ${stripe.non200} of ${stripe.deliveries} deliveries not answered 200`);
    if (stripe.rows !== stripe.events) fail(`stripe: ${stripe.rows} webhook_events rows for ${stripe.events} events`);
    if (stripe.processed !== stripe.events) fail(`stripe: ${stripe.processed} of ${stripe.events} events PROCESSED before the deadline`);
  }

  for (const j of report.commands?.jobs ?? []) {
    if (j.failed > 0) fail(`commands ${j.queue}: ${j.failed} jobs failed`);
  }
  return failures;
}
