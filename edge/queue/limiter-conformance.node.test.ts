/**
 * With a rate limit, the edge's add is still BullMQ's add: the limiter's prelude sits in front of
 * BullMQ's unchanged script, BullMQ's KEYS/ARGV keep their bytes and indexes (the denial marker is
 * one extra trailing KEYS entry), and the Redis state equals `Queue.add`'s apart from the limiter's
 * own counter. Over the limit, nothing at all is written — through RESP and through Upstash REST.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { addWithBullmq, auditData, cases, deleteKeys, T } from "./conformance-cases.test-helper.ts";
import type { LimitCheck } from "./limiter.ts";
import { createNodeTransport } from "./node-transport.test-helper.ts";
import { createProducer } from "./producer.ts";
import { snapshotRedis, toBytes, uniquePrefix } from "./redis-state.test-helper.ts";
import { auditContract } from "../../shared/jobs/audit.ts";
import type { RedisTransport } from "./transport.ts";
import { startUpstashStandIn, type UpstashStandIn } from "./upstash-stand-in.test-helper.ts";
import { createUpstashTransport } from "./upstash-transport.ts";

let client: Redis;
let rest: UpstashStandIn;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  client = new Redis(inject("redisUrl"), { maxRetriesPerRequest: null });
  rest = await startUpstashStandIn({ redisUrl: inject("redisUrl"), token: randomBytes(16).toString("hex") });
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await rest?.stop();
  await client?.quit();
});

function prefixed(tag: string): string {
  const prefix = uniquePrefix(tag);
  cleanup.push(() => deleteKeys(client, prefix));
  return prefix;
}

const check = (limit: number): LimitCheck => ({ key: `events:c0ffee:${randomUUID()}`, nonce: randomUUID(), limit, ttlMs: 65_000 });

/** Everything under the prefix but the limiter's own keys. */
async function bullmqState(prefix: string) {
  const state = await snapshotRedis(client, prefix, { meta: ["version"] });
  return Object.fromEntries(Object.entries(state).filter(([key]) => !key.startsWith("<p>:edgefleet:rl")));
}

describe("rate-limited add vs bullmq Queue.add", () => {
  it.each(cases)("keeps BullMQ's KEYS/ARGV and leaves Queue.add's Redis state: $title", async (c) => {
    const bullPrefix = prefixed("b");
    const edgePrefix = prefixed("e");
    const bull = await addWithBullmq(client, bullPrefix, c, (close) => cleanup.push(close));

    const transport = createNodeTransport(inject("redisUrl"));
    cleanup.push(() => transport.close());
    const limit = check(5);
    const [result] = await createProducer(transport, { prefix: edgePrefix, now: () => T }).addAll([{ contract: c.contract, data: c.data, ...(c.opts ? { opts: c.opts } : {}) }], limit);
    expect(result).toMatchObject({ id: bull.id, outcome: "accepted" });
    expect(limit.count).toBe(1);

    // First round trip: the limiter, then the guarded add (as EVALSHA; a cold Redis re-sends it as EVAL).
    const add = transport.sent[0]?.[1] ?? [];
    const [, numKeys, ...rest] = bull.args;
    const keyCount = Number(numKeys);
    expect(add[0]).toBe("EVALSHA");
    expect(Number(add[2])).toBe(keyCount + 1);
    const edgeKeys = add.slice(3, 3 + keyCount + 1);
    const edgeArgv = add.slice(3 + keyCount + 1);
    const norm = (bytes: number[], from: string, to: string) => Buffer.from(Buffer.from(bytes).toString("latin1").split(from).join(to), "latin1");
    // Same keys apart from the prefix, then the marker; ARGV byte for byte (after the prefix swap).
    expect(edgeKeys.slice(0, keyCount).map((k) => norm(toBytes(k), edgePrefix, "<p>")))
      .toEqual(rest.slice(0, keyCount).map((k) => norm(toBytes(k), bullPrefix, "<p>")));
    expect(edgeKeys.at(-1)).toBe(`${edgePrefix}:edgefleet:rl-deny:${limit.nonce}`);
    expect(edgeArgv.map((a) => norm(toBytes(a), edgePrefix, "<p>")))
      .toEqual(rest.slice(keyCount).map((a) => norm(toBytes(a), bullPrefix, "<p>")));

    expect(await bullmqState(edgePrefix)).toEqual(await bullmqState(bullPrefix));
    expect(await client.get(`${edgePrefix}:edgefleet:rl:${limit.key}`)).toBe("1");
    expect(await client.pttl(`${edgePrefix}:edgefleet:rl:${limit.key}`)).toBeGreaterThan(0);
  });
});

describe("over the limit nothing is written", () => {
  const transports: Array<[string, () => RedisTransport]> = [
    ["RESP", () => createNodeTransport(inject("redisUrl"))],
    ["Upstash REST", () => createUpstashTransport(rest.url, rest.token, { timeoutMs: 5000 })],
  ];
  it.each(transports)("refuses every job of a batch past the limit, and accepts within it (%s)", async (_name, open) => {
    const prefix = prefixed("o");
    const transport = open();
    cleanup.push(() => transport.close());
    const producer = createProducer(transport, { prefix, now: () => T });
    const jobs = (ids: string[]) => ids.map((id) => ({ contract: auditContract, data: { ...auditData, id }, opts: { jobId: id } }));
    const limit = check(1);
    const first = await producer.addAll(jobs(["a1", "a2"]), { ...limit });
    expect(first.map((r) => r.outcome)).toEqual(["accepted", "accepted"]);
    const before = await bullmqState(prefix);
    const second = { ...limit, nonce: randomUUID() };
    const refused = await producer.addAll(jobs(["b1", "b2", "b3"]), second);
    expect(second.count).toBe(2);
    expect(refused.map((r) => r.outcome)).toEqual(["not_accepted", "not_accepted", "not_accepted"]);
    expect(refused.map((r) => r.error?.message)).toEqual(Array(3).fill(expect.stringMatching(/RATE_LIMITED/)));
    // Not a byte of BullMQ's state changed: no job hash, no id counter, no event, no marker.
    expect(await bullmqState(prefix)).toEqual(before);
    expect(await client.exists(`${prefix}:audit:b1`, `${prefix}:audit:b2`, `${prefix}:audit:b3`)).toBe(0);
    expect(await client.lrange(`${prefix}:audit:wait`, 0, -1)).toEqual(["a2", "a1"]);
  });
});
