import { rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createAuditHandler } from "./audit/handler.ts";
import { createDb, type Database } from "./db.ts";
import { startRedis, type LocalRedis } from "../tools/dev/local-services.ts";
import { createEmailHandler } from "./email/handler.ts";
import { redisOptions } from "./fleet.ts";
import { startHealthServer, type HealthServer } from "./health.ts";
import { createStripeWebhookHandler } from "./stripe/handler.ts";
import { startTestFleet, uniqueId, type TestFleet } from "../tools/testing/fixtures.ts";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The fleet's Redis check and the database's Postgres check behind a real health server. */
async function setup(options: { databaseUrl?: string; redisUrl?: string; checkTimeoutMs?: number } = {}) {
  const database: Database = createDb(options.databaseUrl ?? inject("databaseUrl"), { driver: "pg", max: 1 });
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
    { queues: ["audit"], queuePrefix: uniqueId("health"), ...(options.redisUrl ? { redisUrl: options.redisUrl } : {}) },
  );
  cleanups.push(() => t.stop());
  const health: HealthServer = await startHealthServer({
    port: 0,
    checks: { redis: t.fleet.ping, postgres: database.ping },
    checkTimeoutMs: options.checkTimeoutMs ?? 3_000,
  });
  cleanups.push(() => health.close());
  const get = async (path: string) => {
    // Far above any check's bound: a probe that never answers fails here, not by the test timeout.
    const res = await fetch(`http://127.0.0.1:${health.port}${path}`, { signal: AbortSignal.timeout(20_000) });
    return { status: res.status, body: (await res.json()) as { status?: string; checks?: Record<string, string> } };
  };
  return { get };
}

/**
 * A TCP server on a port of its own (bound to port 0, so no other process can hold it): "reset"
 * drops every connection at once (a dead Postgres), "silent" accepts and never answers (a hung one).
 */
async function fakePostgres(mode: "reset" | "silent"): Promise<string> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    if (mode === "reset") return void socket.resetAndDestroy();
    sockets.add(socket);
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("no address");
  const url = new URL(inject("databaseUrl"));
  url.port = String(address.port);
  return url.toString();
}

/** A Redis of this test's own, so stopping or freezing it disturbs no other test. */
async function privateRedis(): Promise<LocalRedis & { pid: number }> {
  const dataDir = join(tmpdir(), uniqueId("edgefleet-health-redis"));
  const redis = await startRedis({ dataDir });
  cleanups.push(async () => {
    await redis.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const admin = new Redis(redisOptions(redis.url));
  const pid = Number(/^process_id:(\d+)/m.exec(await admin.info("server"))?.[1]);
  admin.disconnect();
  return { ...redis, pid };
}

describe("health server", () => {
  it("answers /healthz and reports ready when Redis and Postgres answer", async () => {
    const { get } = await setup();
    expect(await get("/healthz")).toEqual({ status: 200, body: { status: "ok" } });
    expect(await get("/readyz")).toEqual({ status: 200, body: { status: "ready", checks: { redis: "ok", postgres: "ok" } } });
    expect((await get("/nope")).status).toBe(404);
  });

  it("answers /readyz 503 naming Postgres when the database is down, while /healthz stays 200", async () => {
    const { get } = await setup({ databaseUrl: await fakePostgres("reset") });
    const ready = await get("/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: "not ready", checks: { redis: "ok" } });
    expect(ready.body.checks?.postgres).toMatch(/ECONNRESET|Connection terminated/);
    expect((await get("/healthz")).status).toBe(200);
  });

  it("answers /readyz 503 naming Redis when Redis is down, and 200 again once it is back", async () => {
    const redis = await privateRedis();
    const { get } = await setup({ redisUrl: redis.url });
    expect((await get("/readyz")).status).toBe(200);
    await redis.stop();
    try {
      const ready = await get("/readyz");
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: "not ready", checks: { postgres: "ok" } });
      expect(ready.body.checks?.redis).toBeTypeOf("string");
      expect(ready.body.checks?.redis).not.toBe("ok");
      expect((await get("/healthz")).status).toBe(200);
    } finally {
      // Back on the same port before the fleet is closed (cleanup), and the fleet reconnects.
      await redis.restart();
    }
    const deadline = Date.now() + 30_000;
    while ((await get("/readyz")).status !== 200) {
      if (Date.now() > deadline) throw new Error("/readyz not 200 after Redis came back");
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  it("bounds each check by its own timeout: a hung Postgres reads as not ready, naming it", async () => {
    const { get } = await setup({ databaseUrl: await fakePostgres("silent"), checkTimeoutMs: 500 });
    const ready = await get("/readyz");
    expect(ready).toEqual({ status: 503, body: { status: "not ready", checks: { redis: "ok", postgres: "timed out after 500 ms" } } });
  });

  it("bounds each check by its own timeout: a hung Redis reads as not ready, naming it", async () => {
    const redis = await privateRedis();
    const { get } = await setup({ redisUrl: redis.url, checkTimeoutMs: 500 });
    process.kill(redis.pid, "SIGSTOP");
    try {
      const ready = await get("/readyz");
      expect(ready).toEqual({ status: 503, body: { status: "not ready", checks: { redis: "timed out after 500 ms", postgres: "ok" } } });
    } finally {
      // A stopped Redis would ignore the cleanup's SIGTERM.
      process.kill(redis.pid, "SIGCONT");
    }
  });
});
