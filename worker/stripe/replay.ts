// `npm run stripe:replay -- <command>`: an operator's tool for Stripe events not PROCESSED.
//   --list     every event not PROCESSED: FAILED ones, and PENDING ones untouched for longer than
//              --stale-after (no job is working on them: lost with Redis, stalled, dropped by
//              removeOnFail, or a replay whose enqueue failed), with status, ages and error
//   --failed   replay every FAILED event
//   --stale    replay every stale PENDING event
//   evt_…      replay that one event (any status: applying is idempotent, see apply.ts)
//   --stale-after <seconds>   with --list/--stale: how long a PENDING event may sit untouched
//              (default 600; a job retrying or waiting out an outage touches it on every run)
// A replay resets the event to PENDING, counts it (replay_count, replayed_at) and enqueues a new
// job `<event id>.replay-<n>` — the original job id may still exist in Redis (failed jobs are
// kept), where it would swallow a re-add. Reads REDIS_URL, DATABASE_URL, QUEUE_PREFIX like the
// worker (`npm run dev` prints the local ones).
import { parseArgs } from "node:util";
import { Queue } from "bullmq";
import { eq, sql } from "drizzle-orm";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import { jobIdProblem } from "../../shared/jobs/contract.ts";
import { StripeWebhookJob, stripeWebhookContract } from "../../shared/jobs/stripe-webhook.ts";
import { createDb, type Db } from "../db.ts";
import { EnvError, parseEnv } from "../env.ts";
import { producerRedisOptions } from "../fleet.ts";
import { publicMessage } from "../outage.ts";

export const DEFAULT_STALE_AFTER_SECONDS = 600;

export interface UnprocessedEvent {
  id: string;
  type: string;
  status: "PENDING" | "FAILED";
  attempts: number;
  replays: number;
  error: string | null;
  /** Seconds since the event was first received, and since anything last happened to it. */
  ageSeconds: number;
  idleSeconds: number;
}

/** FAILED events, and PENDING ones untouched for `staleAfterSeconds`, oldest first. Ages use the database's clock. */
export async function listUnprocessed(db: Db, staleAfterSeconds: number): Promise<UnprocessedEvent[]> {
  const rows = await db
    .select({
      id: webhookEvents.stripeEventId,
      type: webhookEvents.type,
      status: webhookEvents.status,
      attempts: webhookEvents.attempts,
      replays: webhookEvents.replayCount,
      error: webhookEvents.error,
      ageSeconds: sql<number>`floor(extract(epoch from now() - ${webhookEvents.receivedAt}))::int`,
      idleSeconds: sql<number>`floor(extract(epoch from now() - ${webhookEvents.updatedAt}))::int`,
    })
    .from(webhookEvents)
    .where(
      sql`${webhookEvents.status} = 'FAILED' or (${webhookEvents.status} = 'PENDING'
        and ${webhookEvents.updatedAt} < now() - make_interval(secs => ${staleAfterSeconds}))`,
    )
    .orderBy(webhookEvents.receivedAt);
  return rows.filter((r): r is UnprocessedEvent => r.status !== "PROCESSED");
}

/** The job id of an event's n-th replay; refuses (rather than enqueue) an id BullMQ can't hold. */
export function replayJobId(eventId: string, replay: number): string {
  const jobId = `${eventId}.replay-${replay}`;
  const problem = jobIdProblem(jobId);
  if (problem) throw new Error(`replay job id for this event ${problem}`);
  return jobId;
}

/** Marks one event for replay and enqueues it; returns the new job id, or undefined if unknown. */
export async function replayEvent(db: Db, queue: Queue, eventId: string): Promise<string | undefined> {
  const [row] = await db
    .update(webhookEvents)
    .set({ status: "PENDING", error: null, replayCount: sql`${webhookEvents.replayCount} + 1`, replayedAt: sql`now()`, updatedAt: sql`now()` })
    .where(eq(webhookEvents.stripeEventId, eventId))
    .returning({ payload: webhookEvents.payload, replayCount: webhookEvents.replayCount });
  if (!row) return undefined;
  const p = row.payload;
  const data = StripeWebhookJob.parse({ id: p.id, type: p.type, created: p.created, livemode: p.livemode, event: p });
  const jobId = replayJobId(eventId, row.replayCount);
  await queue.add(stripeWebhookContract.name, data, { ...stripeWebhookContract.defaults, jobId });
  return jobId;
}

const USAGE = "usage: npm run stripe:replay -- <evt_…|--list|--failed|--stale> [--stale-after <seconds>]";

type Command = { kind: "list" | "failed" | "stale"; staleAfterSeconds: number } | { kind: "one"; eventId: string };

function parseCommand(args: string[]): Command | string {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { list: { type: "boolean" }, failed: { type: "boolean" }, stale: { type: "boolean" }, "stale-after": { type: "string" } },
    });
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  const { values, positionals } = parsed;
  const modes = (["list", "failed", "stale"] as const).filter((m) => values[m]);
  if (modes.length + positionals.length !== 1) return "give exactly one of an event id, --list, --failed, --stale";
  const raw = values["stale-after"];
  const staleAfterSeconds = raw === undefined ? DEFAULT_STALE_AFTER_SECONDS : Number(raw);
  if (!Number.isInteger(staleAfterSeconds) || staleAfterSeconds < 0) return "--stale-after takes a whole number of seconds";
  const [mode] = modes;
  if (mode) return { kind: mode, staleAfterSeconds };
  if (raw !== undefined) return "--stale-after goes with --list or --stale";
  return { kind: "one", eventId: positionals[0]! };
}

async function main(args: string[]): Promise<number> {
  const command = parseCommand(args);
  if (typeof command === "string") {
    console.error(`${command}\n${USAGE}`);
    return 2;
  }
  // Parsed as a Stripe-only process: the tool never sends email, so it must not demand the email
  // settings a fleet draining the email queue needs.
  const config = parseEnv({ ...process.env, WORKER_QUEUES: "stripe-webhook" });
  const database = createDb(config.databaseUrl, { driver: config.databaseDriver, max: 2 });
  const queue = new Queue(stripeWebhookContract.queue, { connection: producerRedisOptions(config.redisUrl, config.redisCaCertPath), prefix: config.queuePrefix });
  try {
    let ids: string[];
    if (command.kind === "one") {
      ids = [command.eventId];
    } else {
      const events = await listUnprocessed(database.db, command.staleAfterSeconds);
      if (command.kind === "list") {
        if (events.length === 0) console.log(`no Stripe events FAILED or PENDING for more than ${command.staleAfterSeconds} s`);
        for (const e of events) {
          console.log([e.id, e.status, `age=${e.ageSeconds}s`, `idle=${e.idleSeconds}s`, e.type, `attempts=${e.attempts}`, `replays=${e.replays}`, e.error ?? ""].join("\t"));
        }
        return 0;
      }
      const wanted = command.kind === "failed" ? "FAILED" : "PENDING";
      ids = events.filter((e) => e.status === wanted).map((e) => e.id);
      if (ids.length === 0) console.log(`no ${command.kind === "failed" ? "FAILED" : "stale PENDING"} Stripe events to replay`);
    }
    let missing = 0;
    for (const id of ids) {
      const jobId = await replayEvent(database.db, queue, id);
      if (jobId) console.log(`replayed ${id} as job ${jobId}`);
      else (missing++, console.error(`no stored event ${id}`));
    }
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
      // publicMessage: a database error's own message would carry the query's parameters (payloads).
      console.error(err instanceof EnvError ? err.message : `stripe:replay: ${publicMessage(err)}`);
      process.exit(1);
    },
  );
}
