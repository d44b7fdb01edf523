// Redis goes away under a running edge and fleet, then comes back from its AOF. The edge must fail
// closed and fast; nothing it acknowledged before may be lost; a client retry must land once.
// This file has its own Redis (AOF on) because it stops and kills it; the run's shared one stays
// untouched.
//
// What the AOF guarantees (redis.io/docs/management/persistence, and Redis' flushAppendOnlyFile):
// Redis write(2)s a command to the AOF before its reply leaves, so a crash of the Redis *process*
// (SIGKILL, OOM kill) loses no acknowledged write — except with `appendfsync everysec` while a
// background fsync is stalled: Redis then holds the writes in memory for up to 2 s. What is written
// but not yet fsynced is lost when the *machine* goes down (kernel panic, power loss): with
// `everysec` up to about 1 s of acknowledged jobs (2 s on a stalled disk); with `always` nothing,
// because Redis fsyncs before it replies. A machine crash can't be staged here; a process crash can.
// The queues keep `everysec`: `always` gave 28 % of its Queue.add throughput and a 5.8 ms instead
// of 0.3 ms p99 on the benchmark machine (README, `npm run bench` section "AOF fsync policy").
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inArray } from "drizzle-orm";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import type { Database } from "../../worker/db.ts";
import { startRedis, type LocalRedis } from "../dev/local-services.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { eventually, testDb, uniqueId } from "../testing/fixtures.ts";
import { startStack, type Stack } from "./stack.ts";

let redis: LocalRedis;
let stack: Stack;
let database: Database;
const dataDir = join(tmpdir(), uniqueId("edgefleet-e2e-redis"));

beforeAll(async () => {
  database = testDb();
  redis = await startRedis({ dataDir });
  // The crash stream sends as fast as it can from one key: this file is about Redis, not the limiter.
  stack = await startStack({ redisUrl: redis.url, edgeVars: { RATE_LIMITS: "off" } });
});

afterAll(async () => {
  await stack?.stop();
  await redis?.stop();
  await database?.close();
  await rm(dataDir, { recursive: true, force: true });
});

function event(id: string) {
  return { id, name: "order.placed", type: "domain", payload: { total: 42 } };
}

async function rowCounts(ids: string[]): Promise<Map<string, number>> {
  const rows = await database.db.select({ eventId: auditLogs.eventId }).from(auditLogs).where(inArray(auditLogs.eventId, ids));
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.eventId, (counts.get(r.eventId) ?? 0) + 1);
  return counts;
}

/**
 * Runs `during` with the fleet process stopped (SIGSTOP), so accepted jobs stay waiting in Redis:
 * they then survive a Redis restart only if Redis persisted them, not because a worker got to them
 * first. The fleet always gets SIGCONT, even when an assertion fails in between (a stopped child
 * would hang the teardown's SIGTERM).
 */
async function withFleetFrozen<T>(during: () => Promise<T>): Promise<T> {
  stack.fleet.child.kill("SIGSTOP");
  try {
    return await during();
  } finally {
    stack.fleet.child.kill("SIGCONT");
  }
}

/** Which of these audit jobs exist in Redis (BullMQ's job hash `<prefix>:audit:<id>`). */
async function jobsInRedis(ids: string[]): Promise<Set<string>> {
  const client = new Redis(redisOptions(redis.url));
  try {
    const replies = await Promise.all(ids.map((id) => client.exists(`${stack.prefix}:audit:${id}`)));
    return new Set(ids.filter((_, i) => replies[i] === 1));
  } finally {
    client.disconnect();
  }
}

async function untilStored(ids: string[]): Promise<Map<string, number>> {
  return eventually(
    "every accepted event in audit_logs",
    async () => {
      const c = await rowCounts(ids);
      return c.size === ids.length ? c : undefined;
    },
    60_000,
  );
}

it("answers 503 with Retry-After while Redis is stopped, loses nothing it accepted, and takes the retry once", async () => {
  const accepted = Array.from({ length: 30 }, () => uniqueId("pre"));
  const retried = uniqueId("retry");
  await withFleetFrozen(async () => {
    const batch = await stack.post("/v1/events", { events: accepted.slice(0, 25).map(event) });
    expect(batch.status).toBe(202);
    for (const id of accepted.slice(25)) expect((await stack.post("/v1/events", event(id))).status).toBe(202);
    expect((await jobsInRedis(accepted)).size).toBe(30);

    // SIGTERM: Redis writes and fsyncs its AOF on the way down (a crash is the next test).
    await redis.stop();
    const refused = await stack.post("/v1/events", event(retried));
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(refused.body).toMatchObject({ error: { code: "queue_unavailable" } });
    // Connection refused must surface at once, not after the 2 s connect bound.
    expect(refused.ms).toBeLessThan(2_000);
    // Readiness (behind the API key) reports Redis down; /health is liveness and stays 200.
    expect((await stack.get("/v1/health")).status).toBe(503);
    expect((await stack.get("/health")).status).toBe(200);

    await redis.restart();
    expect((await jobsInRedis(accepted)).size).toBe(30);
  });
  const retry = await stack.post("/v1/events", event(retried));
  expect(retry).toMatchObject({ status: 202, body: { jobs: [{ id: retried, queue: "audit" }] } });

  const all = [...accepted, retried];
  const counts = await untilStored(all);
  expect([...counts.values()].every((n) => n === 1)).toBe(true);
  for (const id of all) expect(await stack.queue("audit").getJobState(id)).toBe("completed");
}, 120_000);

/** The margin past Redis' 2 s bound on holding writes back while an fsync is stalled. */
const EVERYSEC_WINDOW_MS = 3_000;

it.each([
  { fsync: "everysec", guarantee: `every job acknowledged more than ${EVERYSEC_WINDOW_MS / 1000} s before the crash` },
  { fsync: "always", guarantee: "every acknowledged job" },
] as const)("keeps $guarantee when Redis crashes (SIGKILL) with appendfsync $fsync", async ({ fsync }) => {
  const admin = new Redis(redisOptions(redis.url));
  const pid = Number(/^process_id:(\d+)/m.exec(await admin.info("server"))?.[1]);
  await admin.config("SET", "appendfsync", fsync);
  admin.disconnect();
  expect(pid).toBeGreaterThan(0);

  const acks: Array<{ id: string; at: number }> = [];
  const sent: string[] = [];
  let crashedAt = 0;
  await withFleetFrozen(async () => {
    // Clients keep adding while Redis is killed, so acknowledgements right up to the crash are in
    // the set checked afterwards; the kill comes once the stream has run past the window.
    const started = performance.now();
    const lane = async () => {
      while (crashedAt === 0) {
        const id = uniqueId(`crash-${fsync}`);
        sent.push(id);
        const res = await stack.post("/v1/events", event(id));
        if (res.status === 202) acks.push({ id, at: performance.now() });
        else expect(res.status).toBe(503);
        // Past the window counted from the first acknowledgement (a slow first request must not
        // leave the window empty); a stream that never gets one ends after a minute and fails below.
        const first = acks[0]?.at;
        const due = first !== undefined ? performance.now() - first > EVERYSEC_WINDOW_MS + 1_000 : performance.now() - started > 60_000;
        if (crashedAt === 0 && due) {
          crashedAt = performance.now();
          process.kill(pid, "SIGKILL");
        }
      }
    };
    await Promise.all(Array.from({ length: 4 }, lane));
    await redis.restart(); // replays the AOF, the config back to the command line's everysec

    const kept = await jobsInRedis(acks.map((a) => a.id));
    const guaranteed = fsync === "always" ? acks : acks.filter((a) => a.at < crashedAt - EVERYSEC_WINDOW_MS);
    expect(guaranteed.length).toBeGreaterThan(0);
    expect(guaranteed.filter((a) => !kept.has(a.id)).map((a) => a.id)).toEqual([]);
  });
  // Whatever survived is processed once: no acknowledged job is left behind by the restart.
  const kept = [...(await jobsInRedis(sent))];
  const counts = await untilStored(kept);
  expect([...counts.values()].every((n) => n === 1)).toBe(true);
}, 180_000);
