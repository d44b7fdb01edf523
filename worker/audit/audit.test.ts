import { inArray, sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import { auditContract, type AuditJob } from "../../shared/jobs/audit.ts";
import type { Database } from "../db.ts";
import { createEmailHandler } from "../email/handler.ts";
import type { Handler } from "../runner.ts";
import { createStripeWebhookHandler } from "../stripe/handler.ts";
import { memoryLog, settled, startTestFleet, testDb, uniqueId, type TestFleet } from "../../tools/testing/fixtures.ts";
import { createAuditHandler, type AuditHandler } from "./handler.ts";

let database: Database;
let audit: AuditHandler;
let t: TestFleet;
const logs = memoryLog();

beforeAll(() => {
  database = testDb();
});
afterAll(() => database.close());
afterEach(() => t?.stop());

async function start(handle?: Handler<typeof auditContract>) {
  audit = createAuditHandler(database.db, { maxBatch: 100 });
  t = await startTestFleet(
    {
      handlers: {
        audit: handle ?? audit.handle,
        email: createEmailHandler(database.db, { resendApiKey: undefined, resendBaseUrl: undefined, emailFrom: "t@example.com" }),
        "stripe-webhook": createStripeWebhookHandler(database.db),
      },
      scripts: [],
      log: logs.log,
    },
    { queues: ["audit"] },
  );
}

function event(overrides: Partial<AuditJob> = {}): AuditJob {
  return {
    id: uniqueId("evt"),
    name: "user.signed_in",
    type: "domain",
    occurredAt: "2026-11-23T10:00:00.000Z",
    accountId: "acct_1",
    payload: { ip: "203.0.113.9" },
    ...overrides,
  };
}

async function rowsFor(ids: string[]) {
  return database.db.select().from(auditLogs).where(inArray(auditLogs.eventId, ids));
}

describe("audit queue", () => {
  it("writes one audit_logs row for an audit job", async () => {
    await start();
    const e = event();
    const job = await t.add(auditContract, e, { jobId: e.id });
    expect((await settled(t.queue("audit"), job.id!)).finishedOn).toBeTypeOf("number");
    const [row] = await rowsFor([e.id]);
    expect(row).toMatchObject({
      eventId: e.id,
      eventName: "user.signed_in",
      eventType: "domain",
      accountId: "acct_1",
      workspaceId: null,
      payload: { ip: "203.0.113.9" },
    });
    expect(row?.occurredAt.toISOString()).toBe("2026-11-23T10:00:00.000Z");
    const line = logs.lines.find((l) => l.jobId === job.id);
    expect(line).toMatchObject({ queue: "audit", name: "record-event", attempt: 1, outcome: "completed" });
    expect(line?.durationMs).toBeTypeOf("number");
    expect(JSON.stringify(line)).not.toContain("203.0.113.9");
  });

  it("stores an event delivered twice only once", async () => {
    await start();
    const e = event();
    // Two jobs (e.g. the first was already removed from Redis) carrying the same event id.
    const a = await t.add(auditContract, e, { jobId: `${e.id}-a` });
    const b = await t.add(auditContract, e, { jobId: `${e.id}-b` });
    const [ja, jb] = await Promise.all([settled(t.queue("audit"), a.id!), settled(t.queue("audit"), b.id!)]);
    expect([ja.finishedOn, jb.finishedOn]).toEqual([expect.any(Number), expect.any(Number)]);
    expect(await ja.isCompleted()).toBe(true);
    expect(await jb.isCompleted()).toBe(true);
    expect(await rowsFor([e.id])).toHaveLength(1);
  });

  it("writes the rows of jobs that reach the handler together in one multi-row insert, and stores every row", async () => {
    // Jobs are held at the handler's door until the fleet's 50 concurrent slots are all taken,
    // then let in at once: how many arrive together no longer depends on the machine's speed.
    let arrived = 0;
    let open!: () => void;
    const door = new Promise<void>((r) => (open = r));
    await start(async (data, ctx) => {
      arrived++;
      await door;
      return audit.handle(data, ctx);
    });
    const events = Array.from({ length: 200 }, () => event());
    await t.queue("audit").addBulk(
      events.map((e) => ({ name: auditContract.name, data: e, opts: { jobId: e.id, attempts: 5 } })),
    );
    const deadline = Date.now() + 20_000;
    while (arrived < t.config.concurrency.audit) {
      if (Date.now() > deadline) throw new Error(`only ${arrived} jobs reached the handler`);
      await new Promise((r) => setTimeout(r, 20));
    }
    open();
    await Promise.all(events.map((e) => settled(t.queue("audit"), e.id, 30_000)));
    expect(await rowsFor(events.map((e) => e.id))).toHaveLength(200);
    expect(audit.batcher.stats.written).toBe(200);
    expect(audit.batcher.stats.largestBatch).toBeGreaterThanOrEqual(t.config.concurrency.audit);
    expect(audit.batcher.stats.flushes).toBeLessThanOrEqual(200 - t.config.concurrency.audit + 1);
  });

  it("commits a later insert while an earlier one still waits on the database, when two may be in flight", async () => {
    const handler = createAuditHandler(database.db, { maxBatch: 100, writesInFlight: 2, concurrency: 4 });
    const [held, ...later] = Array.from({ length: 3 }, () => event());
    const hold = await holdEventId(held!.id);
    try {
      const first = handler.handle(held!, undefined as never);
      await waitFor(async () => (await insertsWaitingOnLocks()) >= 1);
      // Two rows waiting = half the concurrency: a second insert starts beside the waiting one.
      await Promise.all(later.map((e) => handler.handle(e, undefined as never)));
      expect(await rowsFor(later.map((e) => e.id))).toHaveLength(2);
      expect(await rowsFor([held!.id])).toHaveLength(0);
      await hold.release();
      await first;
      const rows = await rowsFor([held!.id]);
      expect(rows.map((r) => r.eventName)).toEqual([held!.name]);
      expect(handler.batcher.stats).toMatchObject({ flushes: 2, written: 3 });
    } finally {
      await hold.release();
    }
  });

  it("fails only the refused row of an insert that runs beside a waiting one", async () => {
    const handler = createAuditHandler(database.db, { maxBatch: 100, writesInFlight: 2, concurrency: 8 });
    const held = event();
    // A NUL inside jsonb: Postgres refuses it (22P05), and only that row's job may fail.
    const [good1, bad, good2, good3] = [event(), event({ payload: { note: "a\u0000b" } }), event(), event()];
    const hold = await holdEventId(held.id);
    try {
      const first = handler.handle(held, undefined as never);
      await waitFor(async () => (await insertsWaitingOnLocks()) >= 1);
      const results = await Promise.allSettled([good1, bad, good2, good3].map((e) => handler.handle(e!, undefined as never)));
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
      expect(((results[1] as PromiseRejectedResult).reason as { cause?: { code?: string } }).cause?.code).toBe("22P05");
      expect((await rowsFor([good1, good2, good3].map((e) => e!.id))).map((r) => r.eventId).sort()).toEqual([good1, good2, good3].map((e) => e!.id).sort());
      expect(handler.batcher.stats.splits).toBeGreaterThan(0);
      expect(await rowsFor([held.id])).toHaveLength(0); // still waiting all along
      await hold.release();
      await first;
      expect(await rowsFor([held.id, bad!.id])).toHaveLength(1);
    } finally {
      await hold.release();
    }
  });

  it("fails an invalid payload at once, without retries", async () => {
    await start();
    const job = await t.add(auditContract, { id: uniqueId("bad"), name: "", type: "nope" } as never, {
      jobId: uniqueId("bad"),
    });
    const done = await settled(t.queue("audit"), job.id!);
    expect(await done.getState()).toBe("failed");
    expect(done.attemptsMade).toBe(1);
    expect(done.opts.attempts).toBe(5);
    expect(done.failedReason).toMatch(/^invalid payload: /);
    expect(done.failedReason).toContain("name");
    const line = logs.lines.find((l) => l.jobId === job.id);
    expect(line).toMatchObject({ outcome: "failed-permanently", errorName: "PermanentError" });
  });
});

/** Audit inserts of this database waiting on a lock (pg_stat_activity). */
async function insertsWaitingOnLocks(): Promise<number> {
  const result = (await database.db.execute(
    sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like 'insert into "audit_logs"%'`,
  )) as unknown as { rows: Array<{ n: number }> };
  return result.rows[0]?.n ?? 0;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Another transaction inserts `eventId` and keeps it uncommitted: an audit insert carrying the same
 * id waits on the unique index until `release()` rolls that transaction back, as a slow commit would.
 */
async function holdEventId(eventId: string): Promise<{ release: () => Promise<void> }> {
  const blocker = testDb();
  let end!: () => void;
  let holding!: () => void;
  const isHolding = new Promise<void>((r) => (holding = r));
  const done = blocker.db
    .transaction(async (tx) => {
      await tx.insert(auditLogs).values({ eventId, eventName: "other", eventType: "domain", occurredAt: new Date(), payload: {} });
      holding();
      await new Promise<void>((r) => (end = r));
      tx.rollback();
    })
    .catch(() => undefined); // the rollback rejects on purpose
  await Promise.race([isHolding, done]);
  let released: Promise<void> | undefined;
  return {
    release: () =>
      (released ??= (async () => {
        end?.();
        await done;
        await blocker.close();
      })()),
  };
}

