// A worker process dies (SIGKILL) while Resend holds its request open. BullMQ's stalled-job check
// hands the job to a new worker process; the email must be recorded once, sent with one key.
import { QueueEvents } from "bullmq";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, expect, it } from "vitest";
import { emailMessages } from "../../shared/db/email-messages.ts";
import type { Database } from "../../worker/db.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { startFakeResend, type FakeResend } from "../testing/fake-resend.ts";
import { testDb, uniqueId } from "../testing/fixtures.ts";
import { startStack, type Stack } from "./stack.ts";

/**
 * A crashed worker's job is recoverable once its lock lapses (at most LOCK_MS after the last
 * renewal); the stalled check runs every second so recovery follows the lapse closely — about
 * 4 s on an idle machine. The wait below is a deadline for a hang, not a performance claim: it
 * holds on a machine many times slower (a new worker process must start, too).
 */
const LOCK_MS = 3_000;
const RECOVERY_DEADLINE_MS = 60_000;

let stack: Stack;
let resend: FakeResend;
let database: Database;
let queueEvents: QueueEvents;

beforeAll(async () => {
  database = testDb();
  resend = await startFakeResend();
  stack = await startStack({
    fleetEnv: {
      RESEND_BASE_URL: resend.url,
      WORKER_STALLED_INTERVAL_MS: "1000",
      WORKER_LOCK_DURATION_MS: String(LOCK_MS),
      // Must stay below the lock (a query may not outlive its job's lock).
      DATABASE_QUERY_TIMEOUT_MS: String(LOCK_MS - 1_000),
    },
  });
  queueEvents = new QueueEvents("email", { connection: redisOptions(stack.redisUrl), prefix: stack.prefix });
  await queueEvents.waitUntilReady();
});

afterAll(async () => {
  await queueEvents?.close();
  await stack?.stop();
  await resend?.close();
  await database?.close();
});

it(
  "finishes an email whose worker was killed mid-send on a new worker, sending with the same key and storing it once",
  async () => {
    const providerId = uniqueId("re_msg");
    // The first request reaches "Resend" and is held open (past the end of the test) until the
    // worker is dead; the fake then answers the retry with the same Idempotency-Key with the
    // original id.
    resend.respond({ status: 200, body: { id: providerId }, delayMs: 10 * 60_000 });
    const res = await stack.post("/v1/emails", { to: "linus@example.com", subject: "Crash test", text: "hi" });
    expect(res.status).toBe(202);
    const { id: jobId } = res.body as { id: string };

    await resend.waitForRequests(1);
    const job = await stack.queue("email").getJob(jobId);
    expect(await job?.getState()).toBe("active");
    await stack.restartFleet(); // SIGKILL, then a fresh `node worker/main.ts`

    await job!.waitUntilFinished(queueEvents, RECOVERY_DEADLINE_MS);
    const rows = await database.db.select().from(emailMessages).where(eq(emailMessages.jobId, jobId));
    expect(rows).toHaveLength(1);
    // attempts 2: the handler really ran twice, once in each process.
    expect(rows[0]).toMatchObject({ status: "sent", providerId, attempts: 2 });
    expect(resend.requests).toHaveLength(2);
    expect(resend.requests.map((r) => r.headers["idempotency-key"])).toEqual([jobId, jobId]);
    expect(await stack.queue("email").getJobState(jobId)).toBe("completed");
  },
  RECOVERY_DEADLINE_MS + 60_000,
);
