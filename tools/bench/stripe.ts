// Stripe webhooks end to end: signed deliveries → edge (wrangler dev) → Redis → fleet → Postgres.
// A bounded run: `lifecycles` customers × 7 events, each delivered twice (Stripe duplicates), in
// shuffled order, `concurrency` deliveries in flight. Measures accepted deliveries/s at the edge and
// distinct events/s until every event is PROCESSED, and checks one webhook_events row per event.
// Runs alone (`node tools/bench/stripe.ts [lifecycles] [concurrency]`, private Redis/Postgres
// started and stopped here) or from bench.ts through `benchStripe(env, settings)`.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { count, eq, inArray } from "drizzle-orm";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import { createDb, type Database } from "../../worker/db.ts";
import { startEdge } from "../dev/edge-process.ts";
import { ROOT, secret, startPostgres, startRedis } from "../dev/local-services.ts";
import { createHandlers, startFleet, type FleetConfig } from "../../worker/fleet.ts";
import { migrate } from "../../worker/migrate.ts";
import { customerLifecycle, deliver, lifecycleIds, type StripeEventFixture } from "../testing/stripe-fixtures.ts";

export interface StripeBenchSettings {
  lifecycles: number;
  concurrency: number;
  /** Fleet concurrency on the stripe-webhook queue. */
  workerConcurrency: number;
  deadlineMs: number;
}

export interface StripeBenchResult {
  events: number;
  deliveries: number;
  /** Deliveries answered 200 per second, edge only. */
  acceptedPerSecond: number;
  /** Distinct events PROCESSED per second, first delivery → last PROCESSED. */
  eventsPerSecond: number;
  /** webhook_events rows for these events; must equal `events`. */
  rows: number;
  /** Of those, PROCESSED before the deadline; must equal `events`. */
  processed: number;
  non200: number;
}

export async function benchStripe(
  env: {
    redisUrl: string;
    database: Database;
    prefix?: string;
    /** A pre-bundled edge (bench.ts bundles once, so source edits can't reload it mid-run); default: wrangler.toml's main. */
    script?: string;
    log?: (line: string) => void;
  },
  settings: StripeBenchSettings,
): Promise<StripeBenchResult> {
  const webhookSecret = `whsec_bench_${secret()}`;
  const prefix = env.prefix ?? `bench-stripe-${Date.now()}`;
  const config: FleetConfig = {
    redisUrl: env.redisUrl, redisCaCertPath: undefined, queuePrefix: prefix, queues: ["stripe-webhook"],
    concurrency: { audit: 1, email: 1, "stripe-webhook": settings.workerConcurrency, report: 1 },
    drainDelaySeconds: 1, stalledIntervalMs: 30_000, lockDurationMs: 30_000, emailRatePerSecond: 2,
  };
  const handlers = createHandlers(env.database.db, { auditBatchMax: 500, resendApiKey: undefined, resendBaseUrl: undefined, emailFrom: "bench@example.com" });
  const [edge, fleet] = await Promise.all([
    startEdge({
      vars: { REDIS_URL: env.redisUrl, API_KEY_HASHES: "0".repeat(64), QUEUE_PREFIX: prefix, STRIPE_WEBHOOK_SECRET: webhookSecret },
      ...(env.script ? { script: env.script } : {}),
      ...(env.log ? { log: env.log } : {}),
    }),
    startFleet(config, { handlers, log: () => {} }),
  ]);
  try {
    const events: StripeEventFixture[] = [];
    for (let i = 0; i < settings.lifecycles; i++) events.push(...customerLifecycle(lifecycleIds()));
    // Every event twice, shuffled: duplicates and out-of-order arrival, as Stripe delivers.
    const deliveries = [...events, ...events].sort(() => Math.random() - 0.5);
    let next = 0;
    let non200 = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: settings.concurrency }, async () => {
      while (next < deliveries.length) {
        const res = await deliver(edge.url, deliveries[next++]!, webhookSecret);
        if (res.status !== 200) non200++;
      }
    }));
    const acceptedMs = performance.now() - started;
    const ids = events.map((e) => e.id);
    const deadline = Date.now() + settings.deadlineMs;
    let rows = 0;
    for (;;) {
      const [processed] = await env.database.db.select({ n: count() }).from(webhookEvents)
        .where(inArray(webhookEvents.stripeEventId, ids)).groupBy(webhookEvents.status).having(eq(webhookEvents.status, "PROCESSED"));
      rows = processed?.n ?? 0;
      if (rows >= ids.length || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const totalMs = performance.now() - started;
    const [all] = await env.database.db.select({ n: count() }).from(webhookEvents).where(inArray(webhookEvents.stripeEventId, ids));
    return {
      events: ids.length,
      deliveries: deliveries.length,
      acceptedPerSecond: Math.round((deliveries.length / acceptedMs) * 1000),
      eventsPerSecond: Math.round((rows / totalMs) * 1000),
      rows: all?.n ?? 0,
      processed: rows,
      non200,
    };
  } finally {
    await Promise.allSettled([fleet.close(5_000), edge.stop()]);
  }
}

if (import.meta.main) {
  const lifecycles = Number(process.argv[2] ?? 300);
  const concurrency = Number(process.argv[3] ?? 25);
  const dataDir = join(ROOT, ".data/bench-stripe", String(process.pid));
  const redis = await startRedis({ dataDir: join(dataDir, "redis") });
  const pg = await startPostgres({ dataDir: join(dataDir, "postgres") });
  const database = createDb(pg.url, { driver: "pg", max: 10 });
  try {
    await migrate(pg.url);
    const result = await benchStripe({ redisUrl: redis.url, database }, { lifecycles, concurrency, workerConcurrency: 20, deadlineMs: 120_000 });
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await database.close();
    await pg.stop();
    await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
