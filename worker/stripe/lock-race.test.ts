// Item: one lock order for Stripe events. With STRIPE_SECRET_KEY set a checkout writes both the
// customer and the subscription, and a customer.subscription.* event writes the subscription and
// (a placeholder of) the customer: the two race on the same rows. Driven through the real handler
// (the real Stripe SDK against the local stand-in) on real Postgres, all pairs at once.
import { inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { stripeCustomers } from "../../shared/db/stripe-customers.ts";
import { stripeSubscriptions } from "../../shared/db/stripe-subscriptions.ts";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import { StripeWebhookJob } from "../../shared/jobs/stripe-webhook.ts";
import { createDb, type Database } from "../db.ts";
import type { JobContext } from "../runner.ts";
import { startFakeStripe, type FakeStripe } from "../../tools/testing/fake-stripe.ts";
import { memoryLog } from "../../tools/testing/fixtures.ts";
import { customerLifecycle, lifecycleIds, withQuantity, type StripeEventFixture } from "../../tools/testing/stripe-fixtures.ts";
import { createStripeApi, createStripeWebhookHandler } from "./handler.ts";

const PAIRS = 150;
// Pairs per wave: measured on the old per-object lock order, 10 gave the most deadlocks (65 of 150).
const WAVE = 10;

let database: Database;
let stripe: FakeStripe;
beforeAll(async () => {
  // A pool wide enough that many pairs are inside their transactions at the same moment.
  database = createDb(inject("databaseUrl"), { driver: "pg", max: 40 });
  stripe = await startFakeStripe();
});
afterAll(async () => {
  await stripe.close();
  await database.close();
});

function job(event: StripeEventFixture): StripeWebhookJob {
  return StripeWebhookJob.parse({ id: event.id, type: event.type, created: event.created, livemode: false, event });
}

/** True when `err` or anything in its cause chain is Postgres's `deadlock detected` (40P01). */
function isDeadlock(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === "40P01") return true;
  }
  return false;
}

describe("Stripe events of one customer racing each other", () => {
  it(`${PAIRS} concurrent checkout + subscription.created pairs: no deadlock, every event PROCESSED, rows correct`, async () => {
    const logs = memoryLog();
    const handler = createStripeWebhookHandler(database.db, {
      stripe: createStripeApi({ secretKey: "sk_test_51LockRaceKeyForTheLocalStandIn", apiBaseUrl: stripe.url }),
    });
    const ctx = (jobId: string): JobContext => ({ queue: "stripe-webhook", jobId, attempt: 1, maxAttempts: 5, isFinalAttempt: false, log: logs.log });

    const pairs = Array.from({ length: PAIRS }, () => {
      const ids = lifecycleIds();
      const [checkout, created] = customerLifecycle(ids);
      // Stripe's current state differs from the created event's (3 seats, not 1), so the row shows
      // which write won: the created event (same second, higher rank) must.
      stripe.putSubscription(withQuantity(created!.data.object, 3));
      return { ids, checkout: checkout!, created: created! };
    });

    // Line each wave of pairs up: the checkouts wait on their Stripe fetch; the fetches are
    // answered and the subscription events start at the same moment, so each pair's two
    // transactions run side by side.
    const results: Array<PromiseSettledResult<unknown>> = [];
    for (let i = 0; i < PAIRS; i += WAVE) {
      const wave = pairs.slice(i, i + WAVE);
      stripe.hold();
      const checkouts = wave.map((p) => handler(job(p.checkout), ctx(p.checkout.id)));
      await stripe.held(wave.length);
      stripe.release();
      const createds = wave.map((p) => handler(job(p.created), ctx(p.created.id)));
      results.push(...(await Promise.allSettled([...checkouts, ...createds])));
    }
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    const deadlocks = rejected.filter((r) => isDeadlock(r.reason)).length;
    expect({ deadlocks, otherFailures: rejected.length - deadlocks }).toEqual({ deadlocks: 0, otherFailures: 0 });

    const eventIds = pairs.flatMap((p) => [p.checkout.id, p.created.id]);
    const events = await database.db.select().from(webhookEvents).where(inArray(webhookEvents.stripeEventId, eventIds));
    expect(events).toHaveLength(2 * PAIRS);
    expect(events.filter((e) => e.status !== "PROCESSED" || e.attempts !== 1 || e.outcome !== "applied")).toEqual([]);

    const customers = await database.db.select().from(stripeCustomers).where(inArray(stripeCustomers.stripeCustomerId, pairs.map((p) => p.ids.customer)));
    const subscriptions = await database.db
      .select()
      .from(stripeSubscriptions)
      .where(inArray(stripeSubscriptions.stripeSubscriptionId, pairs.map((p) => p.ids.subscription)));
    const customerById = new Map(customers.map((c) => [c.stripeCustomerId, c]));
    const subscriptionById = new Map(subscriptions.map((s) => [s.stripeSubscriptionId, s]));
    for (const p of pairs) {
      expect(customerById.get(p.ids.customer)).toMatchObject({ email: "ada@example.com", checkoutSessionId: p.ids.session, lastEventId: p.checkout.id });
      expect(subscriptionById.get(p.ids.subscription)).toMatchObject({ stripeCustomerId: p.ids.customer, status: "active", quantity: 1, lastEventId: p.created.id, lastEventRank: 1 });
    }
    // Every checkout fetched its subscription once: the race ran with the key's code path.
    expect(stripe.requests.filter((r) => r.path.startsWith("/v1/subscriptions/"))).toHaveLength(PAIRS);
  }, 120_000);
});
