import { index, integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";

/** Every Stripe event received, stored once; status PENDING → PROCESSED | FAILED. */
export const webhookEvents = pgTable(
  "webhook_events",
  {
    stripeEventId: text("stripe_event_id").primaryKey(),
    type: text("type").notNull(),
    status: text("status", { enum: ["PENDING", "PROCESSED", "FAILED"] }).notNull().default("PENDING"),
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull(),
    error: text("error"),
    attempts: integer("attempts").notNull().default(0),
    receivedAt: timestamp("received_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    processedAt: timestamp("processed_at", { withTimezone: true, mode: "date" }),
    /** What processing did: "applied", "stale" (a newer event already wrote the object), "ignored". */
    outcome: text("outcome"),
    /**
     * Last time anything happened to the event: a run started, its failure was recorded, it was
     * processed or replayed. A PENDING event untouched for long has no job working on it (lost,
     * stalled, or a replay whose enqueue failed): `stripe:replay --list` shows it.
     */
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    /** Operator replays (`npm run stripe:replay`): how many, and the latest. */
    replayCount: integer("replay_count").notNull().default(0),
    replayedAt: timestamp("replayed_at", { withTimezone: true, mode: "date" }),
  },
  // The operator's "list events not PROCESSED" query.
  (t) => [index("webhook_events_status_idx").on(t.status)],
);
