import { integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import { createdAt } from "./columns.ts";

/** One row per email job (keyed by the job id); tracks delivery to the provider. */
export const emailMessages = pgTable("email_messages", {
  jobId: text("job_id").primaryKey(),
  status: text("status", { enum: ["queued", "sent", "failed"] }).notNull(),
  /** "resend" or "capture" (local development without an API key). */
  provider: text("provider").notNull(),
  providerId: text("provider_id"),
  toAddresses: jsonb("to_addresses").$type<string[]>().notNull(),
  subject: text("subject").notNull(),
  attempts: integer("attempts").notNull().default(0),
  error: text("error"),
  /** Full message as handed to the provider; for the local capture this is what a developer reads. */
  message: jsonb("message").$type<Record<string, unknown>>().notNull(),
  ...createdAt,
  sentAt: timestamp("sent_at", { withTimezone: true, mode: "date" }),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
});
