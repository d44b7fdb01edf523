import { index, integer, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import { createdAt } from "./columns.ts";
import { stripeVersion } from "./stripe-version.ts";

/** Each invoice's latest known payment state, from `invoice.paid` / `invoice.payment_failed`. */
export const stripeInvoices = pgTable(
  "stripe_invoices",
  {
    stripeInvoiceId: text("stripe_invoice_id").primaryKey(),
    stripeCustomerId: text("stripe_customer_id").notNull(),
    stripeSubscriptionId: text("stripe_subscription_id"),
    /** Stripe's status: draft, open, paid, uncollectible, void. */
    status: text("status").notNull(),
    /** Minor units (cents) of `currency`. */
    amountDue: integer("amount_due").notNull(),
    amountPaid: integer("amount_paid").notNull(),
    currency: text("currency").notNull(),
    attemptCount: integer("attempt_count").notNull().default(0),
    paidAt: timestamp("paid_at", { withTimezone: true, mode: "date" }),
    ...stripeVersion,
    ...createdAt,
  },
  (t) => [index("stripe_invoices_customer_idx").on(t.stripeCustomerId)],
);
