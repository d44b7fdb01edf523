import { boolean, index, integer, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import { createdAt } from "./columns.ts";
import { stripeVersion } from "./stripe-version.ts";

/** Each subscription's latest known state: a snapshot of the newest event's `data.object`. */
export const stripeSubscriptions = pgTable(
  "stripe_subscriptions",
  {
    stripeSubscriptionId: text("stripe_subscription_id").primaryKey(),
    stripeCustomerId: text("stripe_customer_id").notNull(),
    /** Stripe's status: incomplete, trialing, active, past_due, canceled, unpaid, paused, … */
    status: text("status").notNull(),
    priceId: text("price_id"),
    quantity: integer("quantity"),
    currentPeriodEnd: timestamp("current_period_end", { withTimezone: true, mode: "date" }),
    cancelAtPeriodEnd: boolean("cancel_at_period_end").notNull().default(false),
    canceledAt: timestamp("canceled_at", { withTimezone: true, mode: "date" }),
    endedAt: timestamp("ended_at", { withTimezone: true, mode: "date" }),
    ...stripeVersion,
    ...createdAt,
  },
  (t) => [index("stripe_subscriptions_customer_idx").on(t.stripeCustomerId)],
);
