/**
 * The real edge path, inside workerd: cloudflare:sockets → RESP → BullMQ's scripts, against the
 * test Redis over plain TCP and over TLS (the test CA is trusted via NODE_EXTRA_CA_CERTS).
 */
import type { connect } from "cloudflare:sockets";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { auditContract, type AuditJob } from "../../shared/jobs/audit.ts";
import { createProducer } from "./producer.ts";
import type { Reply, RedisCommand } from "./resp.ts";
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

/** A socket transport that also counts round trips, so tests can see EVALSHA vs EVAL fallback. */
function transportFor(url: string, options?: SocketTransportOptions): RedisTransport & { roundTrips: RedisCommand[][] } {
  const inner = createSocketTransport(url, options);
  const roundTrips: RedisCommand[][] = [];
  const counted = {
    roundTrips,
    pipeline(commands: readonly RedisCommand[]): Promise<Reply[]> {
      roundTrips.push([...commands]);
      return inner.pipeline(commands);
    },
    close: () => inner.close(),
  };
  opened.push(counted);
  return counted;
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

  it("falls back to EVAL once when Redis has no cached script, and the job still lands", async () => {
    const prefix = uniquePrefix();
    const transport = transportFor(REDIS_URL);
    expect(await transport.pipeline([["SCRIPT", "FLUSH"]])).toEqual(["OK"]);
    const producer = createProducer(transport, { prefix });
    const added = await producer.add([
      { contract: auditContract, data: job("evt-a"), opts: { jobId: "evt-a" } },
      { contract: auditContract, data: job("evt-b"), opts: { jobId: "evt-b" } },
    ]);
    expect(added.map((j) => j.id)).toEqual(["evt-a", "evt-b"]);
    // FLUSH, the EVALSHA batch, then one EVAL batch for both NOSCRIPT items.
    expect(transport.roundTrips.map((cmds) => cmds.map((c) => c[0]))).toEqual([["SCRIPT"], ["EVALSHA", "EVALSHA"], ["EVAL", "EVAL"]]);
    expect(await transport.pipeline([["LRANGE", `${prefix}:audit:wait`, "0", "-1"]])).toEqual([["evt-b", "evt-a"]]);
    // Now cached: the next add is a single EVALSHA round trip.
    await producer.add({ contract: auditContract, data: job("evt-c"), opts: { jobId: "evt-c" } });
    expect(transport.roundTrips.at(-1)?.map((c) => c[0])).toEqual(["EVALSHA"]);
  });

  it("reports a wrong password clearly, as not enqueued", async () => {
    const url = new URL(REDIS_URL);
    url.password = "wrong-password";
    const err = await rejection(createProducer(transportFor(url.toString())).ping());
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).message).toMatch(/AUTH.*(WRONGPASS|invalid)/i);
    expect((err as TransportError).maybeEnqueued).toBe(false);
  });

  it("fails fast as not enqueued when nothing listens on the port", async () => {
    const url = new URL(REDIS_URL);
    url.port = "1"; // privileged and unused: connection refused
    const started = Date.now();
    const err = await rejection(createProducer(transportFor(url.toString(), { connectTimeoutMs: 500 })).ping());
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).maybeEnqueued).toBe(false);
    expect(Date.now() - started).toBeLessThan(1500);
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
    expect((err as TransportError).message).toMatch(/timed out after 300 ms/);
    expect((err as TransportError).maybeEnqueued).toBe(false);
    expect(closedByTransport).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it("reports a reply that never comes as maybe enqueued, after the command timeout", async () => {
    const transport = transportFor(REDIS_URL, { commandTimeoutMs: 300 });
    const started = Date.now();
    // BLPOP on an empty list holds the reply for 5 s: a stand-in for a Redis that stopped answering.
    const err = await rejection(transport.pipeline([["BLPOP", `${uniquePrefix()}:nothing`, "5"]]));
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).maybeEnqueued).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
