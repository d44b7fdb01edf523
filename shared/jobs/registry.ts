import { auditContract } from "./audit.ts";
import { emailContract } from "./email.ts";
import type { QueueName } from "./contract.ts";
import { stripeWebhookContract } from "./stripe-webhook.ts";

/** Every built-in contract, keyed by queue. A worker must supply a handler for each. */
export const contracts = {
  audit: auditContract,
  email: emailContract,
  "stripe-webhook": stripeWebhookContract,
} as const satisfies Record<QueueName, unknown>;

export const QUEUE_NAMES = Object.keys(contracts) as QueueName[];
