import { bigserial, index, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import { createdAt } from "./columns.ts";

/** The audit trail: one row per event; `event_id` unique so a redelivered job adds nothing. */
export const auditLogs = pgTable(
  "audit_logs",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    eventId: text("event_id").notNull().unique(),
    eventName: text("event_name").notNull(),
    eventType: text("event_type", { enum: ["domain", "integration"] }).notNull(),
    occurredAt: timestamp("occurred_at", { withTimezone: true, mode: "date" }).notNull(),
    accountId: text("account_id"),
    workspaceId: text("workspace_id"),
    userId: text("user_id"),
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull(),
    /** Who sent the event, as authenticated by the edge (shared/jobs/audit.ts `Actor`); null before it was recorded. */
    actorType: text("actor_type", { enum: ["api_key", "user"] }),
    actorId: text("actor_id"),
    ...createdAt,
  },
  (t) => [index("audit_logs_account_occurred_idx").on(t.accountId, t.occurredAt)],
);
