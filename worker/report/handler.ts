import { and, asc, count, eq, gte, lt } from "drizzle-orm";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import { reports, type ReportCount } from "../../shared/db/reports.ts";
import type { reportContract, ReportRequest } from "../../shared/jobs/report.ts";
import type { Db } from "../db.ts";
import type { Handler } from "../runner.ts";

/** What the job returns (stored by BullMQ as the job's return value): figures, never event data. */
export interface ReportResult {
  accountId: string;
  month: string;
  totalEvents: number;
}

/** `2026-11` → [2026-11-01T00:00Z, 2026-12-01T00:00Z). The contract has already checked the format. */
export function monthRange(month: string): { start: Date; end: Date } {
  const [year, mon] = month.split("-").map(Number) as [number, number];
  return { start: new Date(Date.UTC(year, mon - 1, 1)), end: new Date(Date.UTC(year, mon, 1)) };
}

/**
 * Counts the account's audit events of the month per name and type and writes them as the
 * month's one `reports` row (insert, or overwrite on the account+month key). The result depends
 * only on audit_logs, so a redelivered or repeated job rewrites the same figures — and a job run
 * after more events arrived brings the row up to date. Database failures are left to the runner:
 * an outage returns the job to wait without spending an attempt.
 */
export function createReportHandler(db: Db): Handler<typeof reportContract> {
  return async ({ accountId, month }: ReportRequest): Promise<ReportResult> => {
    const { start, end } = monthRange(month);
    const rows = await db
      .select({ name: auditLogs.eventName, type: auditLogs.eventType, count: count() })
      .from(auditLogs)
      .where(and(eq(auditLogs.accountId, accountId), gte(auditLogs.occurredAt, start), lt(auditLogs.occurredAt, end)))
      .groupBy(auditLogs.eventName, auditLogs.eventType)
      .orderBy(asc(auditLogs.eventName), asc(auditLogs.eventType));
    const counts: ReportCount[] = rows.map((r) => ({ name: r.name, type: r.type, count: r.count }));
    const totalEvents = counts.reduce((sum, c) => sum + c.count, 0);
    const figures = { totalEvents, counts, generatedAt: new Date() };
    await db
      .insert(reports)
      .values({ accountId, month, periodStart: start, periodEnd: end, ...figures })
      .onConflictDoUpdate({ target: [reports.accountId, reports.month], set: figures });
    return { accountId, month, totalEvents };
  };
}
