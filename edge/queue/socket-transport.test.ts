/**
 * The real edge path, inside workerd: cloudflare:sockets → RESP → BullMQ's scripts, against the
 * test Redis over plain TCP and over TLS (the test CA is trusted via NODE_EXTRA_CA_CERTS). The
 * EVAL fallback after SCRIPT FLUSH is tested in conformance.node.test.ts, on a Redis of its own:
 * flushing the shared one would race with every file that loads or counts scripts.
 */
import type { connect } from "cloudflare:sockets";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, inject, it } from "vitest";
import { auditContract, type AuditJob } from "../../shared/jobs/audit.ts";
import { createProducer } from "./producer.ts";
import { createSocketTransport, type SocketTransportOptions } from "./socket-transport.ts";
import { TransportError, type RedisTransport } from "./transport.ts";

const { REDIS_URL, REDIS_TLS_URL } = env as unknown as { REDIS_URL: string; REDIS_TLS_URL: string };

const opened: RedisTransport[] = [];
afterEach(async () => {
  for (const transport of opened.splice(0)) await transport.close();
  const cleaner = createSocketTransport(REDIS_URL);
  for (const prefix of prefixes.splice(0)) {
    const [keys] = await cleaner.pipeline([["KEYS", `${prefix}:*`]]);
    if (Array.isArray(keys) && keys.length > 0) await cleaner.pipeline([["DEL", ...keys.map(String)]]);
  }
  await cleaner.close();
});

/** A socket transport closed after the test. */
function transportFor(url: string, options?: SocketTransportOptions): RedisTransport {
  const transport = createSocketTransport(url, options);
  opened.push(transport);
  return transport;
}

const prefixes: string[] = [];
function uniquePrefix(): string {
  const prefix = `tws${crypto.randomUUID().slice(0, 8)}`;
  prefixes.push(prefix);
  return prefix;
}

const job = (id: string): AuditJob => ({
  id, name: "user.signed_up", type: "domain", occurredAt: "2026-01-01T00:00:00Z", payload: { n: 1 },
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => undefined, (err: unknown) => err);
}

describe("socket transport in workerd", () => {
  it.each([
    ["plain TCP", () => REDIS_URL, /^redis:\/\//],
    ["TLS", () => REDIS_TLS_URL, /^rediss:\/\//],
  ])("enqueues a job over %s that a status read then finds waiting", async (_, url, scheme) => {
    expect(url()).toMatch(scheme);
    const prefix = uniquePrefix();
    const producer = createProducer(transportFor(url()), { prefix });
    const added = await producer.add({ contract: auditContract, data: job("evt-sock"), opts: { jobId: "evt-sock" } });
    expect(added).toEqual({ id: "evt-sock", queue: "audit" });
    expect(await producer.getJob("audit", "evt-sock")).toMatchObject({ name: "record-event", state: "waiting", attemptsMade: 0 });
    await producer.ping();
  });

  it("reports a wrong password clearly, as not enqueued", async () => {
    const url = new URL(REDIS_URL);
    url.password = "wrong-password";
    const err = await rejection(createProducer(transportFor(url.toString())).ping());
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).message).toMatch(/AUTH.*(WRONGPASS|invalid)/i);
    expect((err as TransportError).maybeEnqueued).toBe(false);
  });

  it("fails as not enqueued, without waiting for the connect timeout, when nothing listens on the port", async () => {
    const url = new URL(REDIS_URL);
    url.port = "1"; // privileged and unused: connection refused
    const connectTimeoutMs = 20_000;
    const started = Date.now();
    const err = await rejection(createProducer(transportFor(url.toString(), { connectTimeoutMs })).ping());
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).maybeEnqueued).toBe(false);
    expect((err as TransportError).message).not.toMatch(/timed out/);
    // A refusal is immediate; only a wait for the timer could take this long.
    expect(Date.now() - started).toBeLessThan(connectTimeoutMs / 2);
  });

  it("gives up on a connect that never completes after the connect timeout, as not enqueued", async () => {
    // A real socket whose handshake never finishes (e.g. a blackholed host, which this sandbox
    // cannot produce: unroutable addresses fail at once). Its `opened` promise never settles.
    let closedByTransport = false;
    const hanging: typeof connect = () => ({
      opened: new Promise<never>(() => {}),
      closed: new Promise<never>(() => {}),
      readable: new ReadableStream(),
      writable: new WritableStream(),
      close: async () => {
        closedByTransport = true;
      },
    }) as unknown as Socket;
    const started = Date.now();
    const err = await rejection(createProducer(transportFor(REDIS_URL, { connectTimeoutMs: 300, connect: hanging })).ping());
    expect(err).toBeInstanceOf(TransportError);
    // The message names the timer that fired; without one this test would hang to its own timeout.
    expect((err as TransportError).message).toMatch(/timed out after 300 ms/);
    expect((err as TransportError).maybeEnqueued).toBe(false);
    expect(closedByTransport).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it("reports a reply that never comes as maybe enqueued, after the command timeout", async () => {
    const transport = transportFor(REDIS_URL, { commandTimeoutMs: 300 });
    const started = Date.now();
    // BLPOP with timeout 0 never answers on an empty list: a Redis that stopped answering.
    const err = await rejection(transport.pipeline([["BLPOP", `${uniquePrefix()}:nothing`, "0"]]));
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).maybeEnqueued).toBe(true);
    expect((err as TransportError).message).toMatch(/no reply from .* within 300 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });
});

describe("TLS verification in workerd", () => {
  // Both endpoints forward to the test Redis once a handshake succeeds, so a client that skipped a
  // check would get a working Redis and these tests would see the job land.
  it.each([
    ["a certificate from an untrusted CA", () => inject("redisUntrustedTlsUrl")],
    ["a trusted certificate for another host name", () => inject("redisWrongHostTlsUrl")],
  ])("refuses %s, as not enqueued, and nothing reaches Redis", async (_, url) => {
    expect(url()).toMatch(/^rediss:\/\//);
    const prefix = uniquePrefix();
    const producer = createProducer(transportFor(url()), { prefix });
    const err = await rejection(producer.add({ contract: auditContract, data: job("evt-tls"), opts: { jobId: "evt-tls" } }));
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).maybeEnqueued).toBe(false);
    const cleaner = transportFor(REDIS_URL);
    expect(await cleaner.pipeline([["EXISTS", `${prefix}:audit:evt-tls`]])).toEqual([0]);
  });
});
