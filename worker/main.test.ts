import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Queue } from "bullmq";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { emailMessages } from "../shared/db/email-messages.ts";
import { emailContract } from "../shared/jobs/email.ts";
import type { Database } from "./db.ts";
import { redisOptions } from "./fleet.ts";
import { startFakeResend, type FakeResend } from "./testing/fake-resend.ts";
import { deleteKeys, settled, testDb, uniqueId } from "./testing/fixtures.ts";

const MAIN = join(import.meta.dirname, "main.ts");

let database: Database;
let resend: FakeResend;
beforeAll(async () => {
  database = testDb();
  resend = await startFakeResend();
});
afterAll(async () => {
  await resend.close();
  await database.close();
});

interface Running {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  waitForLine(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

function runMain(env: Record<string, string>): Running {
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const lines: Array<Record<string, unknown>> = [];
  const listeners = new Set<() => void>();
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream! }).on("line", (line) => {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
      for (const l of listeners) l();
    });
  }
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    waitForLine: (msg, timeoutMs = 15_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const found = lines.find((l) => l.msg === msg);
          if (found) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no "${msg}" line; got ${JSON.stringify(lines)}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      }),
  };
}

describe("node worker/main.ts", () => {
  it("on SIGTERM finishes the running job, leaves no job half-done, and exits 0", async () => {
    const prefix = uniqueId("main");
    const queue = new Queue("email", { connection: redisOptions(inject("redisUrl")), prefix });
    const main = runMain({
      REDIS_URL: inject("redisUrl"),
      DATABASE_URL: inject("databaseUrl"),
      QUEUE_PREFIX: prefix,
      WORKER_QUEUES: "email",
      PORT: "0",
      RESEND_API_KEY: "re_test",
      RESEND_BASE_URL: resend.url,
      EMAIL_RATE_PER_SECOND: "50",
      SHUTDOWN_TIMEOUT_MS: "10000",
    });
    try {
      const ready = await main.waitForLine("worker ready");
      expect(ready).toMatchObject({ queues: "email", prefix, db: "pg", email: "resend" });

      // The provider holds its answer, so the job is mid-flight when SIGTERM arrives.
      resend.respond({ status: 200, body: { id: "re_slow" }, delayMs: 1_500 });
      const first = uniqueId("slow");
      await queue.add(emailContract.name, { to: "a@example.com", subject: "s", text: "t" }, { jobId: first });
      await resend.waitForRequests(1);
      main.child.kill("SIGTERM");
      await main.waitForLine("worker stopping");
      const second = uniqueId("late");
      await queue.add(emailContract.name, { to: "b@example.com", subject: "s", text: "t" }, { jobId: second });

      expect(await main.exited).toBe(0);
      expect(await (await settled(queue, first)).getState()).toBe("completed");
      const [row] = await database.db.select().from(emailMessages).where(eq(emailMessages.jobId, first));
      expect(row).toMatchObject({ status: "sent", providerId: "re_slow" });
      // A fetch already in flight when close() began may still take a job (BullMQ finishes it);
      // what must never happen is a job left active by the exited process.
      expect(["waiting", "completed"]).toContain(await queue.getJobState(second));
      expect(main.lines.find((l) => l.msg === "worker stopped")).toMatchObject({ drained: true });
    } finally {
      main.child.kill("SIGKILL");
      await queue.close();
      await deleteKeys(inject("redisUrl"), prefix);
    }
  });

  it("refuses to start with a bad config, listing every problem, exit code 2", async () => {
    const main = runMain({ REDIS_URL: "nope", WORKER_QUEUES: "bogus" });
    expect(await main.exited).toBe(2);
    const text = main.lines.map((l) => String(l.msg)).join("\n");
    expect(text).toContain("REDIS_URL");
    expect(text).toContain("DATABASE_URL");
    expect(text).toContain("bogus");
  });
});
