import { z } from "zod";
import { defineJob } from "./contract.ts";

/**
 * A verified Stripe event. The edge has checked the signature; the job id is the event id, so
 * Stripe's duplicate deliveries collapse into one job while it exists.
 */
export const StripeWebhookJob = z.object({
  id: z.string().regex(/^evt_[A-Za-z0-9_]+$/),
  type: z.string().min(1),
  created: z.number().int(),
  livemode: z.boolean(),
  /** The full event as Stripe sent it (parsed JSON). */
  event: z.record(z.string(), z.json()),
});
export type StripeWebhookJob = z.infer<typeof StripeWebhookJob>;

export const stripeWebhookContract = defineJob({
  queue: "stripe-webhook",
  name: "stripe-event",
  schema: StripeWebhookJob,
  defaults: {
    attempts: 5,
    backoff: { type: "exponential", delay: 2000 },
    removeOnComplete: 500,
    removeOnFail: 2000,
  },
});
