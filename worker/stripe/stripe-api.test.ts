// The checkout handler with STRIPE_SECRET_KEY set: the real Stripe SDK, built by the production
// createHandlers, talking to a local Stripe stand-in through STRIPE_API_BASE_URL.
import type { Queue } from "bullmq";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stripeCustomers } from "../../shared/db/stripe-customers.ts";
import { stripeSubscriptions } from "../../shared/db/stripe-subscriptions.ts";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import { StripeWebhookJob, stripeWebhookContract } from "../../shared/jobs/stripe-webhook.ts";
import type { Database } from "../db.ts";
import { createHandlers } from "../fleet.ts";
import { startFakeStripe, type FakeStripe } from "../testing/fake-stripe.ts";
import { memoryLog, settled, startTestFleet, testDb, type TestFleet } from "../testing/fixtures.ts";
import { customerLifecycle, lifecycleIds, type StripeEventFixture } from "./fixtures.ts";

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
  t = await startTestFleet({ handlers, scripts: [], log: logs.log }, { queues: ["stripe-webhook"] });
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

async function add(event: StripeEventFixture, opts: { attempts?: number; backoff?: { type: "fixed"; delay: number } } = {}) {
  const data = StripeWebhookJob.parse({ id: event.id, type: event.type, created: event.created, livemode: false, event });
  return t.add(stripeWebhookContract, data, { jobId: event.id, ...opts });
}

async function run(event: StripeEventFixture) {
  const job = await add(event);
  return settled(t.queue("stripe-webhook"), job.id!);
}

async function waitForState(queue: Queue, jobId: string, state: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while ((await queue.getJobState(jobId)) !== state) {
    if (Date.now() > deadline) throw new Error(`job ${jobId} never reached ${state}`);
    await new Promise((r) => setTimeout(r, 20));
  }
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

  it("retries after a Stripe 500, leaving the event PENDING with the attempt counted", async () => {
    const { ids, checkout, subscriptionAt } = lifecycle();
    stripe.answer(ids.subscription, 500);
    // A long backoff holds the retry until the test promotes it.
    const job = await add(checkout, { attempts: 2, backoff: { type: "fixed", delay: 60_000 } });
    const queue = t.queue("stripe-webhook");
    await waitForState(queue, job.id!, "delayed");

    // The SDK's own network retries (maxNetworkRetries: 2) come first: three requests per attempt.
    expect(requestsFor(ids.subscription)).toHaveLength(3);
    expect(await eventRow(checkout.id)).toMatchObject({ status: "PENDING", attempts: 1, error: "An unknown error occurred" });
    expect(await subscriptionRow(ids.subscription)).toBeUndefined();
    expect(logs.lines.find((l) => l.msg === "job failed" && l.jobId === job.id)).toMatchObject({ level: "warn", outcome: "will-retry" });

    stripe.answer(ids.subscription, undefined);
    stripe.putSubscription(subscriptionAt(1));
    await (await queue.getJob(job.id!))!.promote();
    const done = await settled(queue, job.id!);
    expect(done.returnvalue).toEqual({ status: "processed", outcome: "applied" });
    expect(await eventRow(checkout.id)).toMatchObject({ status: "PROCESSED", attempts: 2, error: null });
    expect(await subscriptionRow(ids.subscription)).toMatchObject({ status: "active", lastEventId: checkout.id });
    expect(JSON.stringify(logs.lines)).not.toContain(SECRET_KEY);
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
