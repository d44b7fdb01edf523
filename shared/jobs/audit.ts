import { z } from "zod";
import { defineJob, JOB_ID_PATTERN } from "./contract.ts";

const jsonObject = z.record(z.string(), z.json());

/** One domain or integration event for the audit trail, as accepted by `POST /v1/events`. */
export const AuditEvent = z.strictObject({
  /** Caller's id for the event; it becomes the job id, so re-sending it creates nothing new. */
  id: z.string().regex(JOB_ID_PATTERN, "1–200 of A-Z a-z 0-9 _ - . ~, not all digits").optional(),
  name: z.string().min(1).max(200),
  type: z.enum(["domain", "integration"]),
  occurredAt: z.iso.datetime({ offset: true }).optional(),
  accountId: z.string().min(1).max(200).optional(),
  workspaceId: z.string().min(1).max(200).optional(),
  userId: z.string().min(1).max(200).optional(),
  payload: jsonObject,
});
export type AuditEvent = z.infer<typeof AuditEvent>;

/**
 * Who sent an event, as authenticated by the edge: a service API key (id = the first 12 hex digits
 * of its SHA-256 digest, never the key) or an end user (id = the token's `sub`). Server-owned: the
 * request schema above has no such field, so a body carrying `actor` is refused.
 */
export const Actor = z.strictObject({
  type: z.enum(["api_key", "user"]),
  id: z.string().min(1).max(255),
});
export type Actor = z.infer<typeof Actor>;

/**
 * The job payload: the event with its id and time fixed by the edge, and who sent it. `actor` is
 * optional so jobs queued before it existed (or added by other producers) still run.
 */
export const AuditJob = AuditEvent.extend({
  id: z.string().regex(JOB_ID_PATTERN),
  occurredAt: z.iso.datetime({ offset: true }),
  actor: Actor.optional(),
});
export type AuditJob = z.infer<typeof AuditJob>;

export const auditContract = defineJob({
  queue: "audit",
  name: "record-event",
  schema: AuditJob,
  defaults: {
    attempts: 5,
    backoff: { type: "exponential", delay: 500 },
    removeOnComplete: 1000,
    removeOnFail: 5000,
  },
});
