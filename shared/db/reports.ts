import { bigserial, integer, jsonb, pgTable, text, timestamp, unique } from "drizzle-orm/pg-core";
import { createdAt } from "./columns.ts";

/** One line of a report: how many audit events of one name and type the account recorded. */
export interface ReportCount {
  name: string;
  type: "domain" | "integration";
  count: number;
}

/**
 * Monthly activity reports (the `report` queue's example job type): one row per account and
 * month, rewritten in place each time the report is generated, so re-running a job is harmless.
 */
export const reports = pgTable(
  "reports",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    accountId: text("account_id").notNull(),
    /** `YYYY-MM`, the calendar month in UTC. */
    month: text("month").notNull(),
    /** The month as a half-open UTC range [periodStart, periodEnd). */
    periodStart: timestamp("period_start", { withTimezone: true, mode: "date" }).notNull(),
    periodEnd: timestamp("period_end", { withTimezone: true, mode: "date" }).notNull(),
    totalEvents: integer("total_events").notNull(),
    /** Sorted by name, then type. */
    counts: jsonb("counts").$type<ReportCount[]>().notNull(),
    /** When this row's figures were last computed. */
    generatedAt: timestamp("generated_at", { withTimezone: true, mode: "date" }).notNull(),
    ...createdAt,
  },
  (t) => [unique("reports_account_month_key").on(t.accountId, t.month)],
);
