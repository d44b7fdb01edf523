import { Hono } from "hono";
import { z } from "zod";
import { AuditEvent, auditContract, type AuditJob } from "../../shared/jobs/audit.ts";
import { jobIdProblem } from "../../shared/jobs/contract.ts";
import { stampEvent } from "../auth.ts";
import { idempotencyKey, parseWith, readJson } from "../body.ts";
import { ApiError } from "../errors.ts";
import type { QueueVariables } from "../queue-middleware.ts";

export const MAX_EVENTS_PER_REQUEST = 100;

const EventBatch = z.strictObject({
  events: z.array(z.unknown()).min(1).max(MAX_EVENTS_PER_REQUEST),
});

/**
 * The job id of each event: its own `id`, else the request's Idempotency-Key (suffixed with the
 * position in a batch). The key is generated when the caller sent none, so ids are never
 * independent random values: a 503 returns the key, and retrying with it re-derives the same ids.
 * The final id is checked, not only its parts: it must name this job and nothing else in Redis.
 */
function eventJobId(event: AuditEvent, key: string, index: number, batch: boolean): string {
  const id = event.id ?? (batch ? `${key}.${index}` : key);
  const problem = jobIdProblem(id);
  if (problem && event.id) {
    const field = batch ? `events[${index}].id` : "id";
    throw new ApiError("validation_failed", `${field} ${problem}`, { field });
  }
  if (problem) throw new ApiError("invalid_idempotency_key", `Idempotency-Key: the job id "${id}" ${problem}`, { field: "Idempotency-Key" });
  return id;
}

export const events = new Hono<{ Variables: QueueVariables }>().post("/", async (c) => {
  const body = await readJson(c);
  const key = idempotencyKey(c) ?? crypto.randomUUID();
  const batch = typeof body === "object" && body !== null && !Array.isArray(body) && "events" in body;
  // Every event is validated before anything is enqueued; the batch then goes out as one pipeline.
  const raw = batch ? parseWith(EventBatch, body).events : [body];
  const now = new Date().toISOString();
  const seen = new Map<string, number>();
  const jobs: AuditJob[] = raw.map((value, i) => {
    const event = parseWith(AuditEvent, value, batch ? ["events", i] : []);
    const id = eventJobId(event, key, i, batch);
    const earlier = seen.get(id);
    if (earlier !== undefined) {
      throw new ApiError("validation_failed", `events[${i}].id: duplicates events[${earlier}].id`, {
        field: `events[${i}].id`,
      });
    }
    seen.set(id, i);
    // Server-owned: who sent it, and (for end users) the account their token names.
    return stampEvent(c.var.caller, { ...event, id, occurredAt: event.occurredAt ?? now }, batch ? `events[${i}].accountId` : "accountId");
  });
  const added = await c.var.queue.add(
    jobs.map((data) => ({ contract: auditContract, data, opts: { jobId: data.id } })),
    { retryKey: key },
  );
  return c.json({ jobs: added }, 202);
});
