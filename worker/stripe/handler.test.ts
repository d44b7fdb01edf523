import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import { stripeWebhookContract, type StripeWebhookJob } from "../../shared/jobs/stripe-webhook.ts";
import { createAuditHandler } from "../audit/handler.ts";
import type { Database } from "../db.ts";
import { createEmailHandler } from "../email/handler.ts";
import { settled, startTestFleet, testDb, uniqueId, type TestFleet } from "../testing/fixtures.ts";
import { createStripeWebhookHandler } from "./handler.ts";

let database: Database;
let t: TestFleet;
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
      log: () => {},
    },
    { queues: ["stripe-webhook"] },
  );
});
afterAll(async () => {
  await t.stop();
  await database.close();
});

describe("stripe-webhook queue", () => {
  it("stores an event once and marks it PROCESSED, even when delivered twice", async () => {
    const id = `evt_${uniqueId("s").replace("-", "")}`;
    const event: StripeWebhookJob = {
      id,
      type: "invoice.paid",
      created: 1_763_900_000,
      livemode: false,
      event: { id, object: "event", type: "invoice.paid" },
    };
    const first = await t.add(stripeWebhookContract, event, { jobId: id });
    await settled(t.queue("stripe-webhook"), first.id!);
    const again = await t.add(stripeWebhookContract, event, { jobId: `${id}-again` });
    await settled(t.queue("stripe-webhook"), again.id!);

    const rows = await database.db.select().from(webhookEvents).where(eq(webhookEvents.stripeEventId, id));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ type: "invoice.paid", status: "PROCESSED", attempts: 1, error: null, payload: event.event });
    expect(rows[0]?.processedAt).toBeInstanceOf(Date);
    expect(await again.getState()).toBe("completed");
    expect(await t.queue("stripe-webhook").getJob(again.id!).then((j) => j?.returnvalue)).toEqual({ status: "already-processed" });
  });
});
