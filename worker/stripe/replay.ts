// `npm run stripe:replay -- <evt_…|--failed|--list>`: an operator's tool for Stripe events.
//   --list     failed events (id, type, attempts, error)
//   --failed   replay every FAILED event
//   evt_…      replay that one event (any status: applying is idempotent, see apply.ts)
// A replay resets the event to PENDING, counts it (replay_count, replayed_at) and enqueues a new
// job `<event id>.replay-<n>` — the original job id may still exist in Redis (failed jobs are
// kept), where it would swallow a re-add. Reads REDIS_URL, DATABASE_URL, QUEUE_PREFIX like the
// worker (`npm run dev` prints the local ones).
import { Queue } from "bullmq";
import { eq, sql } from "drizzle-orm";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import { StripeWebhookJob, stripeWebhookContract } from "../../shared/jobs/stripe-webhook.ts";
import { createDb, type Db } from "../db.ts";
import { EnvError, parseEnv } from "../env.ts";
import { producerRedisOptions } from "../fleet.ts";

async function listFailed(db: Db) {
  return db
    .select({ id: webhookEvents.stripeEventId, type: webhookEvents.type, attempts: webhookEvents.attempts, replays: webhookEvents.replayCount, error: webhookEvents.error })
    .from(webhookEvents)
    .where(eq(webhookEvents.status, "FAILED"))
    .orderBy(webhookEvents.receivedAt);
}

/** Marks one event for replay and enqueues it; returns the new job id, or undefined if unknown. */
export async function replayEvent(db: Db, queue: Queue, eventId: string): Promise<string | undefined> {
  const [row] = await db
    .update(webhookEvents)
    .set({ status: "PENDING", error: null, replayCount: sql`${webhookEvents.replayCount} + 1`, replayedAt: sql`now()` })
    .where(eq(webhookEvents.stripeEventId, eventId))
    .returning({ payload: webhookEvents.payload, replayCount: webhookEvents.replayCount });
  if (!row) return undefined;
  const p = row.payload;
  const data = StripeWebhookJob.parse({ id: p.id, type: p.type, created: p.created, livemode: p.livemode, event: p });
  const jobId = `${eventId}.replay-${row.replayCount}`;
  await queue.add(stripeWebhookContract.name, data, { ...stripeWebhookContract.defaults, jobId });
  return jobId;
}

async function main(args: string[]): Promise<number> {
  const target = args[0];
  if (!target || args.length > 1) {
    console.error("usage: npm run stripe:replay -- <evt_…|--failed|--list>");
    return 2;
  }
  // Replay only adds Stripe jobs: the email settings a worker needs are none of its business.
  const config = parseEnv({ ...process.env, WORKER_QUEUES: "stripe-webhook" });
  const database = createDb(config.databaseUrl, { driver: config.databaseDriver, max: 2 });
  const queue = new Queue(stripeWebhookContract.queue, { connection: producerRedisOptions(config.redisUrl, config.redisCaCertPath), prefix: config.queuePrefix });
  try {
    const failed = target.startsWith("--") ? await listFailed(database.db) : [];
    if (target === "--list") {
      if (failed.length === 0) console.log("no failed Stripe events");
      for (const f of failed) console.log(`${f.id}\t${f.type}\tattempts=${f.attempts}\treplays=${f.replays}\t${f.error ?? ""}`);
      return 0;
    }
    if (target.startsWith("--") && target !== "--failed") {
      console.error(`unknown flag ${target}`);
      return 2;
    }
    const ids = target === "--failed" ? failed.map((f) => f.id) : [target];
    let missing = 0;
    for (const id of ids) {
      const jobId = await replayEvent(database.db, queue, id);
      if (jobId) console.log(`replayed ${id} as job ${jobId}`);
      else (missing++, console.error(`no stored event ${id}`));
    }
    if (ids.length === 0) console.log("no failed Stripe events to replay");
    return missing > 0 ? 1 : 0;
  } finally {
    await queue.close();
    await database.close();
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof EnvError ? err.message : `stripe:replay: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
