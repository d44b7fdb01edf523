/**
 * The connection a RedisConnection Durable Object holds (held-connection.ts), in Node: its
 * `cloudflare:sockets` import resolves to node-sockets.test-helper.ts, everything else is the
 * production code. It must pass on exactly what the producer writes (Redis state identical to
 * Queue.add's), share one write among concurrent callers, and turn every Redis failure into a
 * TransportError that says whether the commands may have run — never a hang. The object and the
 * Worker's RPC path around it are tested in workerd (durable-object-transport.test.ts).
 */
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { auditContract } from "../../shared/jobs/audit.ts";
import { startRedisForFile, type LocalRedis } from "../../tools/dev/local-services.ts";
import { startFaultProxy } from "../../tools/testing/fault-proxy.ts";
import { eventually } from "../../tools/testing/fixtures.ts";
import { addWithBullmq, auditData, cases, deleteKeys, T } from "./conformance-cases.test-helper.ts";
import { createHeldConnection, type HeldConnection, type HeldConnectionOptions } from "./held-connection.ts";
import { buildAddJob } from "./job-args.ts";
import { createProducer } from "./producer.ts";
import { snapshotRedis, uniquePrefix } from "./redis-state.test-helper.ts";
import type { RedisCommand } from "./resp.ts";
import { TransportError } from "./transport.ts";

let server: LocalRedis;
let client: Redis;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  // Counts connections and commands server-wide, so it runs on a Redis of its own.
  server = await startRedisForFile(inject("testDataDir"), "held-connection");
  client = new Redis(server.url, { maxRetriesPerRequest: null });
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await client?.quit();
  await server?.stop();
});

function held(url: string, options: HeldConnectionOptions = {}): HeldConnection {
  const connection = createHeldConnection(url, { clientName: "held-test", ...options });
  cleanup.push(() => connection.close());
  return connection;
}

async function rejection(promise: Promise<unknown>): Promise<TransportError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TransportError);
  return err as TransportError;
}

async function namedConnections(name: string): Promise<number> {
  const list = (await client.client("LIST")) as string;
  return list.split("\n").filter((line) => line.includes(` name=${name} `)).length;
}

describe("held connection: what it writes", () => {
  it.each(cases)("leaves the Redis state Queue.add leaves: $title", async (c) => {
    const bullPrefix = uniquePrefix("b");
    const edgePrefix = uniquePrefix("h");
    cleanup.push(() => deleteKeys(client, bullPrefix), () => deleteKeys(client, edgePrefix));
    const bull = await addWithBullmq(client, bullPrefix, c, (close) => cleanup.push(close));
    const producer = createProducer(held(server.url), { prefix: edgePrefix, now: () => T });
    expect(await producer.add({ contract: c.contract, data: c.data, opts: c.opts })).toEqual({ id: bull.id, queue: c.contract.queue });
    const ignore = { meta: ["version"] };
    expect(await snapshotRedis(client, edgePrefix, ignore)).toEqual(await snapshotRedis(client, bullPrefix, ignore));
  });

  it("sends the pipelines of concurrent callers in one write, on one connection, each answered with its own replies", async () => {
    const prefix = uniquePrefix("g");
    cleanup.push(() => deleteKeys(client, prefix));
    const connection = held(server.url, { clientName: "held-group" });
    const calls = Array.from({ length: 30 }, (_, i) =>
      buildAddJob({ prefix, queue: "audit", name: auditContract.name, data: { ...auditData, id: `g${i}` }, defaults: auditContract.defaults, opts: { jobId: `g${i}` }, timestamp: T }));
    const sha = await calls[0]!.script.sha1();
    await client.script("LOAD", calls[0]!.script.content);
    await client.config("RESETSTAT");
    const commands: RedisCommand[] = calls.map((call) => ["EVALSHA", sha, String(call.keys.length), ...call.keys, ...call.args]);
    // Thirty callers at once, each with its own pipeline (its add and a PING).
    const replies = await Promise.all(commands.map((command) => connection.pipeline([command, ["PING"]])));
    expect(replies).toEqual(calls.map((_, i) => [`g${i}`, "PONG"]));
    expect(connection.stats()).toEqual({ connections: 1, writes: 1, pipelines: 30 });
    expect(await namedConnections("held-group")).toBe(1);
    expect(await client.llen(`${prefix}:audit:wait`)).toBe(30);
    expect(await client.info("commandstats")).toMatch(/cmdstat_evalsha:calls=30,/);
  });

  it("moves to a fresh connection once the old one is past its age, and still answers", async () => {
    // The test's own clock: the connection ages only when the test says so.
    let clock = 0;
    const connection = held(server.url, { maxAgeMs: 1_000, clientName: "held-age", now: () => clock });
    expect(await connection.pipeline([["PING"]])).toEqual(["PONG"]);
    expect(connection.stats().connections).toBe(1);
    clock = 1_001;
    expect(await connection.pipeline([["ECHO", "second"]])).toEqual(["second"]);
    expect(connection.stats().connections).toBe(2);
    // The retired socket was closed once its replies were in.
    await eventually("the retired connection closed", async () => ((await namedConnections("held-age")) === 1 ? true : undefined));
  });
});

describe("held connection: Redis failures", () => {
  it("fails what was written as maybe enqueued when Redis dies mid-stream, then reconnects once Redis is back", async () => {
    const own = await startRedisForFile(inject("testDataDir"), "held-killed");
    cleanup.push(() => own.stop());
    // A command timeout far beyond the test's: only noticing the dead socket can end the wait.
    const connection = held(own.url, { commandTimeoutMs: 30_000, clientName: "held-killed" });
    expect(await connection.pipeline([["PING"]])).toEqual(["PONG"]);
    // Parked inside Redis (a blocking pop), so it is in flight when Redis goes away.
    const parked = rejection(connection.pipeline([["BLPOP", "never-pushed", "0"]]));
    const behind = rejection(connection.pipeline([["SET", "behind", "1"]]));
    await eventually("both pipelines written", async () => (connection.stats().pipelines === 3 ? true : undefined));
    await own.stop();
    for (const err of await Promise.all([parked, behind])) expect(err.maybeEnqueued).toBe(true);
    // Redis is gone: nothing can be written, so nothing can have run.
    const refused = await rejection(connection.pipeline([["PING"]]));
    expect(refused.maybeEnqueued).toBe(false);
    expect(refused.message).toMatch(/unreachable/);
  });

  it("gives up on a Redis that stops answering after its command timeout, as maybe enqueued, and reconnects after", async () => {
    const proxy = await startFaultProxy({ host: "127.0.0.1", port: server.port });
    cleanup.push(() => proxy.close());
    const connection = held(proxy.rewrite(server.url), { commandTimeoutMs: 300, clientName: "held-hung" });
    expect(await connection.pipeline([["PING"]])).toEqual(["PONG"]);
    proxy.set("hang");
    const err = await rejection(connection.pipeline([["SET", "hung", "1"]]));
    expect(err.maybeEnqueued).toBe(true);
    expect(err.message).toMatch(/no reply .* within 300 ms/);
    proxy.set("pass");
    expect(await connection.pipeline([["ECHO", "back"]])).toEqual(["back"]);
    expect(connection.stats().connections).toBe(2);
  });

  it("refuses with a clear, not-enqueued error when the password is wrong, and says nothing of the password", async () => {
    const url = new URL(server.url);
    url.password = "wrong-password-123";
    const err = await rejection(held(url.toString()).pipeline([["SET", "k", "v"]]));
    expect(err.maybeEnqueued).toBe(false);
    expect(err.message).toMatch(/AUTH.*(WRONGPASS|invalid)/i);
    expect(err.message).not.toContain("wrong-password-123");
  });
});
