// Self-host mode end to end: `node worker/main.ts` with EDGEFLEET_ROLE=all (API + fleet in one
// process) and =api (API only), driven over HTTP like a client, observed in Redis and Postgres.
import { createServer, type AddressInfo, type Socket } from "node:net";
import { Queue } from "bullmq";
import { eq, inArray } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { sha256Hex } from "../../edge/auth.ts";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import { emailMessages } from "../../shared/db/email-messages.ts";
import type { Database } from "../../worker/db.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { startFakeResend } from "../testing/fake-resend.ts";
import { deleteKeys, eventually, testDb, uniqueId } from "../testing/fixtures.ts";
import { runMain, type MainProcess } from "../testing/main-process.ts";

const API_KEY = "selfhost-key-0123456789";
let database: Database;
beforeAll(() => {
  database = testDb();
});
afterAll(() => database.close());

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Starts the process (SIGKILLed after the test if still running) and a queue on its prefix. */
async function start(env: Record<string, string>) {
  const prefix = uniqueId("sh");
  cleanups.push(() => deleteKeys(inject("redisUrl"), prefix));
  const main = runMain({ API_KEY_HASHES: await sha256Hex(API_KEY), QUEUE_PREFIX: prefix, PORT: "0", ...env });
  cleanups.push(async () => void main.child.kill("SIGKILL"));
  const audit = new Queue("audit", { connection: redisOptions(inject("redisUrl")), prefix });
  cleanups.push(() => audit.close());
  return { main, prefix, audit };
}

async function baseUrl(main: MainProcess, line: string): Promise<string> {
  const ready = await main.waitForLine(line, 60_000);
  return `http://127.0.0.1:${String(ready.port)}`;
}

function post(base: string, path: string, json: unknown) {
  return fetch(`${base}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(json),
    signal: AbortSignal.timeout(30_000),
  });
}

async function getJson(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(30_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("EDGEFLEET_ROLE=all (API and fleet in one process)", () => {
  it("takes an event over HTTP into Postgres, and on SIGTERM stops HTTP, drains and exits 0", async () => {
    const { main, prefix } = await start({
      EDGEFLEET_ROLE: "all",
      REDIS_URL: inject("redisUrl"),
      DATABASE_URL: inject("databaseUrl"),
      EMAIL_CAPTURE: "1",
      WORKER_DRAIN_DELAY_SECONDS: "1",
    });
    const base = await baseUrl(main, "worker ready");
    expect(main.lines.find((l) => l.msg === "worker ready")).toMatchObject({ role: "all", api: "socket", prefix });

    const id = uniqueId("evt");
    const res = await post(base, "/v1/events", { id, name: "invoice.paid", type: "domain", accountId: "acct_sh", payload: { amount: 5 } });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ jobs: [{ id, queue: "audit" }] });
    const [row] = await eventually("the audit row", async () => {
      const rows = await database.db.select().from(auditLogs).where(inArray(auditLogs.eventId, [id]));
      return rows.length > 0 ? rows : undefined;
    }, 60_000);
    expect(row).toMatchObject({ eventId: id, eventName: "invoice.paid", eventType: "domain", accountId: "acct_sh", payload: { amount: 5 } });

    // One port answers the platform's probes for both halves, and the API sees its own fleet.
    const ready = await getJson(`${base}/readyz`);
    expect(ready).toMatchObject({ status: 200, body: { status: "ready", checks: { redis: "ok", postgres: "ok", "api-redis": "ok" } } });
    const health = await getJson(`${base}/v1/health`, { authorization: `Bearer ${API_KEY}` });
    expect(health).toMatchObject({ status: 200, body: { redis: "ok", fleet: "seen" } });
    // The same port serves the fleet's /metrics (worker/metrics.ts): the job just processed is counted.
    const metrics = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    expect(metrics).toMatch(/^edgefleet_jobs_total\{queue="audit",name="record-event",outcome="completed"\} 1$/m);
    expect(metrics).toMatch(/^edgefleet_dependency_up\{dependency="api-redis"\} 1$/m);

    main.child.kill("SIGTERM");
    expect(await main.exitedWithin(60_000)).toBe(0);
    expect(main.lines.find((l) => l.msg === "worker stopped")).toMatchObject({ drained: true, answered: true });
    const after = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(10_000) }).then(() => "answered", () => "refused");
    expect(after).toBe("refused");
  }, 120_000);
});

describe("EDGEFLEET_ROLE=all: SIGTERM", () => {
  it("closes the HTTP port first, while a running job still finishes, then exits 0", async () => {
    const resend = await startFakeResend();
    cleanups.push(() => resend.close());
    const { main } = await start({
      EDGEFLEET_ROLE: "all",
      REDIS_URL: inject("redisUrl"),
      DATABASE_URL: inject("databaseUrl"),
      WORKER_QUEUES: "email",
      RESEND_API_KEY: "re_test",
      RESEND_BASE_URL: resend.url,
      EMAIL_RATE_PER_SECOND: "50",
      WORKER_DRAIN_DELAY_SECONDS: "1",
      SHUTDOWN_TIMEOUT_MS: "60000",
    });
    const base = await baseUrl(main, "worker ready");
    // Resend holds its answer: the job is running when SIGTERM arrives.
    resend.respond({ status: 200, body: { id: "re_slow" }, delayMs: 3_000 });
    const key = uniqueId("mail");
    const res = await fetch(`${base}/v1/emails`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", "idempotency-key": key },
      body: JSON.stringify({ to: "a@example.com", subject: "s", text: "t" }),
      signal: AbortSignal.timeout(30_000),
    });
    expect(res.status).toBe(202);
    await resend.waitForRequests(1, 30_000);

    main.child.kill("SIGTERM");
    await main.waitForLine("worker stopping");
    const probe = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(10_000) }).then(() => "answered", () => "refused");
    expect(probe).toBe("refused");
    // The port closed while the fleet was still draining, not after.
    expect(main.lines.some((l) => l.msg === "worker stopped")).toBe(false);

    expect(await main.exitedWithin(60_000)).toBe(0);
    expect(main.lines.find((l) => l.msg === "worker stopped")).toMatchObject({ drained: true });
    const [row] = await database.db.select().from(emailMessages).where(eq(emailMessages.jobId, key));
    expect(row).toMatchObject({ status: "sent", providerId: "re_slow" });
  }, 120_000);
});

describe("EDGEFLEET_ROLE=api (the API alone)", () => {
  it("needs no database, enqueues over rediss:// verified with REDIS_CA_CERT, and exits 0 on SIGTERM", async () => {
    const { main, audit } = await start({
      EDGEFLEET_ROLE: "api",
      REDIS_URL: inject("redisTlsUrl"),
      REDIS_CA_CERT: inject("caCertPath"),
    });
    const base = await baseUrl(main, "api ready");
    expect(await getJson(`${base}/readyz`)).toMatchObject({ status: 200, body: { checks: { redis: "ok" } } });

    const id = uniqueId("evt");
    const res = await post(base, "/v1/events", { id, name: "n", type: "integration", payload: {} });
    expect(res.status).toBe(202);
    const job = await audit.getJob(id);
    expect(job?.data).toMatchObject({ id, name: "n", type: "integration" });
    expect(await audit.getJobState(id)).toBe("waiting");
    // The same answers as on the edge: bad input is a 400 with the field at fault.
    const bad = await post(base, "/v1/events", { name: "n", type: "nope", payload: {} });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string; field: string } }).error).toMatchObject({ field: "type" });

    main.child.kill("SIGTERM");
    expect(await main.exitedWithin(30_000)).toBe(0);
    expect(main.lines.some((l) => l.msg === "api stopped")).toBe(true);
  }, 90_000);

  it("reaches Redis over Upstash REST when configured that way, as the edge does", async () => {
    const { main, audit } = await start({
      EDGEFLEET_ROLE: "api",
      UPSTASH_REDIS_REST_URL: inject("upstashUrl"),
      UPSTASH_REDIS_REST_TOKEN: inject("upstashToken"),
    });
    const base = await baseUrl(main, "api ready");
    expect(main.lines.find((l) => l.msg === "api ready")).toMatchObject({ redis: "upstash" });
    expect(await getJson(`${base}/readyz`)).toMatchObject({ status: 200, body: { checks: { redis: "ok" } } });
    const id = uniqueId("evt");
    expect((await post(base, "/v1/events", { id, name: "rest", type: "domain", payload: {} })).status).toBe(202);
    expect((await audit.getJob(id))?.data).toMatchObject({ id, name: "rest" });
    main.child.kill("SIGTERM");
    expect(await main.exitedWithin(30_000)).toBe(0);
  }, 90_000);

  it("without the CA file refuses the server's certificate: not ready, and 503 with nothing enqueued", async () => {
    // The child gets no NODE_EXTRA_CA_CERTS (runMain passes PATH only): REDIS_CA_CERT is the only trust.
    const { main, audit } = await start({ EDGEFLEET_ROLE: "api", REDIS_URL: inject("redisTlsUrl") });
    const base = await baseUrl(main, "api ready");
    const ready = await getJson(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(String((ready.body.checks as Record<string, string>).redis)).toMatch(/certificate/i);
    const id = uniqueId("evt");
    const res = await post(base, "/v1/events", { id, name: "n", type: "domain", payload: {} });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("2");
    expect(await audit.getJob(id)).toBeUndefined();
  }, 90_000);

  it("on SIGTERM answers the request already in flight, then exits 0", async () => {
    const redis = await startSilentRedis();
    cleanups.push(() => redis.close());
    const { main } = await start({
      EDGEFLEET_ROLE: "api",
      REDIS_URL: redis.url,
      REDIS_COMMAND_TIMEOUT_MS: "3000",
      SHUTDOWN_TIMEOUT_MS: "30000",
    });
    const base = await baseUrl(main, "api ready");
    expect((await getJson(`${base}/readyz`)).status).toBe(200);
    const inFlight = post(base, "/v1/events", { name: "n", type: "domain", payload: {} });
    // The enqueue reached "Redis", which holds its reply: the request is mid-flight now.
    await redis.scriptReceived;
    main.child.kill("SIGTERM");
    await main.waitForLine("api stopping");
    const res = await inFlight;
    // Answered with the truth (maybe accepted: retry with the key), not cut off by the shutdown.
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: "queue_unavailable",
      message: expect.stringContaining("may have been accepted"),
    });
    expect(await main.exitedWithin(30_000)).toBe(0);
    expect(main.lines.find((l) => l.msg === "api stopped")).toMatchObject({ answered: true });
  }, 90_000);
});

/**
 * A stand-in for a Redis that answers PING but never answers a script: the one way to hold an
 * enqueue in flight at a known moment (the real Redis answers in microseconds).
 */
async function startSilentRedis() {
  let received!: () => void;
  const scriptReceived = new Promise<void>((resolve) => (received = resolve));
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("data", (chunk: Buffer) => {
      const text = chunk.toString("latin1");
      if (/EVAL/i.test(text)) return received();
      for (const _ of text.matchAll(/PING/gi)) socket.write("+PONG\r\n");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    scriptReceived,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("configuration", () => {
  it("lists the problems of both halves for EDGEFLEET_ROLE=all and exits 2", async () => {
    const main = runMain({ EDGEFLEET_ROLE: "all", REDIS_URL: "nope" });
    expect(await main.exited).toBe(2);
    const text = main.lines.map((l) => String(l.msg)).join("\n");
    for (const name of ["REDIS_URL", "DATABASE_URL", "API_KEY_HASHES"]) expect(text).toContain(name);
  });

  it("refuses an unknown role, exit 2", async () => {
    const main = runMain({ EDGEFLEET_ROLE: "edge" });
    expect(await main.exited).toBe(2);
    expect(main.lines.map((l) => String(l.msg)).join("\n")).toContain("EDGEFLEET_ROLE: must be one of worker, api, all");
  });
});
