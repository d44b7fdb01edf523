import type { z } from "zod";
import { auditContract } from "./audit.ts";
import type { JobContract } from "./contract.ts";
import { emailContract } from "./email.ts";
import { reportContract } from "./report.ts";
import { stripeWebhookContract } from "./stripe-webhook.ts";

/** Checks at compile time that every entry is keyed by its own queue name. */
function registry<M extends { [K in keyof M]: JobContract<z.ZodType, K & string> }>(map: M): M {
  return map;
}

/**
 * Every job type, keyed by queue: the one place a contract is registered. The queue-name type, the
 * edge's `/v1/jobs/<queue>` routes and the worker's handler map (a missing handler is a type
 * error) all follow from it.
 */
export const contracts = registry({
  audit: auditContract,
  email: emailContract,
  "stripe-webhook": stripeWebhookContract,
  report: reportContract,
});

export type Contracts = typeof contracts;
export type QueueName = keyof Contracts;

export const QUEUE_NAMES = Object.keys(contracts) as QueueName[];

/** Queues whose contract has `edge`: served at `POST /v1/jobs/<queue>` and `DELETE /v1/jobs/<queue>/<id>`. */
export type ExposedQueue = { [Q in QueueName]: Contracts[Q] extends { readonly edge: object } ? Q : never }[QueueName];

export const EXPOSED_CONTRACTS: ReadonlyArray<Contracts[ExposedQueue]> = Object.values(contracts).filter(
  (c): c is Contracts[ExposedQueue] => c.edge !== undefined,
);
