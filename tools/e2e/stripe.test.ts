// Stripe → edge (wrangler dev, signature check) → Redis → fleet (node worker/main.ts) → Postgres.
// Stripe redelivers and reorders; whatever the delivery order the final rows must be the ones an
// in-order delivery gives, with one webhook_events row per event. A worker killed mid-event must
// leave nothing half-applied.
import { inArray, sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { stripeCustomers } from "../../shared/db/stripe-customers.ts";
import { stripeInvoices } from "../../shared/db/stripe-invoices.ts";
import { stripeSubscriptions } from "../../shared/db/stripe-subscriptions.ts";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import type { Database } from "../../worker/db.ts";
import { customerLockKey } from "../../worker/stripe/apply.ts";
import { customerLifecycle, deliver, lifecycleIds, type LifecycleIds, type StripeEventFixture } from "../testing/stripe-fixtures.ts";
import { eventually, testDb } from "../testing/fixtures.ts";
import { startStack, type Stack } from "./stack.ts";

const SECRET = "whsec_e2e_0123456789abcdef";
const LOCK_MS = 6_000;
// Below the lock (the worker refuses otherwise), and far above the crash test's window between the
// worker blocking on the held lock and the SIGKILL.
const QUERY_TIMEOUT_MS = 5_000;

let stack: Stack;
let database: Database;

beforeAll(async () => {
  database = testDb();
  stack = await startStack({
    edgeVars: { STRIPE_WEBHOOK_SECRET: SECRET },
    // Short locks so the crash test's job is recovered quickly after SIGKILL.
    fleetEnv: { WORKER_STALLED_INTERVAL_MS: "1000", WORKER_LOCK_DURATION_MS: String(LOCK_MS), DATABASE_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS) },
  });
});

afterAll(async () => {
  await stack?.stop();
  await database?.close();
});

/** mulberry32: a tiny seeded PRNG, so a failing order can be reproduced from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every event 1–3 times, the whole list shuffled (Fisher–Yates). */
function shuffledWithDuplicates(events: StripeEventFixture[], seed: number): StripeEventFixture[] {
  const random = prng(seed);
  const out = events.flatMap((e) => Array.from({ length: 1 + Math.floor(random() * 3) }, () => e));
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

async function eventRows(events: StripeEventFixture[]) {
  return database.db.select().from(webhookEvents).where(inArray(webhookEvents.stripeEventId, events.map((e) => e.id)));
}

function allProcessed(events: StripeEventFixture[]) {
  return eventually("every event PROCESSED", async () => {
    const rows = await eventRows(events);
    return rows.length === events.length && rows.every((r) => r.status === "PROCESSED") ? rows : undefined;
  }, 30_000);
}

/**
 * The customer's rows with ids replaced by their role and the bookkeeping timestamps dropped, so
 * two lifecycles with different random ids compare equal when their state is the same.
 */
async function finalState(ids: LifecycleIds, events: StripeEventFixture[]) {
  const [customers, subscriptions, invoices] = await Promise.all([
    database.db.select().from(stripeCustomers).where(inArray(stripeCustomers.stripeCustomerId, [ids.customer])),
    database.db.select().from(stripeSubscriptions).where(inArray(stripeSubscriptions.stripeSubscriptionId, [ids.subscription])),
    database.db.select().from(stripeInvoices).where(inArray(stripeInvoices.stripeInvoiceId, ids.invoices)),
  ]);
  const labels = new Map<string, string>([
    [ids.customer, "CUS"], [ids.subscription, "SUB"], [ids.session, "CS"], [ids.invoices[0], "IN0"], [ids.invoices[1], "IN1"],
    ...events.map((e, i): [string, string] => [e.id, `EVT${i}`]),
  ]);
  const json = JSON.stringify({ customers, subscriptions, invoices }, (key, value: unknown) =>
    key === "createdAt" || key === "updatedAt" ? undefined : typeof value === "string" ? (labels.get(value) ?? value) : value,
  );
  const state = JSON.parse(json) as { invoices: Array<{ stripeInvoiceId: string }> };
  state.invoices.sort((a, b) => a.stripeInvoiceId.localeCompare(b.stripeInvoiceId));
  return state;
}

/** One lifecycle delivered in Stripe's creation order, one at a time; returns its labelled final state. */
async function inOrder(ids: LifecycleIds) {
  const events = customerLifecycle(ids);
  for (const e of events) expect(await deliver(stack.edge.url, e, SECRET)).toEqual({ status: 200, body: { received: true, id: e.id } });
  await allProcessed(events);
  return finalState(ids, events);
}

describe("a customer's lifecycle", () => {
  it("delivered in order, ends with a canceled subscription, a paid and an open invoice", async () => {
    const state = await inOrder(lifecycleIds(1_790_000_000));
    expect(state).toMatchObject({
      customers: [{ stripeCustomerId: "CUS", email: "ada@example.com", name: "Ada Lovelace", checkoutSessionId: "CS", lastEventId: "EVT0" }],
      subscriptions: [{ stripeSubscriptionId: "SUB", status: "canceled", quantity: 2, priceId: "price_pro_monthly", lastEventId: "EVT6", lastEventRank: 3 }],
    });
    const invoices = (state as { invoices: Array<{ stripeInvoiceId: string; status: string; amountPaid: number }> }).invoices;
    expect(invoices.map((i) => [i.stripeInvoiceId, i.status, i.amountPaid]).sort()).toEqual([["IN0", "paid", 2900], ["IN1", "open", 0]]);
  });

  for (const seed of [1, 7, 42, 2026]) {
    it(`delivered shuffled with duplicates (seed ${seed}), ends in the state in-order delivery gives, with one row per event`, async () => {
      // This test's own reference: the same lifecycle (other ids, same times) delivered in order.
      const expected = await inOrder(lifecycleIds(1_790_000_000));
      const ids = lifecycleIds(1_790_000_000);
      const events = customerLifecycle(ids);
      const deliveries = shuffledWithDuplicates(events, seed);
      // Four at a time, so duplicates and neighbours race through the edge and the fleet together.
      for (let i = 0; i < deliveries.length; i += 4) {
        const answers = await Promise.all(deliveries.slice(i, i + 4).map((e) => deliver(stack.edge.url, e, SECRET)));
        for (const a of answers) expect(a.status).toBe(200);
      }
      const rows = await allProcessed(events);
      expect(rows.map((r) => r.stripeEventId).sort()).toEqual(events.map((e) => e.id).sort());
      expect(rows.every((r) => r.attempts === 1)).toBe(true);
      expect(await finalState(ids, events)).toEqual(expected);
    });
  }
});

describe("a worker killed mid-event", () => {
  it("leaves the event to be processed once after restart", async () => {
    const ids = lifecycleIds(1_790_000_000);
    const [, created] = customerLifecycle(ids);
    // Hold the customer's advisory lock (apply.ts) from outside: the worker's transaction blocks
    // on it after storing the event, i.e. mid-event, until the worker is killed.
    const blocker = new pg.Client({ connectionString: inject("databaseUrl") });
    await blocker.connect();
    try {
      await blocker.query("select pg_advisory_lock(hashtextextended($1, 0))", [customerLockKey(ids.customer)]);
      expect((await deliver(stack.edge.url, created!, SECRET)).status).toBe(200);
      await eventually("the worker holding the event", async () => {
        const [row] = await eventRows([created!]);
        return row?.status === "PENDING" && row.attempts === 1 ? row : undefined;
      });
      expect(await stack.queue("stripe-webhook").getJobState(created!.id)).toBe("active");
      await stack.restartFleet(); // SIGKILL, then a fresh `node worker/main.ts`
      await blocker.query("select pg_advisory_unlock(hashtextextended($1, 0))", [customerLockKey(ids.customer)]);
    } finally {
      await blocker.end();
    }

    const [row] = await allProcessed([created!]);
    // attempts 2: the first run died inside its transaction, which rolled back; the second applied.
    expect(row).toMatchObject({ status: "PROCESSED", attempts: 2, outcome: "applied", error: null });
    const subs = await database.db.select().from(stripeSubscriptions).where(sql`${stripeSubscriptions.stripeSubscriptionId} = ${ids.subscription}`);
    expect(subs).toHaveLength(1);
    expect(subs[0]).toMatchObject({ status: "active", quantity: 1, lastEventId: created!.id });
    expect(await stack.queue("stripe-webhook").getJobState(created!.id)).toBe("completed");
  }, 40_000);
});
