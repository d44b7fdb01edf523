// The checkout handler with STRIPE_SECRET_KEY set: the real Stripe SDK, built by the production
// createHandlers, talking to a local Stripe stand-in through STRIPE_API_BASE_URL.
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stripeCustomers } from "../../shared/db/stripe-customers.ts";
import { stripeSubscriptions } from "../../shared/db/stripe-subscriptions.ts";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import { StripeWebhookJob, stripeWebhookContract } from "../../shared/jobs/stripe-webhook.ts";
import type { Database } from "../db.ts";
import { createHandlers } from "../fleet.ts";
import { startFakeStripe, type FakeStripe } from "../../tools/testing/fake-stripe.ts";
import { eventually, memoryLog, settled, startTestFleet, testDb, type TestFleet } from "../../tools/testing/fixtures.ts";
import { customerLifecycle, lifecycleIds, stripeId, withQuantity, type StripeEventFixture } from "../../tools/testing/stripe-fixtures.ts";

const SECRET_KEY = "sk_test_51FakeKeyForTheLocalStripeStandIn";
const DAY = 86_400;

let database: Database;
let stripe: FakeStripe;
let t: TestFleet;
const logs = memoryLog();
beforeAll(async () => {
  database = testDb();
  stripe = await startFakeStripe();
  const handlers = createHandlers(database.db, {
    auditBatchMax: 500,
    resendApiKey: undefined,
    resendBaseUrl: undefined,
    emailFrom: "a@example.com",
    stripeSecretKey: SECRET_KEY,
    stripeApiBaseUrl: stripe.url,
  });
  // A short outage hold-off so the outage tests see several runs quickly.
  t = await startTestFleet({ handlers, scripts: [], log: logs.log }, { queues: ["stripe-webhook"], outageBackoffMinMs: 100, outageBackoffMaxMs: 500 });
});
afterAll(async () => {
  await t.stop();
  await stripe.close();
  await database.close();
});

/** A fresh customer's events: [checkout, created (active, 1 seat), …, updated at +1 day (2 seats), …]. */
function lifecycle() {
  const ids = lifecycleIds();
  const events = customerLifecycle(ids);
  const subscriptionAt = (i: number) => events[i]!.data.object as { id: string } & Record<string, unknown>;
  return { ids, events, checkout: events[0]!, subscriptionAt };
}

async function add(event: StripeEventFixture, opts: { attempts?: number } = {}) {
  const data = StripeWebhookJob.parse({ id: event.id, type: event.type, created: event.created, livemode: false, event });
  return t.add(stripeWebhookContract, data, { jobId: event.id, ...opts });
}

async function run(event: StripeEventFixture) {
  const job = await add(event);
  return settled(t.queue("stripe-webhook"), job.id!);
}

const requestsFor = (subscriptionId: string) => stripe.requests.filter((r) => r.path.includes(subscriptionId));
const eventRow = async (id: string) => (await database.db.select().from(webhookEvents).where(eq(webhookEvents.stripeEventId, id)))[0];
const subscriptionRow = async (id: string) =>
  (await database.db.select().from(stripeSubscriptions).where(eq(stripeSubscriptions.stripeSubscriptionId, id)))[0];

describe("checkout.session.completed with a Stripe secret key", () => {
  it("fetches the subscription once with the secret key and stores it as Stripe has it", async () => {
    const { ids, checkout, subscriptionAt } = lifecycle();
    stripe.putSubscription(subscriptionAt(1));
    const job = await run(checkout);
    expect(job.returnvalue).toEqual({ status: "processed", outcome: "applied" });
    expect(requestsFor(ids.subscription)).toEqual([
      { method: "GET", path: `/v1/subscriptions/${ids.subscription}`, authorization: `Bearer ${SECRET_KEY}` },
    ]);
    expect(await subscriptionRow(ids.subscription)).toMatchObject({
      stripeCustomerId: ids.customer,
      status: "active",
      priceId: "price_pro_monthly",
      quantity: 1,
      currentPeriodEnd: new Date((ids.start + 30 * DAY) * 1000),
      // Versioned as the checkout event, so any subscription event from that second on replaces it.
      lastEventId: checkout.id,
      lastEventRank: 0,
    });
    expect(await eventRow(checkout.id)).toMatchObject({ status: "PROCESSED", attempts: 1, error: null });
  });

  it("lets a later customer.subscription.updated event replace the fetched state", async () => {
    const { ids, events, checkout, subscriptionAt } = lifecycle();
    stripe.putSubscription(subscriptionAt(1));
    await run(checkout);
    const updated = events[3]!;
    expect((await run(updated)).returnvalue).toEqual({ status: "processed", outcome: "applied" });
    expect(await subscriptionRow(ids.subscription)).toMatchObject({ quantity: 2, lastEventId: updated.id });
  });

  it("keeps a later customer.subscription.updated event processed before the checkout", async () => {
    const { ids, events, checkout, subscriptionAt } = lifecycle();
    const updated = events[3]!;
    await run(updated);
    // Stripe's answer (1 seat) is fetched, but it is versioned as the earlier checkout: stale.
    stripe.putSubscription(subscriptionAt(1));
    await run(checkout);
    expect(requestsFor(ids.subscription)).toHaveLength(1);
    expect(await subscriptionRow(ids.subscription)).toMatchObject({ quantity: 2, lastEventId: updated.id });
  });

  // Stripe's `created` has second resolution, so the version order's tie-breaks (EVENT_RANK, then
  // the event id) decide these rows. The ids are chosen so the id alone would pick the wrong
  // winner: "evt_0…" sorts before "evt_z…" (collation "C").
  const lowId = () => `evt_0${stripeId("x").slice(2)}`;
  const highId = () => `evt_z${stripeId("x").slice(2)}`;

  for (const order of ["checkout first", "subscription.created first"] as const) {
    it(`same second, ${order}: the created event's subscription wins over the checkout's fetched one`, async () => {
      const { ids, events, subscriptionAt } = lifecycle();
      // Same `created`; the checkout's id sorts higher, so only the rank can make created win.
      const checkout = { ...events[0]!, id: highId() };
      const created = { ...events[1]!, id: lowId() };
      expect(checkout.created).toBe(created.created);
      // Stripe's current state (3 seats) differs from the created event's (1 seat).
      stripe.putSubscription(withQuantity(subscriptionAt(1), 3));
      for (const e of order === "checkout first" ? [checkout, created] : [created, checkout]) {
        expect((await run(e)).returnvalue).toMatchObject({ status: "processed" });
      }
      expect(requestsFor(ids.subscription)).toHaveLength(1);
      expect(await subscriptionRow(ids.subscription)).toMatchObject({ quantity: 1, lastEventId: created.id, lastEventRank: 1 });
      const [customer] = await database.db.select().from(stripeCustomers).where(eq(stripeCustomers.stripeCustomerId, ids.customer));
      expect(customer).toMatchObject({ email: "ada@example.com", lastEventId: checkout.id });
    });
  }

  for (const order of ["lower id first", "higher id first"] as const) {
    it(`two customer.subscription.updated in the same second, ${order}: the same one wins (the higher event id)`, async () => {
      const { ids, events } = lifecycle();
      const updated = events[3]!;
      const object = updated.data.object;
      const low = { ...updated, id: lowId(), data: { ...updated.data, object: withQuantity(object, 4) } };
      const high = { ...updated, id: highId(), data: { ...updated.data, object: withQuantity(object, 5) } };
      for (const e of order === "lower id first" ? [low, high] : [high, low]) {
        expect((await run(e)).returnvalue).toMatchObject({ status: "processed" });
      }
      expect(await subscriptionRow(ids.subscription)).toMatchObject({ quantity: 5, lastEventId: high.id, lastEventRank: 2 });
      expect(await eventRow(order === "lower id first" ? low.id : high.id)).toMatchObject({ status: "PROCESSED", outcome: "applied" });
      expect(await eventRow(order === "lower id first" ? high.id : low.id)).toMatchObject({ status: "PROCESSED", outcome: order === "lower id first" ? "applied" : "stale" });
    });
  }

  for (const failure of [500, 429, "reset"] as const) {
    it(`hands the job back without spending an attempt while Stripe answers ${failure}, then applies it`, async () => {
      const { ids, checkout, subscriptionAt } = lifecycle();
      stripe.answer(ids.subscription, failure);
      // One attempt only: if an outage spent it, the job would fail for good on the first run.
      const job = await add(checkout, { attempts: 1 });
      const queue = t.queue("stripe-webhook");
      // Two runs (each: the SDK's own request + 2 network retries) with the event still PENDING.
      const row = await eventually("two runs during the outage", async () => {
        const r = await eventRow(checkout.id);
        return r && r.attempts >= 2 && requestsFor(ids.subscription).length >= 6 ? r : undefined;
      });
      expect(row).toMatchObject({ status: "PENDING", error: expect.stringMatching(/^Stripe API (unavailable \(500 api_error\)|rate limit \(429 invalid_request_error rate_limit\)|unreachable \(StripeConnectionError\))$/) });
      expect(await queue.getJobState(job.id!)).not.toBe("failed");
      expect((await queue.getJob(job.id!))!.attemptsMade).toBe(0);
      expect(await subscriptionRow(ids.subscription)).toBeUndefined();
      expect(logs.lines.find((l) => l.jobId === job.id && l.outcome === "returned")).toMatchObject({ level: "warn", dependency: "stripe" });

      stripe.answer(ids.subscription, undefined);
      stripe.putSubscription(subscriptionAt(1));
      const done = await settled(queue, job.id!, 30_000);
      expect(done.returnvalue).toEqual({ status: "processed", outcome: "applied" });
      expect(await eventRow(checkout.id)).toMatchObject({ status: "PROCESSED", error: null });
      expect(await subscriptionRow(ids.subscription)).toMatchObject({ status: "active", lastEventId: checkout.id });
      expect(JSON.stringify(logs.lines)).not.toContain(SECRET_KEY);
    });
  }

  it("fails the event permanently (FAILED, no retry) when Stripe refuses the key, with no key or customer data in the error", async () => {
    const { ids, checkout } = lifecycle();
    stripe.answer(ids.subscription, 401);
    const job = await add(checkout, { attempts: 3 });
    const done = await settled(t.queue("stripe-webhook"), job.id!);
    expect(done.failedReason).toBe("Stripe API refused the request (401 invalid_request_error)");
    expect(done.attemptsMade).toBe(1);
    expect(await eventRow(checkout.id)).toMatchObject({ status: "FAILED", attempts: 1, error: "Stripe API refused the request (401 invalid_request_error)" });
    const logged = JSON.stringify(logs.lines.filter((l) => l.jobId === job.id));
    expect(logged).toContain("failed-permanently");
    for (const secret of [SECRET_KEY, "sk_test_", "ada@example.com", "Ada Lovelace"]) expect(logged).not.toContain(secret);
  });

  it("applies the checkout without the subscription, with a warning, when Stripe answers 404", async () => {
    const { ids, checkout } = lifecycle();
    stripe.answer(ids.subscription, 404);
    const job = await run(checkout);
    expect(job.returnvalue).toEqual({ status: "processed", outcome: "applied" });
    expect(job.attemptsMade).toBe(1);
    expect(requestsFor(ids.subscription)).toHaveLength(1);
    expect(await subscriptionRow(ids.subscription)).toBeUndefined();
    const [customer] = await database.db.select().from(stripeCustomers).where(eq(stripeCustomers.stripeCustomerId, ids.customer));
    expect(customer).toMatchObject({ email: "ada@example.com", checkoutSessionId: ids.session, lastEventId: checkout.id });
    expect(await eventRow(checkout.id)).toMatchObject({ status: "PROCESSED", attempts: 1, error: null });
    const line = logs.lines.find((l) => l.msg === "subscription not found at Stripe; applying checkout without it" && l.eventId === checkout.id);
    expect(line).toMatchObject({ level: "warn", subscriptionId: ids.subscription, livemode: false });
  });
});
