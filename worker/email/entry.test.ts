// The email settings through the real entry point (`node worker/main.ts` as child processes): the
// explicit capture choice, and EMAIL_RATE_PER_SECOND holding across two worker processes that drain
// the same queue (BullMQ's limiter lives in Redis, not in a process).
import { Queue } from "bullmq";
import { inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { emailMessages } from "../../shared/db/email-messages.ts";
import { emailContract } from "../../shared/jobs/email.ts";
import type { Database } from "../db.ts";
import { redisOptions } from "../fleet.ts";
import { startFakeResend, type FakeResend } from "../../tools/testing/fake-resend.ts";
import { deleteKeys, settled, testDb, uniqueId } from "../../tools/testing/fixtures.ts";
import { runMain, type MainProcess } from "../../tools/testing/main-process.ts";

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

function baseEnv(prefix: string): Record<string, string> {
  return { REDIS_URL: inject("redisUrl"), DATABASE_URL: inject("databaseUrl"), QUEUE_PREFIX: prefix, WORKER_QUEUES: "email", PORT: "0" };
}

async function stop(main: MainProcess): Promise<void> {
  if (main.child.exitCode === null) main.child.kill("SIGTERM");
  await main.exited;
}

describe("node worker/main.ts: email is sent or captured by explicit choice", () => {
  it("refuses to start without RESEND_API_KEY when it drains email, naming RESEND_API_KEY and EMAIL_CAPTURE (exit 2)", async () => {
    const main = runMain(baseEnv(uniqueId("nokey")));
    expect(await main.exited).toBe(2);
    const text = main.lines.map((l) => String(l.msg)).join("\n");
    expect(text).toContain("RESEND_API_KEY: required");
    expect(text).toContain("EMAIL_CAPTURE=1");
    expect(main.lines.some((l) => l.msg === "worker ready")).toBe(false);
  });

  it("refuses EMAIL_CAPTURE=1 together with RESEND_API_KEY (exit 2)", async () => {
    const main = runMain({ ...baseEnv(uniqueId("both")), EMAIL_CAPTURE: "1", RESEND_API_KEY: "re_test" });
    expect(await main.exited).toBe(2);
    expect(main.lines.map((l) => String(l.msg)).join("\n")).toContain("EMAIL_CAPTURE: EMAIL_CAPTURE=1 and RESEND_API_KEY are both set");
  });

  it("with EMAIL_CAPTURE=1 stores the email with provider capture and sends nothing", async () => {
    const prefix = uniqueId("capture");
    const queue = new Queue("email", { connection: redisOptions(inject("redisUrl")), prefix });
    // RESEND_BASE_URL points at the stand-in: were anything sent, it would be recorded there.
    const main = runMain({ ...baseEnv(prefix), EMAIL_CAPTURE: "1", RESEND_BASE_URL: resend.url });
    try {
      expect(await main.waitForLine("worker ready")).toMatchObject({ email: "capture" });
      const jobId = uniqueId("cap");
      await queue.add(emailContract.name, { to: "cap@example.com", subject: "s", text: "t" }, { jobId });
      expect(await (await settled(queue, jobId, 30_000)).getState()).toBe("completed");
      const [row] = await database.db.select().from(emailMessages).where(inArray(emailMessages.jobId, [jobId]));
      expect(row).toMatchObject({ status: "sent", provider: "capture", providerId: `capture-${jobId}` });
      expect(resend.requests.filter((r) => r.headers["idempotency-key"] === jobId)).toHaveLength(0);
    } finally {
      await stop(main);
      await queue.close();
      await deleteKeys(inject("redisUrl"), prefix);
    }
  });
});

describe("EMAIL_RATE_PER_SECOND across two worker processes", () => {
  it("two fleets on the same queue together stay within the rate", { timeout: 120_000 }, async () => {
    const RATE = 2;
    const JOBS = 10;
    const prefix = uniqueId("rate2");
    const queue = new Queue("email", { connection: redisOptions(inject("redisUrl")), prefix });
    const env = { ...baseEnv(prefix), RESEND_API_KEY: "re_test", RESEND_BASE_URL: resend.url, EMAIL_RATE_PER_SECOND: String(RATE), WORKER_CONCURRENCY: "10" };
    const fleets = [runMain(env), runMain(env)];
    try {
      await Promise.all(fleets.map((f) => f.waitForLine("worker ready")));
      const ids = Array.from({ length: JOBS }, () => uniqueId("rl"));
      await queue.addBulk(ids.map((jobId) => ({ name: emailContract.name, data: { to: "r@example.com", subject: "s", text: "t" }, opts: { ...emailContract.defaults, jobId } })));
      for (const id of ids) expect(await (await settled(queue, id, 90_000)).getState()).toBe("completed");

      const times = resend.requests
        .filter((r) => ids.includes(String(r.headers["idempotency-key"])))
        .map((r) => r.at)
        .sort((a, b) => a - b);
      expect(times).toHaveLength(JOBS);
      // BullMQ's limiter admits RATE jobs per 1 s window, counted in Redis and shared by both
      // processes; with a backlog, each window's requests arrive together at its start. The windows
      // are rebuilt from the arrivals: each starts at the first request not yet in one and spans
      // 500 ms, i.e. 1 s less slack for scheduling (a request late within its window, or a window's
      // requests reaching the stand-in early). Two unshared limiters would put 2×RATE in one window.
      const SPAN = 500;
      const windows: number[][] = [];
      for (const at of times) {
        const open = windows.at(-1);
        if (open && at - open[0]! < SPAN) open.push(at);
        else windows.push([at]);
      }
      const shape = JSON.stringify(windows.map((w) => w.map((x) => x - times[0]!)));
      for (const w of windows) expect(w.length, `requests per window (ms from the first): ${shape}`).toBeLessThanOrEqual(RATE);
      // JOBS at RATE per second need at least JOBS/RATE windows: a lower bound on time only.
      expect(times.at(-1)! - times[0]!, shape).toBeGreaterThanOrEqual((Math.ceil(JOBS / RATE) - 1) * 1_000 - 500);
      const perProcess = fleets.map((f) => f.lines.filter((l) => l.msg === "job completed").length);
      expect(perProcess.reduce((a, b) => a + b, 0)).toBe(JOBS);
    } finally {
      await Promise.all(fleets.map(stop));
      await queue.close();
      await deleteKeys(inject("redisUrl"), prefix);
    }
  });
});
