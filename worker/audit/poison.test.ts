// One value Postgres refuses, inside a batch of good ones: only its own job fails (at once — the
// same row is refused on every retry), every neighbour's row is stored, and nothing that leaves the
// process (log lines, failedReason) carries a payload value, its own or a neighbour's.
import { inArray } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import { auditContract, type AuditJob } from "../../shared/jobs/audit.ts";
import type { Database } from "../db.ts";
import { createEmailHandler } from "../email/handler.ts";
import { createStripeWebhookHandler } from "../stripe/handler.ts";
import { memoryLog, settled, startTestFleet, testDb, uniqueId, type TestFleet } from "../../tools/testing/fixtures.ts";
import { createAuditHandler, type AuditHandler } from "./handler.ts";

let database: Database;
let t: TestFleet | undefined;

beforeAll(() => {
  database = testDb();
});
afterAll(() => database.close());
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

function event(i: number, secret: string, payload: Record<string, unknown> = {}): AuditJob {
  return {
    id: uniqueId(`poison${i}`),
    name: "customer.updated",
    type: "domain",
    occurredAt: "2026-11-30T12:00:00.000Z",
    userId: `user-${secret}`,
    payload: { email: `${secret}@example.com`, ...payload },
  };
}

describe("a value Postgres refuses in an audit batch", () => {
  it("fails only its own job, permanently, and leaks no payload value into logs or failedReason", async () => {
    const logs = memoryLog();
    let audit: AuditHandler | undefined;
    t = await startTestFleet(
      {
        handlers: {
          audit: (audit = createAuditHandler(database.db, { maxBatch: 500, concurrency: 100 })).handle, // the shipped inserts in flight
          email: createEmailHandler(database.db, { resendApiKey: undefined, resendBaseUrl: undefined, emailFrom: "t@example.com" }),
          "stripe-webhook": createStripeWebhookHandler(database.db),
        },
        scripts: [],
        log: logs.log,
      },
      { queues: ["audit"], concurrency: { audit: 100, email: 1, "stripe-webhook": 1, report: 1 } },
    );
    const secrets = Array.from({ length: 41 }, (_, i) => `sensitive${i}x${Math.random().toString(36).slice(2, 8)}`);
    const good = secrets.slice(0, 40).map((s, i) => event(i, s));
    // A NUL inside jsonb: Postgres refuses it (22P05). The edge refuses this too; a job can still
    // carry it (another producer, an older edge).
    const bad = event(99, secrets[40]!, { note: "a\u0000b" });
    // Paused while adding, so the whole set is waiting together and rides in the same inserts.
    const worker = t.fleet.workers.get("audit")!;
    await worker.pause(true);
    const all = [...good.slice(0, 20), bad, ...good.slice(20)];
    await t.queue("audit").addBulk(all.map((e) => ({ name: auditContract.name, data: e, opts: { ...auditContract.defaults, jobId: e.id } })));
    worker.resume();

    const failed = await settled(t.queue("audit"), bad.id);
    expect(failed.failedReason).toMatch(/^database error 22P05/);
    expect(failed.attemptsMade).toBe(1); // refused values are permanent: no retries
    for (const e of good) {
      const job = await settled(t.queue("audit"), e.id);
      expect(job.failedReason, e.id).toBeFalsy();
    }
    const rows = await database.db.select({ id: auditLogs.eventId }).from(auditLogs).where(inArray(auditLogs.eventId, all.map((e) => e.id)));
    expect(rows.map((r) => r.id).sort()).toEqual(good.map((e) => e.id).sort());
    // The poison row shared at least one insert with good rows, which were split to isolate it.
    expect(audit.batcher.stats.splits).toBeGreaterThan(0);

    const leaving = JSON.stringify(logs.lines) + (failed.failedReason ?? "") + JSON.stringify(failed.stacktrace);
    for (const s of secrets) expect(leaving).not.toContain(s);
  });
});
