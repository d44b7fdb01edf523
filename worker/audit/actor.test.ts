import { inArray } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import { auditContract, type AuditJob } from "../../shared/jobs/audit.ts";
import { settled, startTestFleet, testDb, uniqueId, type TestFleet } from "../../tools/testing/fixtures.ts";
import type { Database } from "../db.ts";
import { createEmailHandler } from "../email/handler.ts";
import { createStripeWebhookHandler } from "../stripe/handler.ts";
import { createAuditHandler } from "./handler.ts";

let database: Database;
let t: TestFleet | undefined;

beforeAll(() => {
  database = testDb();
});
afterAll(() => database.close());
afterEach(() => t?.stop());

async function start() {
  t = await startTestFleet(
    {
      handlers: {
        audit: createAuditHandler(database.db).handle,
        email: createEmailHandler(database.db, { resendApiKey: undefined, resendBaseUrl: undefined, emailFrom: "t@example.com" }),
        "stripe-webhook": createStripeWebhookHandler(database.db),
      },
      scripts: [],
    },
    { queues: ["audit"] },
  );
  return t;
}

function event(overrides: Partial<AuditJob> = {}): AuditJob {
  return { id: uniqueId("evt"), name: "order.placed", type: "domain", occurredAt: "2026-11-30T08:00:00.000Z", payload: {}, ...overrides };
}

async function stored(job: AuditJob) {
  const fleet = t!;
  const added = await fleet.add(auditContract, job, { jobId: job.id });
  expect((await settled(fleet.queue("audit"), added.id!)).finishedOn).toBeTypeOf("number");
  const [row] = await database.db.select().from(auditLogs).where(inArray(auditLogs.eventId, [job.id]));
  return row;
}

describe("the audit row records who sent the event", () => {
  it("stores an API-key actor's type and id", async () => {
    await start();
    const row = await stored(event({ actor: { type: "api_key", id: "9f86d081884c" } }));
    expect(row).toMatchObject({ actorType: "api_key", actorId: "9f86d081884c" });
  });

  it("stores a user actor (the token's sub)", async () => {
    await start();
    const row = await stored(event({ accountId: "acct_7", actor: { type: "user", id: "user|42" } }));
    expect(row).toMatchObject({ actorType: "user", actorId: "user|42", accountId: "acct_7" });
  });

  it("stores a job without an actor (queued before actors existed) with null actor columns", async () => {
    await start();
    const row = await stored(event());
    expect(row).toMatchObject({ actorType: null, actorId: null });
  });
});
