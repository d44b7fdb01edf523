import { auditLogs } from "../../shared/db/audit-logs.ts";
import type { auditContract, AuditJob } from "../../shared/jobs/audit.ts";
import type { Db } from "../db.ts";
import { findOutage } from "../outage.ts";
import type { Handler } from "../runner.ts";
import { createBatcher, type Batcher } from "./batcher.ts";

type AuditRow = typeof auditLogs.$inferInsert;

export interface AuditHandler {
  handle: Handler<typeof auditContract>;
  /** Exposed for metrics and tests (e.g. rows per insert). */
  batcher: Batcher<AuditRow>;
}

/**
 * One `audit_logs` row per event. The job resolves only after the multi-row insert carrying its
 * row has committed, so a completed job always means a durable row. `event_id` is unique and
 * conflicts are ignored: a redelivered or re-sent event (BullMQ is at-least-once, and removed jobs
 * no longer dedupe) adds nothing and still completes. A row the database refuses fails only its own
 * job (the batcher splits the batch to find it).
 */
export function createAuditHandler(db: Db, options: { maxBatch?: number } = {}): AuditHandler {
  const batcher = createBatcher<AuditRow>(
    async (rows) => {
      await db.insert(auditLogs).values(rows).onConflictDoNothing({ target: auditLogs.eventId });
    },
    options.maxBatch ?? 500,
    // A refused value (e.g. a NUL that slipped past the edge) belongs to one row: find it. An outage
    // belongs to none: the whole batch goes back to wait.
    { isolate: (err) => findOutage(err) === undefined },
  );

  return {
    batcher,
    handle: (event) => batcher.add(toRow(event)),
  };
}

function toRow(event: AuditJob): AuditRow {
  return {
    eventId: event.id,
    eventName: event.name,
    eventType: event.type,
    occurredAt: new Date(event.occurredAt),
    accountId: event.accountId ?? null,
    workspaceId: event.workspaceId ?? null,
    userId: event.userId ?? null,
    payload: event.payload,
    actorType: event.actor?.type ?? null,
    actorId: event.actor?.id ?? null,
  };
}
