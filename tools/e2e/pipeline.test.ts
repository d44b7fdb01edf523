// Client → edge (wrangler dev) → Redis → worker fleet (node worker/main.ts) → Postgres / Resend.
import { eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import { emailMessages } from "../../shared/db/email-messages.ts";
import type { Database } from "../../worker/db.ts";
import { startFakeResend, type FakeResend } from "../testing/fake-resend.ts";
import { eventually, settled, testDb, uniqueId } from "../testing/fixtures.ts";
import { startStack, type Stack } from "./stack.ts";

let stack: Stack;
let resend: FakeResend;
let database: Database;

beforeAll(async () => {
  database = testDb();
  resend = await startFakeResend();
  stack = await startStack({ fleetEnv: { RESEND_BASE_URL: resend.url } });
});

afterAll(async () => {
  await stack?.stop();
  await resend?.close();
  await database?.close();
});

type Accepted = { jobs: Array<{ id: string; queue: string }> };

function event(id: string, n = 0) {
  return {
    id,
    name: "invoice.paid",
    type: "domain" as const,
    occurredAt: "2026-11-23T10:00:00.000Z",
    accountId: "acct_e2e",
    workspaceId: "ws_1",
    userId: `user_${n}`,
    payload: { amount: 100 + n, currency: "eur" },
  };
}

async function auditRows(ids: string[]) {
  return database.db.select().from(auditLogs).where(inArray(auditLogs.eventId, ids));
}

/** Waits until exactly `ids.length` rows exist for these events; more would fail `expect` later. */
function rowsLanded(ids: string[]) {
  return eventually(`${ids.length} audit_logs rows`, async () => {
    const rows = await auditRows(ids);
    return rows.length >= ids.length ? rows : undefined;
  });
}

function emailRow(jobId: string) {
  return database.db.select().from(emailMessages).where(eq(emailMessages.jobId, jobId));
}

function resendRequestsWithKey(key: string) {
  return resend.requests.filter((r) => r.headers["idempotency-key"] === key);
}

describe("events", () => {
  it("turns one posted event into one audit_logs row with the event's fields", async () => {
    const id = uniqueId("evt");
    const res = await stack.post("/v1/events", event(id, 7));
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ jobs: [{ id, queue: "audit" }] });

    const [row, ...rest] = await rowsLanded([id]);
    expect(rest).toEqual([]);
    expect(row).toMatchObject({
      eventId: id,
      eventName: "invoice.paid",
      eventType: "domain",
      occurredAt: new Date("2026-11-23T10:00:00.000Z"),
      accountId: "acct_e2e",
      workspaceId: "ws_1",
      userId: "user_7",
      payload: { amount: 107, currency: "eur" },
    });
  });

  it("turns a batch of 50 events into 50 rows, one per event", async () => {
    const ids = Array.from({ length: 50 }, () => uniqueId("batch"));
    const res = await stack.post("/v1/events", { events: ids.map((id, n) => event(id, n)) });
    expect(res.status).toBe(202);
    expect((res.body as Accepted).jobs.map((j) => j.id)).toEqual(ids);

    const rows = await rowsLanded(ids);
    expect(rows).toHaveLength(50);
    const byId = new Map(rows.map((r) => [r.eventId, r]));
    ids.forEach((id, n) => expect(byId.get(id)).toMatchObject({ userId: `user_${n}`, payload: { amount: 100 + n } }));
  });

  it("fills in the time of an event sent without one", async () => {
    const id = uniqueId("evt");
    const before = Date.now();
    const { occurredAt: _omitted, ...body } = event(id);
    expect((await stack.post("/v1/events", body)).status).toBe(202);
    const [row] = await rowsLanded([id]);
    expect(row!.occurredAt.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(row!.occurredAt.getTime()).toBeLessThanOrEqual(Date.now());
  });
});

describe("emails", () => {
  it("sends a posted email through Resend with the job id as Idempotency-Key and records it as sent", async () => {
    const providerId = uniqueId("re_msg");
    resend.respond({ status: 200, body: { id: providerId } });
    const res = await stack.post("/v1/emails", { to: "ada@example.com", subject: "Hello", text: "Hi Ada" });
    expect(res.status).toBe(202);
    const { id: jobId, queue } = res.body as { id: string; queue: string };
    expect(queue).toBe("email");

    const [row] = await eventually("a sent email_messages row", async () => {
      const rows = await emailRow(jobId);
      return rows[0]?.status === "sent" ? rows : undefined;
    });
    expect(row).toMatchObject({ status: "sent", provider: "resend", providerId, toAddresses: ["ada@example.com"], subject: "Hello", attempts: 1 });
    const sent = resendRequestsWithKey(jobId);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ method: "POST", path: "/emails", body: { to: ["ada@example.com"], subject: "Hello", text: "Hi Ada" } });
  });
});

describe("duplicates", () => {
  it("stores an event sent three times, once before and twice after its job completed, as one row", async () => {
    const id = uniqueId("dup");
    const audit = stack.queue("audit");
    expect((await stack.post("/v1/events", event(id))).status).toBe(202);
    const first = await settled(audit, id);
    const [row] = await rowsLanded([id]);
    const countsBefore = await audit.getJobCounts();

    const again = await Promise.all([stack.post("/v1/events", event(id)), stack.post("/v1/events", event(id))]);
    for (const res of again) expect(res).toMatchObject({ status: 202, body: { jobs: [{ id, queue: "audit" }] } });

    // The re-sends returned the existing job: no new job, the old one not run again, one row.
    expect(await audit.getJobCounts()).toEqual(countsBefore);
    expect((await audit.getJob(id))?.finishedOn).toBe(first.finishedOn);
    expect(await auditRows([id])).toEqual([row]);
  });

  it("sends an email posted twice with one Idempotency-Key once and stores one row", async () => {
    const key = uniqueId("welcome");
    const email = { to: "grace@example.com", subject: "Welcome", template: { name: "welcome", data: { name: "Grace" } } };
    const first = await stack.post("/v1/emails", email, { "Idempotency-Key": key });
    expect(first).toMatchObject({ status: 202, body: { id: key, queue: "email" } });
    const job = await settled(stack.queue("email"), key);
    expect(job.finishedOn).toBeTypeOf("number");

    const second = await stack.post("/v1/emails", email, { "Idempotency-Key": key });
    expect(second).toMatchObject({ status: 202, body: { id: key, queue: "email" } });
    expect((await stack.queue("email").getJob(key))?.finishedOn).toBe(job.finishedOn);

    expect(resendRequestsWithKey(key)).toHaveLength(1);
    const rows = await emailRow(key);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "sent", attempts: 1 });
  });
});
