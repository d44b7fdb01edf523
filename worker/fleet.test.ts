import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { EDGE_SCRIPTS } from "../shared/jobs/bullmq-scripts.ts";
import { auditContract } from "../shared/jobs/audit.ts";
import { createAuditHandler } from "./audit/handler.ts";
import type { Database } from "./db.ts";
import { startRedis } from "../tools/dev/local-services.ts";
import { createEmailHandler } from "./email/handler.ts";
import { PRELOADED_SCRIPTS, redisOptions } from "./fleet.ts";
import type { Handler } from "./runner.ts";
import { createStripeWebhookHandler } from "./stripe/handler.ts";
import { settled, startTestFleet, testDb, uniqueId } from "../tools/testing/fixtures.ts";

let database: Database;
beforeAll(() => {
  database = testDb();
});
afterAll(() => database.close());

function handlers(audit: Handler<typeof auditContract>) {
  return {
    audit,
    email: createEmailHandler(database.db, { resendApiKey: undefined, resendBaseUrl: undefined, emailFrom: "a@example.com" }),
    "stripe-webhook": createStripeWebhookHandler(database.db),
  };
}

function auditEvent() {
  const id = uniqueId("evt");
  return { id, name: "x", type: "domain" as const, occurredAt: "2026-11-23T10:00:00Z", payload: {} };
}

describe("startFleet", () => {
  it("preloads the edge's scripts, plain and behind the rate-limit prelude, so their SHA-1s are known to Redis", async () => {
    // A Redis of its own: on the run's shared one, other files EVAL the same scripts (and some
    // flush the script cache), so the check could pass, or fail, whatever startFleet did.
    const dataDir = join(tmpdir(), uniqueId("edgefleet-fleet-scripts"));
    const server = await startRedis({ dataDir });
    const redis = new Redis(redisOptions(server.url));
    try {
      // Every script the edge sends, in both forms: the list is derived from EDGE_SCRIPTS, not copied.
      expect(PRELOADED_SCRIPTS).toHaveLength(EDGE_SCRIPTS.length * 2);
      const shas = await Promise.all(PRELOADED_SCRIPTS.map((s) => s.sha1()));
      expect(await redis.script("EXISTS", ...shas)).toEqual(shas.map(() => 0));
      const t = await startTestFleet(
        { handlers: handlers(createAuditHandler(database.db).handle), log: () => {} },
        { redisUrl: server.url, queues: ["audit"] },
      );
      await t.stop();
      expect(await redis.script("EXISTS", ...shas)).toEqual(shas.map(() => 1));
    } finally {
      redis.disconnect();
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("drains jobs over rediss:// with a private CA, speaking RESP2", async () => {
    const t = await startTestFleet(
      { handlers: handlers(createAuditHandler(database.db).handle), scripts: [], log: () => {} },
      { redisUrl: inject("redisTlsUrl"), redisCaCertPath: inject("caCertPath"), queues: ["audit"] },
    );
    try {
      const e = auditEvent();
      await t.add(auditContract, e, { jobId: e.id });
      expect(await (await settled(t.queue("audit"), e.id)).isCompleted()).toBe(true);
      // BullMQ names its connections after the prefix; ioredis 6 would otherwise say resp=3.
      const admin = new Redis(redisOptions(inject("redisUrl")));
      const list = String(await admin.client("LIST")).split("\n");
      admin.disconnect();
      const ours = list.filter((line) => line.includes(`name=${t.config.queuePrefix}`));
      expect(ours.length).toBeGreaterThan(0);
      for (const line of ours) expect(line).toMatch(/ resp=2( |$)/);
    } finally {
      await t.stop();
    }
  });

  it("close() waits for a running job before resolving", async () => {
    let finished = false;
    const slow: Handler<typeof auditContract> = async () => {
      await new Promise((r) => setTimeout(r, 500));
      finished = true;
    };
    const t = await startTestFleet({ handlers: handlers(slow), scripts: [], log: () => {} }, { queues: ["audit"] });
    const e = auditEvent();
    await t.add(auditContract, e, { jobId: e.id });
    while ((await t.queue("audit").getJobState(e.id)) !== "active") await new Promise((r) => setTimeout(r, 10));
    expect(await t.fleet.close(5_000)).toEqual({ drained: true });
    expect(finished).toBe(true);
    expect(await t.queue("audit").getJobState(e.id)).toBe("completed");
    await t.stop();
  });

  it("close(timeoutMs) stops waiting for a job still running after timeoutMs and reports drained: false", async () => {
    let release!: () => void;
    const stuck = new Promise<void>((r) => (release = r));
    let started = false;
    const hung: Handler<typeof auditContract> = async () => {
      started = true;
      await stuck;
    };
    const t = await startTestFleet({ handlers: handlers(hung), scripts: [], log: () => {} }, { queues: ["audit"] });
    try {
      const e = auditEvent();
      await t.add(auditContract, e, { jobId: e.id });
      const deadline = Date.now() + 15_000;
      while (!started) {
        if (Date.now() > deadline) throw new Error("the job never started");
        await new Promise((r) => setTimeout(r, 20));
      }
      // The bound is 200 ms; 15 s only separates "gave up" from "waited for the job" (which never ends).
      const closed = await Promise.race([
        t.fleet.close(200),
        new Promise<"still waiting">((r) => setTimeout(() => r("still waiting"), 15_000)),
      ]);
      expect(closed).toEqual({ drained: false });
      // Abandoned, not finished: the lock lapses and the stalled check hands it to another worker.
      expect(await t.queue("audit").getJobState(e.id)).toBe("active");
    } finally {
      release();
      await t.stop();
    }
  });
});
