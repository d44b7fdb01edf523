import { pgTable, text } from "drizzle-orm/pg-core";
import { createdAt } from "./columns.ts";
import { stripeVersion } from "./stripe-version.ts";

/**
 * Stripe customers, keyed by Stripe's id. Identity fields come from `checkout.session.completed`;
 * subscription and invoice events only make sure the row exists (their version columns start at
 * 0 so any checkout event replaces the placeholder). No foreign keys between the Stripe tables:
 * Stripe delivers out of order, so a subscription may land before its customer.
 */
export const stripeCustomers = pgTable("stripe_customers", {
  stripeCustomerId: text("stripe_customer_id").primaryKey(),
  email: text("email"),
  name: text("name"),
  /** The checkout session that last set the identity fields. */
  checkoutSessionId: text("checkout_session_id"),
  ...stripeVersion,
  ...createdAt,
});
