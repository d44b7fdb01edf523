import { spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Queue } from "bullmq";
import { afterEach, describe, expect, inject, it } from "vitest";
import { auditContract } from "../../shared/jobs/audit.ts";
import { deleteKeys, uniqueId } from "../../tools/testing/fixtures.ts";
import { redisOptions } from "../fleet.ts";

const MAIN = join(import.meta.dirname, "main.ts");
const WAKE_TOKEN = "a-wake-token-of-at-least-32-characters!";

function run(env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const lines: Array<Record<string, unknown>> = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ text: line });
      }
    });
  }
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, lines, exited };
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

describe("node worker/autoscaler/main.ts", () => {
  it("refuses a bad configuration with every problem named, and exits 2", async () => {
    const p = run({ AUTOSCALER_TARGETS: "[{}]", AUTOSCALER_WAKE_TOKEN: "short" });
    expect(await p.exited).toBe(2);
    const text = p.lines.map((l) => l.text).join("\n");
    expect(text).toContain("invalid autoscaler configuration");
    expect(text).toContain("REDIS_URL");
    expect(text).toContain("AUTOSCALER_WAKE_TOKEN: at least 32 characters");
    expect(text).toContain('AUTOSCALER_TARGETS[0]["queues"]');
  });

  it("in a dry run answers /healthz, prints the decision a wake leads to, and exits 0 on SIGTERM", async () => {
    const prefix = uniqueId("asmain");
    const queue = new Queue("audit", { connection: redisOptions(inject("redisUrl")), prefix });
    cleanups.push(async () => {
      await queue.close();
      await deleteKeys(inject("redisUrl"), prefix);
    });
    const p = run({
      REDIS_URL: inject("redisUrl"),
      QUEUE_PREFIX: prefix,
      AUTOSCALER_TARGETS: JSON.stringify([{ queues: ["audit"], jobsPerReplica: 10, maxReplicas: 5 }]),
      AUTOSCALER_WAKE_TOKEN: WAKE_TOKEN,
      DRY_RUN: "1",
      PORT: "0",
    });
    cleanups.push(async () => void p.child.kill("SIGKILL"));
    await expect.poll(() => p.lines.some((l) => l.msg === "autoscaler ready"), { timeout: 30_000 }).toBe(true);
    const ready = p.lines.find((l) => l.msg === "autoscaler ready")!;
    expect(ready).toMatchObject({ prefix, targets: "fleet:audit:0-5", railway: "dry-run" });
    const url = `http://127.0.0.1:${ready.port as number}`;

    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: "ok", dryRun: true, targets: [{ name: "fleet", replicas: 0 }] });

    await queue.addBulk(Array.from({ length: 25 }, () => ({ name: auditContract.name, data: { id: uniqueId("e"), name: "x", type: "domain", occurredAt: "2026-11-23T10:00:00Z", payload: {} } })));
    const woken = await fetch(`${url}/wake`, { method: "POST", headers: { authorization: `Bearer ${WAKE_TOKEN}` }, body: '{"queues":["audit"]}' });
    expect(woken.status).toBe(202);
    await expect.poll(() => p.lines.find((l) => l.msg === "autoscaler decision" && l.to === 3), { timeout: 15_000 }).toMatchObject({ backlog: 25, from: 0, dryRun: true });

    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    expect(p.lines.at(-1)).toMatchObject({ msg: "autoscaler stopped" });
    expect(JSON.stringify(p.lines)).not.toContain(WAKE_TOKEN);
  });
});
