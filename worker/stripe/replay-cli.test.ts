// `npm run stripe:replay` end to end: the real CLI as a child process (its own env parsing, DB pool
// and BullMQ producer) against the test Redis and a Postgres database of this file's own — --failed
// and --stale act on every matching row, so sharing the run's database would replay other files'
// events — with a real BullMQ Worker (the fleet) processing what it enqueues.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { eq, inArray, sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import { StripeWebhookJob, stripeWebhookContract } from "../../shared/jobs/stripe-webhook.ts";
import { createAuditHandler } from "../audit/handler.ts";
import { createDb, type Database } from "../db.ts";
import { ROOT } from "../../tools/dev/local-services.ts";
import { createEmailHandler } from "../email/handler.ts";
import { migrate } from "../migrate.ts";
import { memoryLog, settled, startTestFleet, type TestFleet } from "../../tools/testing/fixtures.ts";
import { sampleEvent, type StripeEventFixture } from "../../tools/testing/stripe-fixtures.ts";
import { createStripeWebhookHandler } from "./handler.ts";

const run = promisify(execFile);

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin(query: string): Promise<void> {
  const client = new pg.Client({ connectionString: withDatabase(inject("databaseUrl"), "postgres") });
  await client.connect();
  try {
    await client.query(query);
  } finally {
    await client.end();
  }
}

const dbName = `replay_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
let databaseUrl: string;
let database: Database;
let t: TestFleet;

beforeAll(async () => {
  await admin(`create database ${dbName}`);
  databaseUrl = withDatabase(inject("databaseUrl"), dbName);
  await migrate(databaseUrl);
  database = createDb(databaseUrl, { driver: "pg", max: 5 });
  t = await startTestFleet(
    {
      handlers: {
        audit: createAuditHandler(database.db).handle,
        email: createEmailHandler(database.db, { resendApiKey: undefined, resendBaseUrl: undefined, emailFrom: "a@example.com" }),
        "stripe-webhook": createStripeWebhookHandler(database.db),
      },
      scripts: [],
      log: memoryLog().log,
    },
    { queues: ["stripe-webhook"] },
  );
});

afterAll(async () => {
  await t?.stop();
  await database?.close();
  await admin(`drop database if exists ${dbName} with (force)`);
});

/** Runs `node worker/stripe/replay.ts <args>` with only the configuration an operator would give it. */
async function replayCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { PATH: process.env.PATH ?? "", REDIS_URL: t.config.redisUrl, DATABASE_URL: databaseUrl, QUEUE_PREFIX: t.config.queuePrefix };
  try {
    const { stdout, stderr } = await run(process.execPath, [join(ROOT, "worker/stripe/replay.ts"), ...args], { cwd: ROOT, env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== "number") throw err;
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

/**
 * An event as a bad day leaves it: PROCESSED through the fleet; FAILED after its last attempt (the
 * row written, the transaction rolled back, so nothing applied); or PENDING and untouched since a
 * run whose job was then lost (Redis lost it, a stalled job, removeOnFail dropped it).
 */
async function stored(state: "PROCESSED" | "FAILED" | { pendingIdleSeconds: number }): Promise<StripeEventFixture> {
  const event = sampleEvent("customer.subscription.updated");
  if (state === "PROCESSED") {
    const data = StripeWebhookJob.parse({ id: event.id, type: event.type, created: event.created, livemode: false, event });
    const job = await t.add(stripeWebhookContract, data, { jobId: event.id });
    await settled(t.queue("stripe-webhook"), job.id!);
    return event;
  }
  const failed = state === "FAILED";
  await database.db.insert(webhookEvents).values({
    stripeEventId: event.id,
    type: event.type,
    payload: event,
    status: failed ? "FAILED" : "PENDING",
    attempts: failed ? 5 : 1,
    error: failed ? "database error 08006" : null,
    updatedAt: failed ? sql`now()` : sql`now() - make_interval(secs => ${state.pendingIdleSeconds})`,
  });
  return event;
}

const rowOf = async (id: string) => (await database.db.select().from(webhookEvents).where(eq(webhookEvents.stripeEventId, id)))[0];
const line = (stdout: string, id: string) => stdout.split("\n").find((l) => l.startsWith(`${id}\t`));

async function processedByReplay(id: string, jobId: string) {
  const job = await settled(t.queue("stripe-webhook"), jobId, 30_000);
  expect(job.returnvalue).toEqual({ status: "processed", outcome: "applied" });
  return rowOf(id);
}

describe("npm run stripe:replay", () => {
  it("--list shows FAILED events and PENDING ones idle past --stale-after, with status and ages, and nothing else", async () => {
    const [failed, stale, fresh, processed] = [await stored("FAILED"), await stored({ pendingIdleSeconds: 1_200 }), await stored({ pendingIdleSeconds: 30 }), await stored("PROCESSED")];

    const byDefault = await replayCli("--list");
    expect(byDefault).toMatchObject({ code: 0, stderr: "" });
    expect(line(byDefault.stdout, failed.id)).toMatch(new RegExp(`^${failed.id}\\tFAILED\\tage=\\d+s\\tidle=\\d+s\\tcustomer\\.subscription\\.updated\\tattempts=5\\treplays=0\\tdatabase error 08006$`));
    expect(line(byDefault.stdout, stale.id)).toMatch(new RegExp(`^${stale.id}\\tPENDING\\tage=\\d+s\\tidle=(1[2-9]\\d\\d|[2-9]\\d{3})s\\t`));
    // Idle 30 s: under the default 600 s a job may still be working on it.
    expect(line(byDefault.stdout, fresh.id)).toBeUndefined();
    expect(line(byDefault.stdout, processed.id)).toBeUndefined();

    const tighter = await replayCli("--list", "--stale-after", "10");
    expect(line(tighter.stdout, fresh.id)).toMatch(new RegExp(`^${fresh.id}\\tPENDING\\t`));
    expect(line(tighter.stdout, processed.id)).toBeUndefined();
    // Listing changes nothing.
    expect(await rowOf(stale.id)).toMatchObject({ status: "PENDING", replayCount: 0 });
  });

  it("--failed replays every FAILED event as a new job that a worker processes, and leaves PENDING ones alone", async () => {
    const [a, b, stale] = [await stored("FAILED"), await stored("FAILED"), await stored({ pendingIdleSeconds: 1_200 })];
    const out = await replayCli("--failed");
    expect(out.code).toBe(0);
    for (const e of [a, b]) {
      expect(out.stdout).toContain(`replayed ${e.id} as job ${e.id}.replay-1`);
      expect(await processedByReplay(e.id, `${e.id}.replay-1`)).toMatchObject({ status: "PROCESSED", error: null, replayCount: 1, attempts: 6 });
    }
    expect(out.stdout).not.toContain(stale.id);
    expect(await rowOf(stale.id)).toMatchObject({ status: "PENDING", replayCount: 0 });
    expect((await replayCli("--list")).stdout).not.toMatch(new RegExp(`${a.id}|${b.id}`));
  });

  it("--stale replays PENDING events idle past --stale-after, and not the recent ones", async () => {
    const [stale, fresh] = [await stored({ pendingIdleSeconds: 90 }), await stored({ pendingIdleSeconds: 5 })];
    const out = await replayCli("--stale", "--stale-after", "60");
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`replayed ${stale.id} as job ${stale.id}.replay-1`);
    expect(out.stdout).not.toContain(fresh.id);
    expect(await processedByReplay(stale.id, `${stale.id}.replay-1`)).toMatchObject({ status: "PROCESSED", replayCount: 1 });
    expect(await rowOf(fresh.id)).toMatchObject({ status: "PENDING", replayCount: 0 });
  });

  it("an event id replays that one event, again and again under new job ids; an unknown id exits 1", async () => {
    const [event, other] = [await stored("FAILED"), await stored("FAILED")];
    const first = await replayCli(event.id);
    expect(first).toMatchObject({ code: 0, stdout: `replayed ${event.id} as job ${event.id}.replay-1\n` });
    expect(await processedByReplay(event.id, `${event.id}.replay-1`)).toMatchObject({ status: "PROCESSED", replayCount: 1 });
    // A PROCESSED event may be replayed too: under a new job id (the first replay's is taken), and
    // idempotently — the event already wrote its row, so applying it again changes nothing.
    expect((await replayCli(event.id)).stdout).toBe(`replayed ${event.id} as job ${event.id}.replay-2\n`);
    const again = await settled(t.queue("stripe-webhook"), `${event.id}.replay-2`, 30_000);
    expect(again.returnvalue).toEqual({ status: "processed", outcome: "stale" });
    expect(await rowOf(event.id)).toMatchObject({ status: "PROCESSED", replayCount: 2 });
    expect(await rowOf(other.id)).toMatchObject({ status: "FAILED", replayCount: 0 });

    const unknown = await replayCli("evt_doesnotexist");
    expect(unknown).toMatchObject({ code: 1, stderr: "no stored event evt_doesnotexist\n" });
    const rows = await database.db.select().from(webhookEvents).where(inArray(webhookEvents.stripeEventId, ["evt_doesnotexist"]));
    expect(rows).toEqual([]);
  });

  it("refuses a bad command line with exit 2 and the usage, touching nothing", async () => {
    for (const args of [[], ["--list", "--failed"], ["--list", "--stale-after", "soon"], ["evt_x", "--stale-after", "5"], ["--bogus"]]) {
      const out = await replayCli(...args);
      expect({ args, code: out.code, usage: out.stderr.includes("usage: npm run stripe:replay") }).toEqual({ args, code: 2, usage: true });
    }
  });
});
