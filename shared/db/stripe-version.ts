import { bigint, smallint, text, timestamp } from "drizzle-orm/pg-core";

/**
 * Which Stripe event last wrote a row, for the "an older event never overwrites newer state" rule.
 * Events are ordered by (created, rank, id): `created` is Stripe's second-resolution timestamp;
 * `rank` breaks ties between event types in lifecycle order (e.g. subscription created < updated <
 * deleted, invoice payment_failed < paid); the event id is a last, arbitrary but deterministic
 * tiebreak. A total order means every delivery order converges on the same final row.
 */
export const stripeVersion = {
  lastEventCreated: bigint("last_event_created", { mode: "number" }).notNull(),
  lastEventRank: smallint("last_event_rank").notNull(),
  lastEventId: text("last_event_id").notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
};
