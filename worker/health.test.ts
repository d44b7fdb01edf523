import { afterEach, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { freePort } from "./dev/local-services.ts";
import { createDb, type Database } from "./db.ts";
import { startHealthServer, type HealthServer } from "./health.ts";
import { startTestFleet, uniqueId, type TestFleet } from "./testing/fixtures.ts";
import { createAuditHandler } from "./audit/handler.ts";
import { createEmailHandler } from "./email/handler.ts";
import { createStripeWebhookHandler } from "./stripe/handler.ts";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(databaseUrl: string) {
  const database: Database = createDb(databaseUrl, { driver: "pg", max: 1 });
  cleanups.push(() => database.close());
  const t: TestFleet = await startTestFleet(
    {
      handlers: {
        audit: createAuditHandler(database.db).handle,
        email: createEmailHandler(database.db, { resendApiKey: undefined, resendBaseUrl: undefined, emailFrom: "a@example.com" }),
        "stripe-webhook": createStripeWebhookHandler(database.db),
      },
      scripts: [],
      log: () => {},
    },
    { queues: ["audit"], queuePrefix: uniqueId("health") },
  );
  cleanups.push(() => t.stop());
  const health: HealthServer = await startHealthServer({
    port: 0,
    checks: { redis: t.fleet.ping, postgres: database.ping },
    checkTimeoutMs: 3_000,
  });
  cleanups.push(() => health.close());
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${health.port}${path}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return { get };
}

describe("health server", () => {
  it("answers /healthz and reports ready when Redis and Postgres answer", async () => {
    const { get } = await setup(inject("databaseUrl"));
    expect(await get("/healthz")).toEqual({ status: 200, body: { status: "ok" } });
    expect(await get("/readyz")).toEqual({ status: 200, body: { status: "ready", checks: { redis: "ok", postgres: "ok" } } });
    expect((await get("/nope")).status).toBe(404);
  });

  it("answers /readyz 503 naming Postgres when the database is down, while /healthz stays 200", async () => {
    const down = new URL(inject("databaseUrl"));
    down.port = String(await freePort());
    const { get } = await setup(down.toString());
    const ready = await get("/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: "not ready", checks: { redis: "ok" } });
    const checks = ready.body.checks as Record<string, string>;
    expect(checks.postgres).not.toBe("ok");
    expect(checks.postgres).toMatch(/ECONNREFUSED|connect/i);
    expect((await get("/healthz")).status).toBe(200);
  });
});
