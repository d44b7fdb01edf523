import { getTableColumns, sql, type SQL, type Table } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import { z } from "zod";
import { stripeCustomers } from "../../shared/db/stripe-customers.ts";
import { stripeInvoices } from "../../shared/db/stripe-invoices.ts";
import { stripeSubscriptions } from "../../shared/db/stripe-subscriptions.ts";
import type { StripeWebhookJob } from "../../shared/jobs/stripe-webhook.ts";
import type { Db } from "../db.ts";
import { PermanentError } from "../runner.ts";

/** A transaction handle; Drizzle's tx has the same query API as the database. */
type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

export type Outcome = "applied" | "stale" | "ignored";

/**
 * Tiebreak between events of one object created in the same second (Stripe's `created` has
 * second resolution; checkout and subscription creation routinely share one): lifecycle order.
 * Remaining ties (two updates in one second) fall to the event id — arbitrary, but the same
 * winner in every delivery order, which is what replay-convergence needs.
 */
export const EVENT_RANK: Readonly<Record<string, number>> = {
  "checkout.session.completed": 0,
  "customer.subscription.created": 1,
  "customer.subscription.updated": 2,
  "customer.subscription.deleted": 3,
  "invoice.payment_failed": 1,
  "invoice.paid": 2,
};

const id = z.union([z.string(), z.object({ id: z.string() }).transform((o) => o.id)]);
const seconds = z.number().int().nullish().transform((s) => (s == null ? null : new Date(s * 1000)));

const CheckoutSession = z.object({
  id: z.string(),
  customer: id.nullish(),
  customer_details: z.object({ email: z.string().nullish(), name: z.string().nullish() }).nullish(),
});

export const Subscription = z.object({
  id: z.string(),
  customer: id,
  status: z.string(),
  cancel_at_period_end: z.boolean().default(false),
  canceled_at: seconds,
  ended_at: seconds,
  // Older API versions carry the period on the subscription, newer ones on each item.
  current_period_end: seconds.optional(),
  items: z.object({
    data: z.array(z.object({ quantity: z.number().int().nullish(), current_period_end: seconds.optional(), price: z.object({ id: z.string() }).nullish() })),
  }),
});
export type Subscription = z.output<typeof Subscription>;

const Invoice = z.object({
  id: z.string(),
  customer: id,
  status: z.string(),
  amount_due: z.number().int(),
  amount_paid: z.number().int(),
  currency: z.string(),
  attempt_count: z.number().int().default(0),
  // `subscription` moved under `parent.subscription_details` in API version 2025-03-31.
  subscription: id.nullish(),
  parent: z.object({ subscription_details: z.object({ subscription: id }).nullish() }).nullish(),
  status_transitions: z.object({ paid_at: seconds }).nullish(),
});

function parseObject<S extends z.ZodType>(schema: S, job: StripeWebhookJob): z.output<S> {
  const data = job.event.data;
  const object = typeof data === "object" && data !== null && !Array.isArray(data) ? data.object : undefined;
  const parsed = schema.safeParse(object);
  if (!parsed.success) {
    throw new PermanentError(`${job.type}: data.object ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  return parsed.data;
}

/**
 * One lock per customer, and no other advisory lock: every event that writes a customer's objects
 * (checkout → customer row + the fetched subscription; subscription events → subscription row +
 * placeholder customer row; invoices → invoice row + placeholder customer row) first takes
 * `stripe:customer:<id>` for the rest of its transaction. With a single lock per transaction
 * there is no order between locks to get wrong, and because every row an event writes belongs to
 * that one customer, two transactions never wait on each other's rows in opposite orders either.
 * The earlier per-object locks (checkout: customer then subscription; subscription event:
 * subscription, then the customer row) deadlocked 51 times in 150 races. The cost — one
 * customer's events apply one at a time — is nothing: a customer sees a handful of events a month.
 */
export function customerLockKey(customerId: string): string {
  return `stripe:customer:${customerId}`;
}

async function lockCustomer(tx: Tx, customerId: string): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${customerLockKey(customerId)}, 0))`);
}

function version(job: StripeWebhookJob) {
  return { lastEventCreated: job.created, lastEventRank: EVENT_RANK[job.type] ?? 0, lastEventId: job.id, updatedAt: new Date() };
}

/** ON CONFLICT … WHERE: only an event later in (created, rank, id) order may replace the row. */
function newer(table: { lastEventCreated: PgColumn; lastEventRank: PgColumn; lastEventId: PgColumn }): SQL {
  return sql`(excluded.last_event_created, excluded.last_event_rank, excluded.last_event_id collate "C")
    > (${table.lastEventCreated}, ${table.lastEventRank}, ${table.lastEventId} collate "C")`;
}

/** `excluded.<column>` for every column the upsert writes (except the key). */
function excludedSet(table: Table, values: Record<string, unknown>, key: string): Record<string, SQL> {
  const columns: Record<string, PgColumn | undefined> = getTableColumns(table);
  return Object.fromEntries(
    Object.keys(values)
      .filter((k) => k !== key)
      .map((k) => {
        const column = columns[k];
        if (!column) throw new Error(`no column for ${k}`);
        return [k, sql.raw(`excluded."${column.name}"`)];
      }),
  );
}

type VersionedTable = PgTable & { lastEventCreated: PgColumn; lastEventRank: PgColumn; lastEventId: PgColumn };

/**
 * Inserts the row, or replaces it only when this event is later in (created, rank, id) order than
 * the one that last wrote it. "stale" means a newer event already holds the row.
 */
async function upsertIfNewer<T extends VersionedTable>(
  tx: Tx,
  table: T,
  key: keyof T["$inferInsert"] & string,
  values: T["$inferInsert"],
): Promise<Outcome> {
  const target = getTableColumns(table)[key];
  if (!target) throw new Error(`no column for ${key}`);
  const rows = await tx
    .insert(table)
    .values(values)
    .onConflictDoUpdate({ target, set: excludedSet(table, values, key), setWhere: newer(table) })
    .returning({ id: target });
  return rows.length > 0 ? "applied" : "stale";
}

/** A customer row for an id seen before its checkout: version (0, 0, "") loses to any real event. */
async function ensureCustomer(tx: Tx, customerId: string): Promise<void> {
  await tx
    .insert(stripeCustomers)
    .values({ stripeCustomerId: customerId, lastEventCreated: 0, lastEventRank: 0, lastEventId: "" })
    .onConflictDoNothing();
}

/** The caller holds the lock of `object.customer` (a subscription never changes customer). */
async function writeSubscription(tx: Tx, job: StripeWebhookJob, object: Subscription): Promise<Outcome> {
  await ensureCustomer(tx, object.customer);
  const item = object.items.data[0];
  const values = {
    stripeSubscriptionId: object.id,
    stripeCustomerId: object.customer,
    status: object.status,
    priceId: item?.price?.id ?? null,
    quantity: item?.quantity ?? null,
    currentPeriodEnd: item?.current_period_end ?? object.current_period_end ?? null,
    cancelAtPeriodEnd: object.cancel_at_period_end,
    canceledAt: object.canceled_at,
    endedAt: object.ended_at,
    ...version(job),
  };
  return upsertIfNewer(tx, stripeSubscriptions, "stripeSubscriptionId", values);
}

/**
 * `fetched`: the checkout's subscription as the Stripe API has it now (STRIPE_SECRET_KEY set),
 * versioned as the checkout event (rank 0), so any subscription event from that second on
 * replaces it. The caller has checked it belongs to the session's customer.
 */
async function applyCheckout(tx: Tx, job: StripeWebhookJob, fetched: Subscription | undefined): Promise<Outcome> {
  const session = parseObject(CheckoutSession, job);
  // Guest checkouts (payment mode without a customer) leave nothing to attach the identity to.
  if (!session.customer) return "ignored";
  await lockCustomer(tx, session.customer);
  const values = {
    stripeCustomerId: session.customer,
    email: session.customer_details?.email ?? null,
    name: session.customer_details?.name ?? null,
    checkoutSessionId: session.id,
    ...version(job),
  };
  const outcome = await upsertIfNewer(tx, stripeCustomers, "stripeCustomerId", values);
  if (fetched) await writeSubscription(tx, job, fetched);
  return outcome;
}

async function applyInvoice(tx: Tx, job: StripeWebhookJob): Promise<Outcome> {
  const invoice = parseObject(Invoice, job);
  await lockCustomer(tx, invoice.customer);
  await ensureCustomer(tx, invoice.customer);
  const values = {
    stripeInvoiceId: invoice.id,
    stripeCustomerId: invoice.customer,
    stripeSubscriptionId: invoice.parent?.subscription_details?.subscription ?? invoice.subscription ?? null,
    status: invoice.status,
    amountDue: invoice.amount_due,
    amountPaid: invoice.amount_paid,
    currency: invoice.currency,
    attemptCount: invoice.attempt_count,
    paidAt: invoice.status_transitions?.paid_at ?? null,
    ...version(job),
  };
  return upsertIfNewer(tx, stripeInvoices, "stripeInvoiceId", values);
}

async function applySubscription(tx: Tx, job: StripeWebhookJob): Promise<Outcome> {
  const object = parseObject(Subscription, job);
  await lockCustomer(tx, object.customer);
  return writeSubscription(tx, job, object);
}

/**
 * Applies one event inside the caller's transaction. Unknown types change nothing. `fetched` is
 * the checkout's subscription from the Stripe API, if the caller fetched one.
 */
export async function applyEvent(tx: Tx, job: StripeWebhookJob, fetched?: Subscription): Promise<Outcome> {
  switch (job.type) {
    case "checkout.session.completed":
      return applyCheckout(tx, job, fetched);
    case "customer.subscription.created":
    case "customer.subscription.updated":
    case "customer.subscription.deleted":
      return applySubscription(tx, job);
    case "invoice.paid":
    case "invoice.payment_failed":
      return applyInvoice(tx, job);
    default:
      return "ignored";
  }
}

/** The subscription and customer a checkout created, when it created one (subscription mode). */
export function checkoutSubscription(job: StripeWebhookJob): { subscription: string; customer: string | undefined } | undefined {
  if (job.type !== "checkout.session.completed") return undefined;
  const parsed = z.object({ subscription: id.nullish(), customer: id.nullish() }).safeParse((job.event.data as { object?: unknown } | undefined)?.object);
  if (!parsed.success || !parsed.data.subscription) return undefined;
  return { subscription: parsed.data.subscription, customer: parsed.data.customer ?? undefined };
}
