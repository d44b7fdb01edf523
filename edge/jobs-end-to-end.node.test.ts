// The jobs API end to end: HTTP request to the edge app (Node sockets to the test Redis), the
// real fleet's report handler, a row in Postgres. Delays and priorities are observed in what the
// fleet does, not in what Redis holds.
import { and, eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { reports } from "../shared/db/reports.ts";
import type { JobStatus } from "./queue/producer.ts";
import type { Database } from "../worker/db.ts";
import { createReportHandler } from "../worker/report/handler.ts";
import { startTestFleet, testDb, uniqueId, type TestFleet } from "../tools/testing/fixtures.ts";
import { createApp } from "./app.ts";
import { sha256Hex } from "./auth.ts";
import { createNodeTransport } from "./queue/node-transport.test-helper.ts";
import { createProducer } from "./queue/producer.ts";

const KEY = "e2e-key-0123456789";
let database: Database;
let fleet: TestFleet | undefined;

beforeAll(() => {
  database = testDb();
});
afterEach(async () => {
  await fleet?.stop();
  fleet = undefined;
});
afterAll(() => database.close());

async function api(prefix: string) {
  const app = createApp({
    apiKeyHashes: [await sha256Hex(KEY)],
    openQueue: () => {
      const transport = createNodeTransport(inject("redisUrl"));
      return { producer: createProducer(transport, { prefix }), close: () => transport.close() };
    },
  });
  const call = (path: string, init: { method?: string; json?: unknown } = {}) =>
    app.request(path, {
      method: init.method ?? "GET",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
    });
  const status = async (id: string) => (await (await call(`/v1/jobs/report/${id}`)).json()) as JobStatus;
  /** Polls the status route until the job has completed; generous, because the machine is shared. */
  const completed = async (id: string) => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const s = await status(id);
      if (s.state === "completed") return s;
      if (s.state === "failed" || Date.now() > deadline) throw new Error(`job ${id} is ${s.state}: ${s.failedReason ?? ""}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  return { call, status, completed };
}

async function reportRow(accountId: string, month: string) {
  return database.db.select().from(reports).where(and(eq(reports.accountId, accountId), eq(reports.month, month)));
}

describe("POST /v1/jobs/report through the fleet", () => {
  it("keeps a delayed job delayed, then runs it no earlier than its delay", async () => {
    const prefix = uniqueId("e2e");
    fleet = await startTestFleet({ handlers: { report: createReportHandler(database.db) }, scripts: [], log: () => {} }, { queues: ["report"], queuePrefix: prefix });
    const { call, status, completed } = await api(prefix);
    const account = uniqueId("acct");
    const delay = 1_500;

    const res = await call("/v1/jobs/report", { method: "POST", json: { data: { accountId: account, month: "2026-11" }, delay } });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    // A running fleet does not take it early: it waits in the delayed set, and nothing is written.
    // (Should this machine be so slow that the delay is over before the read, that is all the
    // read may conclude — a job that ran early still fails the check.)
    const early = await status(id);
    const rows = await reportRow(account, "2026-11");
    const readBy = Date.now();
    if (readBy < Date.parse(early.createdAt) + delay) {
      expect(early.state).toBe("delayed");
      expect(rows).toEqual([]);
    }

    const done = await completed(id);
    expect(Date.parse(done.processedAt ?? "")).toBeGreaterThanOrEqual(Date.parse(done.createdAt) + delay);
    expect(await reportRow(account, "2026-11")).toEqual([expect.objectContaining({ totalEvents: 0, counts: [] })]);
  });

  it("runs queued jobs by priority: unprioritized first, then 1 before 2 before 3", async () => {
    const prefix = uniqueId("e2e");
    const { call, completed } = await api(prefix);
    const account = uniqueId("acct");
    const sent: Array<[month: string, priority?: number]> = [["2026-01", 3], ["2026-02", 1], ["2026-03"], ["2026-04", 2]];
    const ids: string[] = [];
    // Enqueued before any worker exists, so the order below is the queue's, not arrival's.
    for (const [month, priority] of sent) {
      const res = await call("/v1/jobs/report", { method: "POST", json: { data: { accountId: account, month }, ...(priority ? { priority } : {}) } });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    }

    const order: string[] = [];
    const handler = createReportHandler(database.db);
    fleet = await startTestFleet(
      { handlers: { report: async (data, ctx) => (order.push(data.month), handler(data, ctx)) }, scripts: [], log: () => {} },
      { queues: ["report"], queuePrefix: prefix, concurrency: { audit: 1, email: 1, "stripe-webhook": 1, report: 1 } },
    );
    for (const id of ids) await completed(id);
    expect(order).toEqual(["2026-03", "2026-02", "2026-04", "2026-01"]);
    for (const [month] of sent) expect(await reportRow(account, month)).toHaveLength(1);
  });
});
