import { and, eq, ne, sql } from "drizzle-orm";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import type { stripeWebhookContract } from "../../shared/jobs/stripe-webhook.ts";
import type { Db } from "../db.ts";
import type { Handler } from "../runner.ts";

/**
 * Stores each Stripe event once (primary key = Stripe's event id), counting attempts, and moves it
 * PENDING → PROCESSED. Stripe redelivers and BullMQ is at-least-once, so a second run of a
 * PROCESSED event changes nothing.
 *
 * Not yet: acting on the event (and the "older event must not overwrite newer state" rule of
 * DESIGN §5) — that lands with the processing issue, between the two statements below.
 */
export function createStripeWebhookHandler(db: Db): Handler<typeof stripeWebhookContract> {
  return async (event) => {
    const [row] = await db
      .insert(webhookEvents)
      .values({ stripeEventId: event.id, type: event.type, payload: event.event, status: "PENDING", attempts: 1 })
      .onConflictDoUpdate({
        target: webhookEvents.stripeEventId,
        set: { attempts: sql`${webhookEvents.attempts} + 1` },
        setWhere: ne(webhookEvents.status, "PROCESSED"),
      })
      .returning({ attempts: webhookEvents.attempts });
    if (!row) return { status: "already-processed" as const };

    await db
      .update(webhookEvents)
      .set({ status: "PROCESSED", processedAt: sql`now()`, error: null })
      .where(and(eq(webhookEvents.stripeEventId, event.id), ne(webhookEvents.status, "PROCESSED")));
    return { status: "processed" as const };
  };
}
