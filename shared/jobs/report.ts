import { z } from "zod";
import { defineJob } from "./contract.ts";

/**
 * The example job type that ships with edgefleet: one account's activity for one calendar month
 * (UTC), computed from the audit trail into one `reports` row. Two files make it a job type: this
 * contract and its handler, worker/report/handler.ts.
 */
export const ReportRequest = z.strictObject({
  /** The account whose audit events are counted (audit_logs.account_id). */
  accountId: z.string().min(1).max(200),
  /** Calendar month in UTC, `YYYY-MM`. */
  month: z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, "a month as YYYY-MM, e.g. 2026-11"),
});
export type ReportRequest = z.infer<typeof ReportRequest>;

export const reportContract = defineJob({
  queue: "report",
  name: "generate-report",
  schema: ReportRequest,
  defaults: {
    attempts: 3,
    backoff: { type: "exponential", delay: 2000 },
    removeOnComplete: 100,
    removeOnFail: 1000,
  },
  // Simple mode: while a report for this account and month is waiting or running, asking again
  // returns that job instead of queueing a second identical computation. Once it has finished, a
  // new request runs again (and picks up events recorded since).
  deduplication: { id: (r) => `${r.accountId}.${r.month}` },
  edge: {},
});
