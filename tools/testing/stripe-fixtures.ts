// Realistic Stripe events (shaped like API version 2026-10-28 payloads: the invoice's subscription
// under `parent.subscription_details`, billing periods on the subscription items) and correctly
// signed deliveries of them. Runtime-neutral (no node:*): used by the edge's workerd tests, the
// worker's end-to-end tests, the benchmark and `npm run stripe:send`.
import Stripe from "stripe";

export type JsonObject = { [key: string]: unknown };
export interface StripeEventFixture extends JsonObject {
  id: string;
  object: "event";
  type: string;
  created: number;
  data: { object: JsonObject; previous_attributes?: JsonObject };
}

export interface LifecycleIds {
  customer: string;
  subscription: string;
  session: string;
  invoices: [string, string];
  /** Unix seconds of the checkout; later events follow at fixed offsets. */
  start: number;
}

const API_VERSION = "2026-10-28.endive";
const DAY = 86_400;

/** A random Stripe-style id: prefix + 24 base62 characters. */
export function stripeId(prefix: string): string {
  const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return `${prefix}_${[...bytes].map((b) => alphabet[b % 62]).join("")}`;
}

export function lifecycleIds(start = Math.floor(Date.now() / 1000)): LifecycleIds {
  return {
    customer: stripeId("cus"),
    subscription: stripeId("sub"),
    session: stripeId("cs_test"),
    invoices: [stripeId("in"), stripeId("in")],
    start,
  };
}

function event(type: string, created: number, object: JsonObject, previous?: JsonObject): StripeEventFixture {
  return {
    id: stripeId("evt"),
    object: "event",
    api_version: API_VERSION,
    created,
    data: { object, ...(previous ? { previous_attributes: previous } : {}) },
    livemode: false,
    pending_webhooks: 1,
    request: { id: stripeId("req"), idempotency_key: crypto.randomUUID() },
    type,
  };
}

function subscription(ids: LifecycleIds, fields: { status: string; quantity: number; at: number }): JsonObject {
  const periodStart = ids.start;
  return {
    id: ids.subscription,
    object: "subscription",
    customer: ids.customer,
    status: fields.status,
    cancel_at_period_end: false,
    canceled_at: fields.status === "canceled" ? fields.at : null,
    ended_at: fields.status === "canceled" ? fields.at : null,
    created: ids.start,
    currency: "eur",
    latest_invoice: ids.invoices[0],
    livemode: false,
    metadata: {},
    items: {
      object: "list",
      has_more: false,
      data: [
        {
          id: `si_${ids.subscription.slice(4)}`,
          object: "subscription_item",
          quantity: fields.quantity,
          current_period_start: periodStart,
          current_period_end: periodStart + 30 * DAY,
          price: { id: "price_pro_monthly", object: "price", currency: "eur", unit_amount: 2900, product: "prod_pro", recurring: { interval: "month", interval_count: 1 } },
        },
      ],
    },
  };
}

function invoice(ids: LifecycleIds, n: 0 | 1, status: "paid" | "open", at: number): JsonObject {
  const amount = n === 0 ? 2900 : 5800;
  return {
    id: ids.invoices[n],
    object: "invoice",
    customer: ids.customer,
    customer_email: "ada@example.com",
    status,
    amount_due: amount,
    amount_paid: status === "paid" ? amount : 0,
    amount_remaining: status === "paid" ? 0 : amount,
    attempt_count: status === "paid" ? 1 : 2,
    billing_reason: n === 0 ? "subscription_create" : "subscription_cycle",
    currency: "eur",
    created: at,
    parent: { type: "subscription_details", subscription_details: { subscription: ids.subscription, metadata: {} } },
    status_transitions: { finalized_at: at, paid_at: status === "paid" ? at : null },
  };
}

/**
 * One customer's life, in the order Stripe created the events: checkout, subscription created (in
 * the same second — the tiebreak case), two updates, first invoice paid, the renewal's payment
 * failing, then the subscription deleted.
 */
export function customerLifecycle(ids: LifecycleIds = lifecycleIds()): StripeEventFixture[] {
  const t = ids.start;
  return [
    event("checkout.session.completed", t, {
      id: ids.session, object: "checkout.session", mode: "subscription", status: "complete", payment_status: "paid",
      customer: ids.customer, subscription: ids.subscription, amount_total: 2900, currency: "eur", created: t - 60,
      customer_details: { email: "ada@example.com", name: "Ada Lovelace", address: { country: "GB" } }, metadata: {},
    }),
    event("customer.subscription.created", t, subscription(ids, { status: "active", quantity: 1, at: t })),
    event("invoice.paid", t + 2, invoice(ids, 0, "paid", t + 2)),
    event("customer.subscription.updated", t + DAY, subscription(ids, { status: "active", quantity: 2, at: t + DAY }), { quantity: 1 }),
    event("invoice.payment_failed", t + 30 * DAY, invoice(ids, 1, "open", t + 30 * DAY)),
    event("customer.subscription.updated", t + 30 * DAY + 5, subscription(ids, { status: "past_due", quantity: 2, at: t + 30 * DAY + 5 }), { status: "active" }),
    event("customer.subscription.deleted", t + 40 * DAY, subscription(ids, { status: "canceled", quantity: 2, at: t + 40 * DAY })),
  ];
}

/** A copy of a subscription object (as in the fixtures) with another seat count on its item. */
export function withQuantity(subscription: JsonObject, quantity: number): JsonObject & { id: string } {
  const items = subscription.items as { data: JsonObject[] } & JsonObject;
  return {
    ...(subscription as JsonObject & { id: string }),
    items: { ...items, data: items.data.map((item, i) => (i === 0 ? { ...item, quantity } : item)) },
  };
}

/** One event of `type` from a fresh lifecycle (`stripe:send`); unknown types get a bare object. */
export function sampleEvent(type: string): StripeEventFixture {
  const found = customerLifecycle(lifecycleIds()).find((e) => e.type === type);
  return found ?? event(type, Math.floor(Date.now() / 1000), { id: stripeId("obj"), object: type.split(".")[0] ?? "unknown" });
}

export const SAMPLE_EVENT_TYPES = [...new Set(customerLifecycle().map((e) => e.type))];

/** The body and `Stripe-Signature` header Stripe would send, signed with the SDK's test helper. */
export async function signedDelivery(
  payload: JsonObject | string,
  secret: string,
  timestamp = Math.floor(Date.now() / 1000),
): Promise<{ body: string; signature: string }> {
  const body = typeof payload === "string" ? payload : JSON.stringify(payload, null, 2);
  const signature = await Stripe.webhooks.generateTestHeaderStringAsync({
    payload: body,
    secret,
    timestamp,
    cryptoProvider: Stripe.createSubtleCryptoProvider(),
  });
  return { body, signature };
}

/** Posts one signed delivery of `event` to an edge, as Stripe would; returns status and JSON body. */
export async function deliver(
  edgeUrl: string,
  event: JsonObject,
  secret: string,
): Promise<{ status: number; body: unknown }> {
  const { body, signature } = await signedDelivery(event, secret);
  const res = await fetch(`${edgeUrl}/webhooks/stripe`, {
    method: "POST",
    headers: { "content-type": "application/json; charset=utf-8", "stripe-signature": signature, "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)" },
    body,
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : null };
}
