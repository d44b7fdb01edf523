import { integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";

/** Every Stripe event received, stored once; status PENDING → PROCESSED | FAILED. */
export const webhookEvents = pgTable("webhook_events", {
  stripeEventId: text("stripe_event_id").primaryKey(),
  type: text("type").notNull(),
  status: text("status", { enum: ["PENDING", "PROCESSED", "FAILED"] }).notNull().default("PENDING"),
  payload: jsonb("payload").$type<Record<string, unknown>>().notNull(),
  error: text("error"),
  attempts: integer("attempts").notNull().default(0),
  receivedAt: timestamp("received_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  processedAt: timestamp("processed_at", { withTimezone: true, mode: "date" }),
});
