import { afterEach, describe, expect, inject, it } from "vitest";
import { join } from "node:path";
import { memoryLog, uniqueId } from "../../tools/testing/fixtures.ts";
import { createProcessDriver, type ProcessDriver, type ReplicaExit } from "./processes.ts";

const ROOT = join(import.meta.dirname, "../..");

function workerEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    REDIS_URL: inject("redisUrl"),
    DATABASE_URL: inject("databaseUrl"),
    QUEUE_PREFIX: uniqueId("procs"),
    WORKER_QUEUES: "audit",
    WORKER_DRAIN_DELAY_SECONDS: "1",
    SHUTDOWN_TIMEOUT_MS: "10000",
    ...extra,
  };
}

async function readyz(port: number): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
  } catch {
    return 0;
  }
}

let driver: ProcessDriver | undefined;
afterEach(async () => {
  for (const r of driver?.replicas() ?? []) if (r.pid) process.kill(r.pid, "SIGKILL");
  await driver?.close();
  driver = undefined;
});

// Each replica is a real `node worker/main.ts`: one took 21.6 s from spawn to /readyz 200 on this
// shared 2-core machine under load (seconds when it is quiet); the bound only stops a hang.
describe("the local process driver", { timeout: 180_000 }, () => {
  it("starts ready worker processes on their own ports and stops the newest with SIGTERM, which exits 0", async () => {
    const exits: ReplicaExit[] = [];
    const { log, lines } = memoryLog();
    driver = createProcessDriver({ env: workerEnv(), cwd: ROOT, log, onExit: (e) => exits.push(e) });

    await driver.apply(2);
    expect(driver.current()).toBe(2);
    const [first, second] = driver.replicas();
    expect(first!.port).not.toBe(second!.port);
    expect(await readyz(first!.port!)).toBe(200);
    expect(await readyz(second!.port!)).toBe(200);
    // The replicas' own lines come through with their number.
    expect(lines.filter((l) => l.msg === "worker ready").map((l) => l.replica).sort()).toEqual([1, 2]);

    await driver.apply(1);
    expect(driver.current()).toBe(1);
    expect(exits).toEqual([expect.objectContaining({ replica: 2, code: 0, signal: null, expected: true })]);
    expect(lines.find((l) => l.msg === "worker stopped" && l.replica === 2)).toMatchObject({ drained: true });
    expect(await readyz(second!.port!)).toBe(0);
    expect(await readyz(first!.port!)).toBe(200);

    await driver.apply(0);
    expect(driver.current()).toBe(0);
    expect(exits.map((e) => [e.replica, e.code, e.expected])).toEqual([[2, 0, true], [1, 0, true]]);
  });

  it("reports a replica that dies on its own, and the next apply replaces it", async () => {
    const exits: ReplicaExit[] = [];
    const { log } = memoryLog();
    driver = createProcessDriver({ env: workerEnv(), cwd: ROOT, log, onExit: (e) => exits.push(e) });
    await driver.apply(1);
    const [only] = driver.replicas();

    process.kill(only!.pid!, "SIGKILL");
    await expect.poll(() => exits.length).toBe(1);
    expect(exits[0]).toMatchObject({ replica: 1, signal: "SIGKILL", expected: false });
    expect(driver.current()).toBe(0);

    await driver.apply(1);
    expect(driver.replicas()).toEqual([expect.objectContaining({ replica: 2 })]);
    expect(await readyz(driver.replicas()[0]!.port!)).toBe(200);
  });

  it("rejects apply with the replica's own error when it cannot start, and keeps nothing running", async () => {
    const { log } = memoryLog();
    const env = workerEnv();
    delete env.DATABASE_URL;
    driver = createProcessDriver({ env, cwd: ROOT, log });
    await expect(driver.apply(1)).rejects.toThrow(/1 of 1 replica\(s\) failed to start: replica 1 exited before it was ready: .*DATABASE_URL/);
    expect(driver.current()).toBe(0);
  });

  it("refuses a negative or fractional replica count and any apply after close", async () => {
    driver = createProcessDriver({ env: workerEnv(), cwd: ROOT, log: memoryLog().log });
    await expect(driver.apply(-1)).rejects.toThrow("whole number");
    await expect(driver.apply(1.5)).rejects.toThrow("whole number");
    await driver.close();
    await expect(driver.apply(1)).rejects.toThrow("closed");
  });
});
