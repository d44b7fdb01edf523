// The example job type end to end in the fleet: a generate-report job in, one reports row out,
// computed from audit_logs, and the same row rewritten (never duplicated) by every later run.
import { eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import { reports } from "../../shared/db/reports.ts";
import { reportContract } from "../../shared/jobs/report.ts";
import type { Database } from "../db.ts";
import { memoryLog, settled, startTestFleet, testDb, uniqueId, type TestFleet } from "../../tools/testing/fixtures.ts";
import { createReportHandler, monthRange } from "./handler.ts";

let database: Database;
let t: TestFleet | undefined;
const logs = memoryLog();

beforeAll(() => {
  database = testDb();
});
afterAll(() => database.close());
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

async function start(): Promise<TestFleet> {
  t = await startTestFleet({ handlers: { report: createReportHandler(database.db) }, scripts: [], log: logs.log }, { queues: ["report"] });
  return t;
}

/** Audit rows written straight to the table: this test is about reading them. */
async function record(accountId: string, events: Array<[name: string, type: "domain" | "integration", occurredAt: string]>) {
  await database.db.insert(auditLogs).values(
    events.map(([name, type, occurredAt]) => ({
      eventId: uniqueId("evt"), eventName: name, eventType: type, occurredAt: new Date(occurredAt), accountId, payload: {},
    })),
  );
}

/** Runs one generate-report job to completion and returns the account's report rows. */
async function generate(fleet: TestFleet, accountId: string, month: string) {
  const job = await fleet.add(reportContract, { accountId, month }, { jobId: uniqueId("rep") });
  const done = await settled(fleet.queue("report"), job.id ?? "");
  expect(done.finishedOn, `job failed: ${done.failedReason}`).toBeTypeOf("number");
  expect(await done.isCompleted()).toBe(true);
  return database.db.select().from(reports).where(eq(reports.accountId, accountId));
}

describe("report queue", () => {
  it("turns one generate-report job into one reports row counting the month's events per name and type", async () => {
    const fleet = await start();
    const account = uniqueId("acct");
    await record(account, [
      ["user.signed_in", "domain", "2026-11-01T00:00:00Z"], // first instant of the month
      ["user.signed_in", "domain", "2026-11-15T12:00:00Z"],
      ["invoice.paid", "integration", "2026-11-30T23:59:59.999Z"], // last millisecond
      ["user.signed_in", "integration", "2026-11-20T08:00:00Z"],
      ["user.signed_in", "domain", "2026-10-31T23:59:59.999Z"], // previous month
      ["user.signed_in", "domain", "2026-12-01T00:00:00Z"], // next month
    ]);
    await record(uniqueId("other"), [["user.signed_in", "domain", "2026-11-10T00:00:00Z"]]);

    const rows = await generate(fleet, account, "2026-11");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      accountId: account,
      month: "2026-11",
      totalEvents: 4,
      counts: [
        { name: "invoice.paid", type: "integration", count: 1 },
        { name: "user.signed_in", type: "domain", count: 2 },
        { name: "user.signed_in", type: "integration", count: 1 },
      ],
    });
    expect(rows[0]?.periodStart.toISOString()).toBe("2026-11-01T00:00:00.000Z");
    expect(rows[0]?.periodEnd.toISOString()).toBe("2026-12-01T00:00:00.000Z");
    const line = logs.lines.find((l) => l.queue === "report" && l.outcome === "completed");
    expect(line).toMatchObject({ name: "generate-report", attempt: 1 });
  });

  it("rewrites the same row when the job runs again, and brings it up to date after new events", async () => {
    const fleet = await start();
    const account = uniqueId("acct");
    await record(account, [["order.placed", "domain", "2026-02-03T10:00:00Z"]]);

    const [first] = await generate(fleet, account, "2026-02");
    const again = await generate(fleet, account, "2026-02");
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({ id: first?.id, totalEvents: 1, counts: [{ name: "order.placed", type: "domain", count: 1 }] });

    await record(account, [["order.placed", "domain", "2026-02-28T23:00:00Z"], ["order.refunded", "domain", "2026-02-10T00:00:00Z"]]);
    const updated = await generate(fleet, account, "2026-02");
    expect(updated).toHaveLength(1);
    expect(updated[0]).toMatchObject({
      id: first?.id,
      totalEvents: 3,
      counts: [{ name: "order.placed", type: "domain", count: 2 }, { name: "order.refunded", type: "domain", count: 1 }],
    });
    expect(updated[0]!.generatedAt.getTime()).toBeGreaterThanOrEqual(first!.generatedAt.getTime());
  });

  it("writes a zero report for a month without events", async () => {
    const fleet = await start();
    const account = uniqueId("acct");
    const rows = await generate(fleet, account, "2025-12");
    expect(rows).toEqual([expect.objectContaining({ accountId: account, month: "2025-12", totalEvents: 0, counts: [] })]);
    expect(rows[0]?.periodEnd.toISOString()).toBe("2026-01-01T00:00:00.000Z");
  });

  it("fails a job whose payload breaks the contract without retrying it", async () => {
    const fleet = await start();
    const job = await fleet.queue("report").add(reportContract.name, { accountId: "a", month: "2026-13" }, { ...reportContract.defaults, jobId: uniqueId("bad") });
    const done = await settled(fleet.queue("report"), job.id ?? "");
    expect(await done.isFailed()).toBe(true);
    expect(done.attemptsMade).toBe(1);
    expect(done.failedReason).toMatch(/month/);
  });
});

describe("fleet registration", () => {
  it("refuses to start a fleet that drains report without a report handler", async () => {
    await expect(startTestFleet({ handlers: {}, scripts: [], log: () => {} }, { queues: ["report"] })).rejects.toThrow(/no handler for queue\(s\) report/);
  });
});

describe("monthRange", () => {
  it("spans a calendar month in UTC, December into the next year", () => {
    expect(monthRange("2024-02")).toEqual({ start: new Date("2024-02-01T00:00:00Z"), end: new Date("2024-03-01T00:00:00Z") });
    expect(monthRange("2026-12").end.toISOString()).toBe("2027-01-01T00:00:00.000Z");
  });
});
