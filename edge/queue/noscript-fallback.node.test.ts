// On a Redis that has not loaded the edge's scripts (fresh, flushed, failed over), a batch costs
// one EVAL per distinct script — not one 26 KB EVAL per job. Checked on a private Redis (SCRIPT
// FLUSH and command stats are server-wide), counting what the server itself executed.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addStandardJobScript } from "../../shared/jobs/bullmq-scripts.ts";
import { ROOT, startRedis, type LocalRedis } from "../../tools/dev/local-services.ts";
import { bareContract } from "./conformance-cases.test-helper.ts";
import { createNodeTransport } from "./node-transport.test-helper.ts";
import { createProducer } from "./producer.ts";
import { uniquePrefix } from "./redis-state.test-helper.ts";
import { encodeCommands } from "./resp.ts";

const dataDir = join(ROOT, ".data/test", `noscript-${process.pid}-${Date.now()}`);
let redis: LocalRedis;
let client: Redis;

beforeAll(async () => {
  redis = await startRedis({ dataDir });
  client = new Redis(redis.url, { maxRetriesPerRequest: null });
});
afterAll(async () => {
  await client?.quit();
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Calls per command since the last CONFIG RESETSTAT, from Redis's own INFO commandstats. */
async function calls(): Promise<Record<string, number>> {
  const info = await client.info("commandstats");
  const out: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) out[match[1] as string] = Number(match[2]);
  return out;
}

describe("NOSCRIPT fallback", () => {
  it("re-sends a cold batch of 50 with the script body once, and adds all 50 jobs once", async () => {
    const prefix = uniquePrefix("ns");
    await client.script("FLUSH");
    await client.config("RESETSTAT");
    const transport = createNodeTransport(redis.url);
    try {
      const producer = createProducer(transport, { prefix });
      const jobs = Array.from({ length: 50 }, (_, i) => ({ contract: bareContract, data: { i }, opts: { jobId: `job-${i}` } }));
      const added = await producer.add(jobs);
      expect(added.map((j) => j.id)).toEqual(jobs.map((j) => j.opts.jobId));

      const stats = await calls();
      expect(stats.eval).toBe(1);
      // 50 NOSCRIPT misses, then 49 hits behind the one EVAL.
      expect(stats.evalsha).toBe(99);
      expect(await client.llen(`${prefix}:audit:wait`)).toBe(50);

      // What went over the wire: the fallback round trip carries the 26 KB body once.
      const [, fallback] = transport.sent;
      expect(transport.sent).toHaveLength(2);
      const body = new TextEncoder().encode(addStandardJobScript.content).byteLength;
      expect(body).toBeGreaterThan(20_000);
      const bytes = encodeCommands(fallback ?? []).byteLength;
      expect(bytes).toBeGreaterThan(body);
      expect(bytes).toBeLessThan(body + 50 * 1_000);
    } finally {
      await transport.close();
      const keys = await client.keys(`${prefix}:*`);
      if (keys.length > 0) await client.del(...keys);
    }
  });

  it("sends one body per distinct script when a cold batch mixes them", async () => {
    const prefix = uniquePrefix("nm");
    await client.script("FLUSH");
    await client.config("RESETSTAT");
    const transport = createNodeTransport(redis.url);
    try {
      const producer = createProducer(transport, { prefix });
      const jobs = Array.from({ length: 12 }, (_, i) => ({
        contract: bareContract, data: { i }, opts: { jobId: `mix-${i}`, ...(i % 3 === 1 ? { delay: 60_000 } : i % 3 === 2 ? { priority: 2 } : {}) },
      }));
      await producer.add(jobs);
      expect((await calls()).eval).toBe(3);
      expect(await client.llen(`${prefix}:audit:wait`)).toBe(4);
      expect(await client.zcard(`${prefix}:audit:delayed`)).toBe(4);
      expect(await client.zcard(`${prefix}:audit:prioritized`)).toBe(4);
    } finally {
      await transport.close();
      const keys = await client.keys(`${prefix}:*`);
      if (keys.length > 0) await client.del(...keys);
    }
  });
});
