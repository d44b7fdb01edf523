// Redis goes away under a running edge and fleet, then comes back from its AOF. The edge must fail
// closed and fast; nothing it acknowledged before may be lost; a client retry must land once.
// This file has its own Redis (AOF on) because it stops it; the run's shared one stays untouched.
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inArray } from "drizzle-orm";
import { afterAll, beforeAll, expect, it } from "vitest";
import { auditLogs } from "../../shared/db/audit-logs.ts";
import type { Database } from "../db.ts";
import { startRedis, type LocalRedis } from "../dev/local-services.ts";
import { testDb, uniqueId } from "../testing/fixtures.ts";
import { eventually, startStack, type Stack } from "./stack.ts";

let redis: LocalRedis;
let stack: Stack;
let database: Database;
const dataDir = join(tmpdir(), uniqueId("edgefleet-e2e-redis"));

beforeAll(async () => {
  database = testDb();
  redis = await startRedis({ dataDir });
  stack = await startStack({ redisUrl: redis.url });
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

it("answers 503 with Retry-After while Redis is down, loses nothing it accepted, and takes the retry once", async () => {
  // Freeze the fleet so the accepted jobs are still waiting in Redis when it stops: they survive
  // only if Redis persisted them (AOF), not because a worker got to them first.
  stack.fleet.child.kill("SIGSTOP");
  const accepted = Array.from({ length: 30 }, () => uniqueId("pre"));
  const batch = await stack.post("/v1/events", { events: accepted.slice(0, 25).map(event) });
  expect(batch.status).toBe(202);
  for (const id of accepted.slice(25)) expect((await stack.post("/v1/events", event(id))).status).toBe(202);
  expect(await stack.queue("audit").getWaitingCount()).toBe(30);

  await redis.stop();
  const retried = uniqueId("retry");
  const refused = await stack.post("/v1/events", event(retried));
  expect(refused.status).toBe(503);
  expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
  expect(refused.body).toMatchObject({ error: { code: "queue_unavailable" } });
  // Connection refused must surface at once, well inside the 2 s connect bound.
  expect(refused.ms).toBeLessThan(2_000);
  const health = await stack.get("/health");
  expect(health.status).toBe(503);

  await redis.restart();
  stack.fleet.child.kill("SIGCONT");
  const retry = await stack.post("/v1/events", event(retried));
  expect(retry).toMatchObject({ status: 202, body: { jobs: [{ id: retried, queue: "audit" }] } });

  const all = [...accepted, retried];
  const counts = await eventually(
    "every accepted event in audit_logs",
    async () => {
      const c = await rowCounts(all);
      return c.size === all.length ? c : undefined;
    },
    20_000,
  );
  expect([...counts.values()].every((n) => n === 1)).toBe(true);
  expect(await stack.queue("audit").getCompletedCount()).toBe(all.length);
});
