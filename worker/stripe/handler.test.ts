import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stripeCustomers } from "../../shared/db/stripe-customers.ts";
import { stripeInvoices } from "../../shared/db/stripe-invoices.ts";
import { stripeSubscriptions } from "../../shared/db/stripe-subscriptions.ts";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import { StripeWebhookJob, stripeWebhookContract } from "../../shared/jobs/stripe-webhook.ts";
import { createAuditHandler } from "../audit/handler.ts";
import type { Database } from "../db.ts";
import { createEmailHandler } from "../email/handler.ts";
import { eventually, memoryLog, settled, startTestFleet, testDb, type TestFleet } from "../../tools/testing/fixtures.ts";
import { customerLifecycle, lifecycleIds, sampleEvent, type StripeEventFixture } from "../../tools/testing/stripe-fixtures.ts";
import { createStripeWebhookHandler } from "./handler.ts";
import { replayEvent } from "./replay.ts";

let database: Database;
let t: TestFleet;
const logs = memoryLog();
beforeAll(async () => {
  database = testDb();
  t = await startTestFleet(
    {
      handlers: {
        audit: createAuditHandler(database.db).handle,
        email: createEmailHandler(database.db, { resendApiKey: undefined, resendBaseUrl: undefined, emailFrom: "a@example.com" }),
        "stripe-webhook": createStripeWebhookHandler(database.db),
      },
      scripts: [],
      log: logs.log,
    },
    // A short outage hold-off so a job handed back runs again quickly.
    { queues: ["stripe-webhook"], outageBackoffMinMs: 100, outageBackoffMaxMs: 500 },
  );
});
afterAll(async () => {
  await t.stop();
  await database.close();
});

function job(event: StripeEventFixture): StripeWebhookJob {
  // Parsing (as the runner does) also checks the fixture is JSON the contract accepts.
  return StripeWebhookJob.parse({ id: event.id, type: event.type, created: event.created, livemode: false, event });
}

async function run(event: StripeEventFixture, jobId = event.id, opts: { attempts?: number } = {}) {
  const added = await t.add(stripeWebhookContract, job(event), { jobId, ...opts });
  return settled(t.queue("stripe-webhook"), added.id!);
}

async function eventRow(id: string) {
  return (await database.db.select().from(webhookEvents).where(eq(webhookEvents.stripeEventId, id)))[0];
}

describe("stripe-webhook queue", () => {
  it("stores an event once and marks it PROCESSED, even when a second job carries it", async () => {
    const event = sampleEvent("invoice.paid");
    await run(event);
    const again = await run(event, `${event.id}.again`);
    expect(await eventRow(event.id)).toMatchObject({ type: "invoice.paid", status: "PROCESSED", outcome: "applied", attempts: 1, error: null, payload: event });
    expect(again.returnvalue).toEqual({ status: "already-processed" });
  });

  it("does not let an older subscription event overwrite a newer one", async () => {
    const events = customerLifecycle(lifecycleIds(1_790_000_000));
    const [newer, older] = [events[5]!, events[3]!]; // updated → past_due, then the earlier update
    await run(newer);
    const stale = await run(older);
    expect(stale.returnvalue).toEqual({ status: "processed", outcome: "stale" });
    const [sub] = await database.db.select().from(stripeSubscriptions).where(eq(stripeSubscriptions.lastEventId, newer.id));
    expect(sub).toMatchObject({ status: "past_due", quantity: 2, lastEventCreated: newer.created });
    expect(await eventRow(older.id)).toMatchObject({ status: "PROCESSED", outcome: "stale" });
  });

  it("stores an IDR invoice of 2,500,000,000 minor units exactly (beyond a 32-bit integer)", async () => {
    const event = sampleEvent("invoice.paid");
    const object = event.data.object;
    const amount = 2_500_000_000;
    const idr = { ...event, data: { object: { ...object, currency: "idr", amount_due: amount, amount_paid: amount, amount_remaining: 0 } } };
    expect((await run(idr)).returnvalue).toEqual({ status: "processed", outcome: "applied" });
    const [invoice] = await database.db.select().from(stripeInvoices).where(eq(stripeInvoices.stripeInvoiceId, object.id as string));
    expect(invoice).toMatchObject({ currency: "idr", amountDue: amount, amountPaid: amount, status: "paid" });
    expect(await eventRow(event.id)).toMatchObject({ status: "PROCESSED", attempts: 1 });
  });

  it("stores an unknown event type as PROCESSED with no side effects", async () => {
    const event = sampleEvent("customer.tax_id.created");
    expect((await run(event)).returnvalue).toEqual({ status: "processed", outcome: "ignored" });
    expect(await eventRow(event.id)).toMatchObject({ status: "PROCESSED", outcome: "ignored" });
  });

  it("marks an event FAILED with the error when its object cannot be applied", async () => {
    const event = { ...sampleEvent("customer.subscription.updated"), data: { object: { id: "sub_broken" } } };
    const settledJob = await run(event, event.id, { attempts: 3 });
    expect(settledJob.failedReason).toMatch(/data\.object/);
    // Permanent: not retried, FAILED after the first attempt.
    expect(await eventRow(event.id)).toMatchObject({ status: "FAILED", attempts: 1, error: expect.stringMatching(/customer/) });
  });

  it("applies a checkout without a secret key: the customer's identity is stored, no subscription row is written", async () => {
    const ids = lifecycleIds();
    const [checkout] = customerLifecycle(ids);
    expect((await run(checkout!)).returnvalue).toEqual({ status: "processed", outcome: "applied" });
    const [customer] = await database.db.select().from(stripeCustomers).where(eq(stripeCustomers.stripeCustomerId, ids.customer));
    expect(customer).toMatchObject({ email: "ada@example.com", name: "Ada Lovelace", checkoutSessionId: ids.session, lastEventId: checkout!.id });
    // Without the key the subscription is not fetched, so the checkout writes no subscription row.
    expect(await database.db.select().from(stripeSubscriptions).where(eq(stripeSubscriptions.stripeSubscriptionId, ids.subscription))).toEqual([]);
    expect(await eventRow(checkout!.id)).toMatchObject({ status: "PROCESSED", outcome: "applied", attempts: 1, error: null });
  });

  it("does not swallow a failure to record FAILED: the job goes back to wait and the event ends FAILED once Postgres takes the write", async () => {
    const event = { ...sampleEvent("customer.subscription.updated"), data: { object: { id: "sub_broken" } } };
    // Postgres refuses exactly the statement that records this event's failure, with a connection
    // SQLSTATE, as it would if the server went away between the failed apply and the mark.
    const fn = `fail_mark_${event.id.slice(4, 16).toLowerCase()}`;
    await database.db.execute(sql.raw(`create function ${fn}() returns trigger language plpgsql as $$ begin
      if new.stripe_event_id = '${event.id}' and new.error is not null then
        raise exception 'injected: connection lost' using errcode = '08006';
      end if; return new; end $$`));
    await database.db.execute(sql.raw(`create trigger ${fn} before update on webhook_events for each row execute function ${fn}()`));
    const queue = t.queue("stripe-webhook");
    try {
      const added = await t.add(stripeWebhookContract, job(event), { jobId: event.id, attempts: 1 });
      await eventually("two runs whose failure could not be recorded", async () =>
        logs.lines.filter((l) => l.msg === "could not record the Stripe event's failure" && l.eventId === event.id).length >= 2 ? true : undefined,
      );
      // The permanent failure was not allowed to finish the job while its row still says PENDING.
      expect(await queue.getJobState(added.id!)).not.toBe("failed");
      expect(await eventRow(event.id)).toMatchObject({ status: "PENDING", error: null });
    } finally {
      await database.db.execute(sql.raw(`drop trigger ${fn} on webhook_events`));
      await database.db.execute(sql.raw(`drop function ${fn}()`));
    }
    const done = await settled(queue, event.id, 30_000);
    expect(done.failedReason).toMatch(/data\.object/);
    expect(await eventRow(event.id)).toMatchObject({ status: "FAILED", error: expect.stringMatching(/data\.object/) });
  });

  it("replays a FAILED event as a new job, records the replay and ends PROCESSED", async () => {
    const event = sampleEvent("invoice.payment_failed");
    await run(event);
    // As if every attempt had failed (e.g. the database was down for all five).
    await database.db.update(webhookEvents).set({ status: "FAILED", error: "boom" }).where(eq(webhookEvents.stripeEventId, event.id));
    const jobId = await replayEvent(database.db, t.queue("stripe-webhook"), event.id);
    expect(jobId).toBe(`${event.id}.replay-1`);
    await settled(t.queue("stripe-webhook"), jobId!);
    expect(await eventRow(event.id)).toMatchObject({ status: "PROCESSED", error: null, replayCount: 1, attempts: 2 });
    expect((await eventRow(event.id))?.replayedAt).toBeInstanceOf(Date);
    expect(await replayEvent(database.db, t.queue("stripe-webhook"), "evt_unknown")).toBeUndefined();
  });
});
