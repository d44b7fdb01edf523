import { Queue } from "bullmq";
import { eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { emailMessages } from "../shared/db/email-messages.ts";
import { emailContract } from "../shared/jobs/email.ts";
import type { Database } from "./db.ts";
import { redisOptions } from "./fleet.ts";
import { startFakeResend } from "../tools/testing/fake-resend.ts";
import { deleteKeys, settled, testDb, uniqueId } from "../tools/testing/fixtures.ts";
import { runMain } from "../tools/testing/main-process.ts";

let database: Database;
beforeAll(() => {
  database = testDb();
});
afterAll(() => database.close());

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/**
 * A fresh Resend stand-in, email queue and prefix for one test, and the env of a worker that
 * drains that queue through it. Every process started with `start` is SIGKILLed after the test.
 */
async function emailSetup(extraEnv: Record<string, string> = {}) {
  const prefix = uniqueId("main");
  const resend = await startFakeResend();
  cleanups.push(() => resend.close());
  const queue = new Queue("email", { connection: redisOptions(inject("redisUrl")), prefix });
  cleanups.push(async () => {
    await queue.close();
    await deleteKeys(inject("redisUrl"), prefix);
  });
  const env = {
    REDIS_URL: inject("redisUrl"),
    DATABASE_URL: inject("databaseUrl"),
    QUEUE_PREFIX: prefix,
    WORKER_QUEUES: "email",
    PORT: "0",
    RESEND_API_KEY: "re_test",
    RESEND_BASE_URL: resend.url,
    EMAIL_RATE_PER_SECOND: "50",
    WORKER_DRAIN_DELAY_SECONDS: "1",
    ...extraEnv,
  };
  const start = () => {
    const main = runMain(env);
    cleanups.push(async () => void main.child.kill("SIGKILL"));
    return main;
  };
  const add = async (label: string) => {
    const id = uniqueId(label);
    await queue.add(emailContract.name, { to: "a@example.com", subject: "s", text: "t" }, { jobId: id });
    return id;
  };
  return { prefix, resend, queue, start, add };
}

describe("node worker/main.ts", () => {
  it("on SIGTERM finishes the running job, leaves no job half-done, and exits 0", async () => {
    const { prefix, resend, queue, start, add } = await emailSetup({ SHUTDOWN_TIMEOUT_MS: "60000" });
    const main = start();
    const ready = await main.waitForLine("worker ready");
    expect(ready).toMatchObject({ queues: "email", prefix, db: "pg", email: "resend" });

    // The provider holds its answer, so the job is mid-flight when SIGTERM arrives.
    resend.respond({ status: 200, body: { id: "re_slow" }, delayMs: 1_500 });
    const first = await add("slow");
    await resend.waitForRequests(1, 30_000);
    main.child.kill("SIGTERM");
    await main.waitForLine("worker stopping");
    const second = await add("late");

    expect(await main.exitedWithin(60_000)).toBe(0);
    expect(await (await settled(queue, first)).getState()).toBe("completed");
    const [row] = await database.db.select().from(emailMessages).where(eq(emailMessages.jobId, first));
    expect(row).toMatchObject({ status: "sent", providerId: "re_slow" });
    // A fetch already in flight when close() began may still take a job (BullMQ finishes it);
    // what must never happen is a job left active by the exited process.
    expect(["waiting", "completed"]).toContain(await queue.getJobState(second));
    expect(main.lines.find((l) => l.msg === "worker stopped")).toMatchObject({ drained: true });
  }, 90_000);

  it("when SHUTDOWN_TIMEOUT_MS runs out, exits 0 with drained: false and another worker completes the job it left", async () => {
    // A short lock so the abandoned job is handed on soon after the first process is gone.
    const { resend, queue, start, add } = await emailSetup({
      SHUTDOWN_TIMEOUT_MS: "1000",
      WORKER_LOCK_DURATION_MS: "3000",
      WORKER_STALLED_INTERVAL_MS: "1000",
      DATABASE_QUERY_TIMEOUT_MS: "2000",
    });
    const first = start();
    await first.waitForLine("worker ready");
    // Held far beyond the shutdown timeout (and the test): the job cannot finish in time.
    resend.respond({ status: 200, body: { id: "re_held" }, delayMs: 10 * 60_000 });
    const id = await add("held");
    await resend.waitForRequests(1, 30_000);
    first.child.kill("SIGTERM");

    expect(await first.exitedWithin(60_000)).toBe(0);
    const stopped = first.lines.find((l) => l.msg === "worker stopped");
    expect(stopped).toMatchObject({ drained: false });
    // SHUTDOWN_TIMEOUT_MS bounds the wait for jobs; closing connections afterwards takes moments.
    expect(stopped?.ms).toBeLessThan(15_000);
    expect(first.lines.some((l) => l.level === "warn" && String(l.msg).startsWith("shutdown timed out"))).toBe(true);
    expect(await queue.getJobState(id)).not.toBe("completed");

    const second = start();
    await second.waitForLine("worker ready");
    expect(await (await settled(queue, id, 60_000)).getState()).toBe("completed");
    const rows = await database.db.select().from(emailMessages).where(eq(emailMessages.jobId, id));
    expect(rows).toHaveLength(1);
    // The first process was cut off mid-send: Resend saw the same key twice and sent once.
    expect(rows[0]).toMatchObject({ status: "sent", providerId: "re_held", attempts: 2 });
    expect(resend.requests.map((r) => r.headers["idempotency-key"])).toEqual([id, id]);
  }, 120_000);

  it("exits 1 at once on a second signal, leaving the running job to be retried", async () => {
    const { resend, queue, start, add } = await emailSetup({ SHUTDOWN_TIMEOUT_MS: "600000" });
    const main = start();
    await main.waitForLine("worker ready");
    resend.respond({ status: 200, body: { id: "re_held" }, delayMs: 10 * 60_000 });
    const id = await add("held");
    await resend.waitForRequests(1, 30_000);
    main.child.kill("SIGTERM");
    await main.waitForLine("worker stopping");
    main.child.kill("SIGTERM");

    // Without the second-signal exit this process would wait out its 10-minute shutdown timeout.
    expect(await main.exitedWithin(60_000)).toBe(1);
    expect(main.lines.find((l) => l.msg === "second signal; exiting without waiting")).toMatchObject({ level: "warn", signal: "SIGTERM" });
    expect(main.lines.some((l) => l.msg === "worker stopped")).toBe(false);
    expect(await queue.getJobState(id)).toBe("active");
  }, 90_000);

  it("refuses to start with a bad config, listing every problem, exit code 2", async () => {
    const main = runMain({ REDIS_URL: "nope", WORKER_QUEUES: "bogus" });
    expect(await main.exited).toBe(2);
    const text = main.lines.map((l) => String(l.msg)).join("\n");
    expect(text).toContain("REDIS_URL");
    expect(text).toContain("DATABASE_URL");
    expect(text).toContain("bogus");
  });
  it("reports a queue held off by a provider outage on /readyz, and clears it once the provider answers", async () => {
    const { resend, queue, start, add } = await emailSetup({ OUTAGE_BACKOFF_MIN_MS: "50", OUTAGE_BACKOFF_MAX_MS: "200" });
    const main = start();
    const ready = await main.waitForLine("worker ready");
    const readyz = async () => {
      const res = await fetch(`http://127.0.0.1:${String(ready.port)}/readyz`, { signal: AbortSignal.timeout(20_000) });
      return (await res.json()) as { status: string; outages: Record<string, { dependency: string; jobsReturned: number }> };
    };
    await resend.outage("refuse");
    const id = await add("held-off");
    const deadline = Date.now() + 30_000;
    let body = await readyz();
    while (!body.outages.email) {
      if (Date.now() > deadline) throw new Error(`no outage reported: ${JSON.stringify(body)}`);
      await new Promise((r) => setTimeout(r, 50));
      body = await readyz();
    }
    // Postgres and Redis answer: the process is ready; the email queue is held off, not failing.
    expect(body.status).toBe("ready");
    expect(body.outages.email).toMatchObject({ dependency: "resend" });
    expect(await queue.getJobState(id)).not.toBe("failed");

    await resend.outage(undefined);
    expect((await settled(queue, id, 30_000)).finishedOn).toBeTypeOf("number");
    expect((await readyz()).outages).toEqual({});
  }, 90_000);
});
