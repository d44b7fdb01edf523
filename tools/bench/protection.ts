// The price of protection: the same edge bundle twice in `wrangler dev`, once with rate limits off
// and once on (API-key auth is on in both: /v1 cannot run without it), in interleaved rounds of
// `POST /v1/events`. Reports throughput (median of rounds), unloaded p50 (one request at a time,
// pooled), their on/off ratios, and the Redis commands each request costs, from INFO commandstats.
// The "on" limit is far above what the run sends, so every request is counted but none refused.
// A third variant sends the same load to the generic job route (`POST /v1/jobs/report`, limits on)
// to price the generic route against `/v1/events`.
import type { Redis } from "ioredis";
import { auditContract } from "../../shared/jobs/audit.ts";
import { startEdge, type EdgeProcess } from "../dev/edge-process.ts";
import { auditEvent } from "./enqueue.ts";
import { closedLoop, httpClient, median, percentile } from "./load.ts";
import { baseline, measure } from "./redis-stats.ts";

export interface ProtectionSettings {
  concurrency: number;
  requests: number;
  rounds: number;
  /** One-at-a-time requests per variant, split over the rounds. */
  latencyRequests: number;
  requestTimeoutMs: number;
  roundDeadlineMs: number;
}

export type Variant = "off" | "on" | "jobs";

export interface VariantResult {
  variant: Variant;
  perSecond: number;
  roundsPerSecond: number[];
  p50Ms: number;
  /** Redis commands per request (scripts' inner commands included), throughput rounds only. */
  commandsPerRequest: number;
  /** Calls per request by command, for the ones that differ between the variants. */
  callsPerRequest: Record<string, number>;
  accepted: number;
  errors: number;
  firstError?: string;
  jobsInRedis: number;
}

export interface ProtectionEnv {
  redis: Redis;
  redisUrl: string;
  apiKeyHashes: string;
  apiKey: string;
  script: string;
  log: (name: string) => ((text: string) => unknown) | undefined;
  progress: (line: string) => void;
}

const ON = "events=999999999/1h,jobs.write=999999999/1h";
const VARIANTS: Readonly<Record<Variant, string>> = { off: "off", on: ON, jobs: ON };

/** Each variant's route and body; report jobs get one account each (the contract deduplicates on account and month). */
const ROUTES: Readonly<Record<Variant, { path: string; queue: string; body: (id: string) => unknown }>> = {
  off: { path: "/v1/events", queue: auditContract.queue, body: auditEvent },
  on: { path: "/v1/events", queue: auditContract.queue, body: auditEvent },
  jobs: { path: "/v1/jobs/report", queue: "report", body: (id) => ({ data: { accountId: id, month: "2026-11" } }) },
};

export async function benchProtection(env: ProtectionEnv, s: ProtectionSettings): Promise<VariantResult[]> {
  const edges = new Map<Variant, EdgeProcess>();
  try {
    // allSettled: should one fail to start, the other is in `edges` by then and stopped below.
    const started = await Promise.allSettled((Object.entries(VARIANTS) as Array<[Variant, string]>).map(async ([variant, limits]) => {
      edges.set(variant, await startEdge({
        script: env.script,
        vars: { REDIS_URL: env.redisUrl, API_KEY_HASHES: env.apiKeyHashes, QUEUE_PREFIX: `bench-protect-${variant}`, RATE_LIMITS: limits },
        log: env.log(`edge (rate limits ${variant})`),
      }));
    }));
    for (const r of started) if (r.status === "rejected") throw r.reason;
    const base = await baseline(env.redis);
    const results = new Map<Variant, VariantResult & { samples: number[]; commands: number; calls: Map<string, number>; measured: number }>();
    for (const variant of Object.keys(VARIANTS) as Variant[]) {
      results.set(variant, {
        variant, perSecond: 0, roundsPerSecond: [], p50Ms: 0, commandsPerRequest: 0, callsPerRequest: {},
        accepted: 0, errors: 0, jobsInRedis: 0, samples: [], commands: 0, calls: new Map(), measured: 0,
      });
    }
    for (let round = 0; round < s.rounds; round++) {
      // Alternate who goes first, so neither variant always runs on the warmer machine.
      const order: Variant[] = round % 2 === 0 ? ["off", "on", "jobs"] : ["jobs", "on", "off"];
      for (const variant of order) {
        const r = results.get(variant) as NonNullable<ReturnType<typeof results.get>>;
        const edge = edges.get(variant) as EdgeProcess;
        const route = ROUTES[variant];
        const target = { url: `${edge.url}${route.path}`, headers: { authorization: `Bearer ${env.apiKey}` }, expectStatus: 202, timeoutMs: s.requestTimeoutMs };
        const client = httpClient(target, s.concurrency);
        const single = httpClient(target, 1);
        try {
          const send = (c: typeof client, id: string) => c.sendBody(JSON.stringify(route.body(id)));
          await closedLoop({ concurrency: s.concurrency, count: s.concurrency * 4, deadlineMs: s.roundDeadlineMs }, (i) => send(client, `pw${round}-${variant}-${i}`))
            .then((w) => (r.accepted += w.ok));
          const [loop, counters] = await measure(env.redis, base, () =>
            closedLoop({ concurrency: s.concurrency, count: s.requests, deadlineMs: s.roundDeadlineMs }, (i) => send(client, `p${round}-${variant}-${i}`)));
          r.accepted += loop.ok;
          r.errors += loop.errors;
          if (loop.firstError && !r.firstError) r.firstError = loop.firstError;
          r.roundsPerSecond.push(loop.perSecond);
          r.commands += counters.commands;
          r.measured += loop.ok;
          for (const [name, n] of counters.calls) r.calls.set(name, (r.calls.get(name) ?? 0) + n);
          const perRound = Math.ceil(s.latencyRequests / s.rounds);
          const lat = await closedLoop({ concurrency: 1, count: perRound, deadlineMs: s.roundDeadlineMs }, (i) => send(single, `pl${round}-${variant}-${i}`));
          r.accepted += lat.ok;
          r.errors += lat.errors;
          r.samples.push(...lat.samplesMs);
          env.progress(
            `protection: round ${round + 1}/${s.rounds} rate limits ${variant.padEnd(3)} ${loop.perSecond.toFixed(0).padStart(5)} req/s  ` +
              `unloaded p50 ${lat.p50Ms.toFixed(2)} ms  errors ${loop.errors + lat.errors}`,
          );
        } finally {
          client.close();
          single.close();
        }
      }
    }
    const out: VariantResult[] = [];
    for (const r of results.values()) {
      const { samples, commands, calls, measured, ...rest } = r;
      const sorted = samples.sort((a, b) => a - b);
      const perRequest = (n: number) => (measured > 0 ? n / measured : Number.NaN);
      out.push({
        ...rest,
        perSecond: median(r.roundsPerSecond),
        p50Ms: percentile(sorted, 0.5),
        commandsPerRequest: perRequest(commands),
        callsPerRequest: Object.fromEntries([...calls].filter(([name]) => ["eval", "evalsha", "incr", "pexpire", "exists", "set"].includes(name)).map(([name, n]) => [name, perRequest(n)])),
        jobsInRedis: await env.redis.llen(`bench-protect-${r.variant}:${ROUTES[r.variant].queue}:wait`),
      });
    }
    return out;
  } finally {
    await Promise.all([...edges.values()].map((e) => e.stop().catch(() => undefined)));
  }
}

/** The report's section: the two variants, their ratios, and the limiter's command cost. */
export function protectionSection(s: ProtectionSettings, results: readonly VariantResult[]): string[] {
  const by = (v: Variant) => results.find((r) => r.variant === v) as VariantResult;
  const [off, on, jobs] = [by("off"), by("on"), by("jobs")];
  const calls = (r: VariantResult) => Object.entries(r.callsPerRequest).map(([n, c]) => `${n} ${c.toFixed(2)}`).join(", ");
  return [
    "",
    `### Protection: rate limits off vs on, and the generic job route, ${s.concurrency} concurrent, ${s.rounds} interleaved rounds × ${s.requests} requests (median of rounds)`,
    "",
    "| route | rate limits | req/s | req/s per round | unloaded p50 ms | Redis commands / request | of which | errors |",
    "|---|---|---|---|---|---|---|---|",
    ...[off, on, jobs].map((r) =>
      `| \`POST ${ROUTES[r.variant].path}\` | ${r.variant === "off" ? "off" : "on"} | ${r.perSecond.toFixed(0)} | ${r.roundsPerSecond.map((x) => x.toFixed(0)).join(" / ")} | ${r.p50Ms.toFixed(2)} | ${r.commandsPerRequest.toFixed(2)} | ${calls(r)} | ${r.errors} |`),
    "",
    `On / off: throughput **${((on.perSecond / off.perSecond) * 100).toFixed(0)} %**, unloaded p50 ×${(on.p50Ms / off.p50Ms).toFixed(2)} ` +
      `(+${(on.p50Ms - off.p50Ms).toFixed(2)} ms); API-key auth is on in both.`,
    "",
    `Generic job route / \`/v1/events\` (both with limits on): throughput **${((jobs.perSecond / on.perSecond) * 100).toFixed(0)} %**, ` +
      `unloaded p50 ×${(jobs.p50Ms / on.p50Ms).toFixed(2)} (+${(jobs.p50Ms - on.p50Ms).toFixed(2)} ms).`,
  ];
}

/** The run's own check: every accepted request is one job in its variant's queue. */
export function verifyProtection(results: readonly VariantResult[]): string[] {
  return results.flatMap((r) =>
    r.jobsInRedis === r.accepted ? [] : [`protection (${r.variant}): ${r.jobsInRedis} jobs in Redis for ${r.accepted} accepted requests`]);
}
