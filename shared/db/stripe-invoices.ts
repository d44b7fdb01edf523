import { bigint, index, integer, pgTable, text, timestamp } from "drizzle-orm/pg-core";
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
    /**
     * Minor units of `currency`. bigint: zero-decimal and high-denomination currencies pass 2^31
     * quickly (IDR 2,500,000,000 is an ordinary B2B invoice). Read as a JS number, exact up to
     * 2^53 − 1 (9e15 minor units) — beyond any amount Stripe accepts (its limit is 8 digits
     * before the decimal for most currencies, 12 for a few).
     */
    amountDue: bigint("amount_due", { mode: "number" }).notNull(),
    amountPaid: bigint("amount_paid", { mode: "number" }).notNull(),
    currency: text("currency").notNull(),
    attemptCount: integer("attempt_count").notNull().default(0),
    paidAt: timestamp("paid_at", { withTimezone: true, mode: "date" }),
    ...stripeVersion,
    ...createdAt,
  },
  (t) => [index("stripe_invoices_customer_idx").on(t.stripeCustomerId)],
);
