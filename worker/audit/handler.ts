import { getTableName, sql } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import type { auditContract, AuditJob } from "../../shared/jobs/audit.ts";
import type { Db } from "../db.ts";
import { DEFAULT_AUDIT_WRITES_IN_FLIGHT } from "../env.ts";
import { findOutage } from "../outage.ts";
import type { Handler } from "../runner.ts";
import { createBatcher, type Batcher } from "./batcher.ts";

/** One row as the insert reads it: values as Postgres parses them. */
export interface AuditRecord {
  event_id: string;
  event_name: string;
  event_type: string;
  /** ISO 8601 with offset, as validated by the contract; Postgres parses it as timestamptz. */
  occurred_at: string;
  account_id: string | null;
  workspace_id: string | null;
  user_id: string | null;
  payload: Record<string, unknown>;
  actor_type: string | null;
  actor_id: string | null;
}

/** Which column each record field fills; names and SQL types come from the Drizzle table. */
const COLUMNS: Record<keyof AuditRecord, PgColumn> = {
  event_id: auditLogs.eventId,
  event_name: auditLogs.eventName,
  event_type: auditLogs.eventType,
  occurred_at: auditLogs.occurredAt,
  account_id: auditLogs.accountId,
  workspace_id: auditLogs.workspaceId,
  user_id: auditLogs.userId,
  payload: auditLogs.payload,
  actor_type: auditLogs.actorType,
  actor_id: auditLogs.actorId,
};

const quoted = (name: string) => `"${name.replaceAll('"', '""')}"`;
const fields = Object.entries(COLUMNS);
/**
 * A batch is ONE parameter: its records as a JSON array, expanded by `json_to_recordset`. The
 * statement text is the same for every batch, so nothing is built per row; Drizzle's multi-row
 * `insert().values()` spent about a fifth of the fleet's CPU in the audit drain building a
 * statement with 10 parameters per row (measured with `npm run bench -- --drain-profile`).
 */
const INSERT_HEAD = sql.raw(
  `insert into ${quoted(getTableName(auditLogs))} (${fields.map(([, c]) => quoted(c.name)).join(", ")}) ` +
    `select ${fields.map(([f]) => `r.${quoted(f)}`).join(", ")} from json_to_recordset(`,
);
const INSERT_TAIL = sql.raw(
  `::json) as r(${fields.map(([f, c]) => `${quoted(f)} ${c.getSQLType()}`).join(", ")}) ` +
    `on conflict (${quoted(auditLogs.eventId.name)}) do nothing`,
);

export interface AuditHandler {
  handle: Handler<typeof auditContract>;
  /** Exposed for metrics and tests (e.g. rows per insert). */
  batcher: Batcher<AuditRecord>;
}

/**
 * One `audit_logs` row per event. The job resolves only after the multi-row insert carrying its
 * row has committed, so a completed job always means a durable row. `event_id` is unique and
 * conflicts are ignored: a redelivered or re-sent event (BullMQ is at-least-once, and removed jobs
 * no longer dedupe) adds nothing and still completes. A row the database refuses fails only its own
 * job (the batcher splits the batch to find it).
 */
export interface AuditHandlerOptions {
  /** Most rows per insert (AUDIT_BATCH_MAX). */
  maxBatch?: number;
  /** Inserts in flight at once (AUDIT_WRITES_IN_FLIGHT); default DEFAULT_AUDIT_WRITES_IN_FLIGHT. */
  writesInFlight?: number | undefined;
  /**
   * The audit queue's concurrency: a further insert starts beside those in flight only once half
   * of it is waiting. Fewer rows would spend a statement (parse, plan, commit) on a handful of
   * rows, which on loopback cost more Postgres CPU than the overlap saved (measured with the audit
   * drain, `npm run bench`; see the README's Performance section). Unknown: only full batches
   * overlap.
   */
  concurrency?: number | undefined;
}

export function createAuditHandler(db: Db, options: AuditHandlerOptions = {}): AuditHandler {
  const batcher = createBatcher<AuditRecord>(
    async (rows) => {
      await db.execute(sql`${INSERT_HEAD}${JSON.stringify(rows)}${INSERT_TAIL}`);
    },
    options.maxBatch ?? 500,
    {
      // A refused value (e.g. a NUL that slipped past the edge) belongs to one row: find it. An
      // outage belongs to none: the whole batch goes back to wait.
      isolate: (err) => findOutage(err) === undefined,
      maxInFlight: options.writesInFlight ?? DEFAULT_AUDIT_WRITES_IN_FLIGHT,
      overlapAt: options.concurrency === undefined ? undefined : Math.ceil(options.concurrency / 2),
    },
  );

  return {
    batcher,
    handle: (event) => batcher.add(toRecord(event)),
  };
}

function toRecord(event: AuditJob): AuditRecord {
  return {
    event_id: event.id,
    event_name: event.name,
    event_type: event.type,
    occurred_at: event.occurredAt,
    account_id: event.accountId ?? null,
    workspace_id: event.workspaceId ?? null,
    user_id: event.userId ?? null,
    payload: event.payload,
    actor_type: event.actor?.type ?? null,
    actor_id: event.actor?.id ?? null,
  };
}
