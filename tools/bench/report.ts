// The printed result: one markdown document that pastes into a README as is.
import { formatCommands, type IdleCost, type JobCost } from "./commands.ts";
import type { DrainResult } from "./drain.ts";
import { formatFsync, type FsyncResult, type FsyncSettings } from "./fsync.ts";
import { CONSUMERS, sumUsage, type Consumer } from "./drain.ts";
import { P999_MIN_SAMPLES, type EnqueueSettings, type TargetName, type TargetResult } from "./enqueue.ts";
import { median } from "./load.ts";
import { perJob } from "./redis-stats.ts";
import type { StripeBenchResult, StripeBenchSettings } from "./stripe.ts";
import type { Machine, Usage } from "./system.ts";
import type { TransportResult } from "./transports.ts";
import { formatLatency, type LatencyBenchResult, type LatencySettings } from "./latency.ts";

export interface ReportInput {
  machine: Machine & { redis: string; postgres: string };
  enqueue?: { settings: EnqueueSettings; results: TargetResult[] };
  drain?: { jobs: number; concurrency: number; rounds: number; result: DrainResult };
  transports?: { requests: number; concurrency: number; results: TransportResult[] };
  rtt?: { settings: LatencySettings; result: LatencyBenchResult };
  stripe?: { settings: StripeBenchSettings; result: StripeBenchResult };
  commands?: { jobs: JobCost[]; idle: IdleCost[] };
  fsync?: { settings: FsyncSettings; results: FsyncResult[] };
  totalSeconds: number;
}

/** Throughput share of the edge over the floor that counts as "the edge adds little". */
export const EDGE_TARGET = 0.8;
/** Fleet drain rate over a no-op worker's (issue #11: 80 %). */
export const DRAIN_TARGET = 0.8;

const LABELS: Record<TargetName, string> = {
  edge: "edge `POST /v1/events` (wrangler dev)",
  "edge-do": "edge, REDIS_TRANSPORT=durable-object (wrangler dev)",
  empty: "empty Worker (wrangler dev)",
  "socket-open": "probe: empty + open a Redis socket",
  "socket-ping": "probe: empty + AUTH/PING via the edge transport",
  "do-ping": "probe: empty + one RPC to the RedisConnection object, PING on its held connection",
  "fetch-ping": "probe: empty + one REST pipeline (PING) through the edge's Upstash transport, no Redis behind",
  node: "BullMQ `Queue.add` from Node",
};

const f = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "–");
const pct = (n: number) => `${f(n * 100)} %`;
const verdict = (ok: boolean) => (ok ? "**met**" : "**not met**");

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

export function formatReport(input: ReportInput): string {
  const m = input.machine;
  const out: string[] = [
    "## edgefleet benchmark",
    "",
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, load average at start ${m.loadAverage}.  `,
    `Software: Node ${m.node}, Redis ${m.redis}, PostgreSQL ${m.postgres}, wrangler ${m.wrangler} (workerd ${m.workerd}), bullmq ${m.bullmq}.  `,
    "Redis and PostgreSQL are private instances on loopback (Redis AOF everysec, PostgreSQL fsync on).",
  ];

  if (input.enqueue) {
    const { settings: s, results } = input.enqueue;
    const by = (n: TargetName) => results.find((r) => r.name === n) as TargetResult;
    const [edge, edgeDo, doPing, empty, node] = [by("edge"), by("edge-do"), by("do-ping"), by("empty"), by("node")];
    const ratio = edge.perSecond / empty.perSecond;
    const doRatio = edgeDo.perSecond / empty.perSecond;
    out.push(
      "",
      `### Enqueue: ${s.concurrency} concurrent, ${s.rounds} interleaved rounds × ${s.requests} requests after ${s.warmup} warm-up (median of rounds)`,
      "",
      table(
        ["path", "req/s", "p50 ms", "p99 ms", "errors", "req/s per round"],
        results.map((r) => [
          LABELS[r.name], f(r.perSecond), f(r.p50Ms, 2), f(r.p99Ms, 2), String(r.errors),
          r.rounds.map((x) => f(x.perSecond)).join(" / "),
        ]),
      ),
      "",
      `Edge / empty Worker throughput: **${pct(ratio)}** (target ≥ ${pct(EDGE_TARGET)}: ${verdict(ratio >= EDGE_TARGET)}); ` +
        `edge / Node \`Queue.add\`: ${pct(edge.perSecond / node.perSecond)}.  `,
      `Edge-do / empty Worker: **${pct(doRatio)}** (target ≥ ${pct(EDGE_TARGET)}: ${verdict(doRatio >= EDGE_TARGET)}); ` +
        `do-ping / empty Worker (the floor of the Durable Object path): **${pct(doPing.perSecond / empty.perSecond)}**; ` +
        `fetch-ping / empty Worker (the floor of the REST path): **${pct(by("fetch-ping").perSecond / empty.perSecond)}**; ` +
        `socket-ping / empty Worker (the floor of the socket path): **${pct(by("socket-ping").perSecond / empty.perSecond)}**; ` +
        `edge-do / edge: ${pct(edgeDo.perSecond / edge.perSecond)}.`,
      "",
      ...(s.latency ? [...latencySection(s, results), ""] : []),
      ...gapSection(results),
    );
    if (results.some((r) => r.firstError)) {
      out.push("", `First errors: ${results.filter((r) => r.firstError).map((r) => `${r.name}: ${r.firstError}`).join("; ")}`);
    }

    const e = perJob(edge.redis, edge.ok);
    const d = perJob(edgeDo.redis, edgeDo.ok);
    const n = perJob(node.redis, node.ok);
    const emptyRedis = empty.redis.commands;
    out.push(
      "",
      "### Redis cost per enqueued job (INFO stats / commandstats deltas over the measured rounds)",
      "",
      table(
        ["per job", "edge (RESP socket per request)", "edge-do (one held connection, group commit)", "Node `Queue.add` (one shared connection)"],
        [
          ["commands sent by the client", `${f(e.clientCommands, 2)} (${e.clientMix})`, `${f(d.clientCommands, 2)} (${d.clientMix})`, `${f(n.clientCommands, 2)} (${n.clientMix})`],
          ["commands incl. those run inside the Lua script", f(e.allCommands, 2), f(d.allCommands, 2), f(n.allCommands, 2)],
          ["bytes in (client → Redis)", f(e.bytesIn), f(d.bytesIn), f(n.bytesIn)],
          ["bytes out (Redis → client)", f(e.bytesOut), f(d.bytesOut), f(n.bytesOut)],
          ["connections accepted", f(e.connections, 3), f(d.connections, 4), f(n.connections, 4)],
          ["socket reads / writes by Redis", `${f(e.reads, 2)} / ${f(e.writes, 2)}`, `${f(d.reads, 2)} / ${f(d.writes, 2)}`, `${f(n.reads, 2)} / ${f(n.writes, 2)}`],
          ["jobs in Redis / requests accepted", `${edge.jobsInRedis} / ${edge.accepted}`, `${edgeDo.jobsInRedis} / ${edgeDo.accepted}`, `${node.jobsInRedis} / ${node.accepted}`],
        ],
      ),
      "",
      "One round trip per edge request shows as: 1 connection, AUTH + EVALSHA (≈ 2 client commands), and Redis " +
        "answering both with one socket write (reads ≈ 2 = the pipelined request + the close). " +
        "Edge-do's group commit shows as fewer than one Redis read and write per job. " +
        `The empty Worker rounds sent ${emptyRedis} commands to Redis (expected 0).`,
      "",
      "### Where the time went (measured rounds)",
      "",
      cpuTable(
        results.map((r) => ({ label: r.name, usage: r.usage, per: r.ok, wallMs: r.rounds.reduce((t, x) => t + x.wallMs, 0) })),
      ),
      "",
      `HTTP connections the client opened during measured rounds: ${results.filter((r) => r.clientConnections !== undefined).map((r) => `${r.name} ${r.clientConnections}`).join(", ")} ` +
        `(keep-alive, ${s.concurrency} lanes; wrangler dev closes sockets left idle between rounds).`,
    );
  }

  if (input.drain) {
    const { result, jobs, concurrency, rounds } = input.drain;
    const ratio = result.perSecond.fleet / result.perSecond.noop;
    const runs = (c: Consumer) => result.runs.filter((r) => r.consumer === c);
    const label: Record<Consumer, string> = {
      fleet: `fleet (\`startFleet\`, audit → Postgres, ${result.writesInFlight} inserts in flight)`,
      "fleet-serial": "fleet, one insert in flight (`AUDIT_WRITES_IN_FLIGHT=1`)",
      "insert-only": "insert only: bare BullMQ `Worker` + the fleet's batched insert, nothing else",
      noop: "no-op BullMQ `Worker`",
    };
    const fleetRuns = runs("fleet");
    const inserts = fleetRuns.reduce((t, r) => t + (r.inserts ?? 0), 0);
    out.push(
      "",
      `### Worker drain: ${jobs} pre-loaded audit jobs, concurrency ${concurrency}, ${rounds} interleaved rounds (median); ` +
        `every consumer on the fleet defaults (drainDelay ${result.workerSettings.drainDelaySeconds} s, ` +
        `stalled ${result.workerSettings.stalledIntervalMs / 1000} s, lock ${result.workerSettings.lockDurationMs / 1000} s)`,
      "",
      table(
        ["consumer", "jobs/s", "jobs/s per round", "verified", "failed", "pre-load (addBulk) jobs/s"],
        CONSUMERS.map((c) => [
          label[c],
          f(result.perSecond[c]),
          runs(c).map((r) => f(r.perSecond)).join(" / "),
          runs(c).map((r) => `${r.verified}${c === "noop" ? " completed" : " rows"}`).join(", "),
          String(runs(c).reduce((t, r) => t + r.failed, 0)),
          f(median(runs(c).map((r) => r.preloadPerSecond))),
        ]),
      ),
      "",
      `Fleet / no-op: **${pct(ratio)}** (target ≥ ${pct(DRAIN_TARGET)}: ${verdict(ratio >= DRAIN_TARGET)}; ` +
        `round by round ${runs("fleet").map((r, i) => pct(r.perSecond / (runs("noop")[i]?.perSecond ?? NaN))).join(" / ")}). ` +
        `Fleet inserts: ${inserts} multi-row inserts for ${jobs * fleetRuns.length} rows ` +
        `(avg ${f((jobs * fleetRuns.length) / inserts, 0)} rows, largest ${Math.max(...fleetRuns.map((r) => r.largestInsert ?? 0))}). ` +
        `${(["fleet-serial", "insert-only"] as const).map((c) => `${c} / no-op: ${pct(result.perSecond[c] / result.perSecond.noop)} ` +
          `(round by round ${runs(c).map((r, i) => pct(r.perSecond / (runs("noop")[i]?.perSecond ?? NaN))).join(" / ")})`).join("; ")}. ` +
        `Fleet / insert-only: **${pct(result.perSecond.fleet / result.perSecond["insert-only"])}**: what the fleet's own code ` +
        `(validation, job log, metrics, outage handling) costs on top of the write.`,
      "",
      cpuTable(
        CONSUMERS.map((c) => ({
          label: c,
          usage: sumUsage(runs(c)),
          per: jobs * runs(c).length,
          wallMs: runs(c).reduce((t, r) => t + r.ms, 0),
        })),
        "job",
      ),
    );
    if (result.remote) {
      const r = result.remote;
      const remoteRuns = (c: "fleet" | "fleet-serial") => r.runs.filter((x) => x.consumer === c);
      out.push(
        "",
        `Postgres ${f(r.rttMs)} ms away (a delay proxy in the bench process between the fleet and Postgres; ` +
          `${rounds} alternating rounds; every row verified):`,
        "",
        table(
          ["consumer", "jobs/s", "jobs/s per round", "inserts (avg rows)"],
          (["fleet", "fleet-serial"] as const).map((c) => {
            const ins = remoteRuns(c).reduce((t, x) => t + (x.inserts ?? 0), 0);
            return [label[c], f(r.perSecond[c]), remoteRuns(c).map((x) => f(x.perSecond)).join(" / "), `${ins} (${f((jobs * remoteRuns(c).length) / ins, 0)})`];
          }),
        ),
        "",
        `${result.writesInFlight} inserts in flight / one: **${pct(r.perSecond.fleet / r.perSecond["fleet-serial"])}**.`,
      );
    }
  }

  if (input.transports) out.push("", ...transportSection(input.transports));
  if (input.rtt) out.push(...formatLatency(input.rtt.settings, input.rtt.result));
  if (input.stripe) out.push("", ...stripeSection(input.stripe));
  if (input.commands) {
    const windowMs = input.commands.idle[0]?.windowMs ?? 0;
    out.push("", formatCommands(input.commands.jobs, input.commands.idle));
    if (windowMs < 120_000) {
      out.push("", `The idle window was ${f(windowMs / 1000)} s (a --quick run; the full run uses 120 s): the economy row ` +
        "(drainDelay 60 s) sees at most one timeout per queue in it, so its figures are coarse.");
    }
  }

  if (input.fsync) out.push("", formatFsync(input.fsync.settings, input.fsync.results));

  out.push("", `Total run time: ${f(input.totalSeconds)} s.`);
  return out.join("\n");
}

/** Unloaded latency: the table placed right after the throughput one. */
function latencySection(s: EnqueueSettings, results: TargetResult[]): string[] {
  const measured = results.filter((r) => r.latency);
  const edge = measured.find((r) => r.name === "edge")?.latency;
  const empty = measured.find((r) => r.name === "empty")?.latency;
  const perRound = Math.ceil((s.latency?.requests ?? 0) / s.rounds);
  const errors = measured.filter((r) => r.latency?.firstError);
  return [
    `### Enqueue latency, one request at a time (concurrency 1, ${s.rounds} interleaved rounds × ${perRound} requests, ` +
      `each after ${s.latency?.warmup} warm-up; percentiles over all rounds' samples)`,
    "",
    table(
      ["path", "p50 ms", "p99 ms", `p99.9 ms (from ${P999_MIN_SAMPLES} samples)`, "samples", "errors", "p50 per round"],
      measured.map((r) => {
        const l = r.latency as NonNullable<TargetResult["latency"]>;
        return [LABELS[r.name], f(l.p50Ms, 2), f(l.p99Ms, 2), f(l.p999Ms, 2), String(l.samples), String(l.errors), l.roundP50Ms.map((x) => f(x, 2)).join(" / ")];
      }),
    ),
    "",
    ...(edge && empty
      ? [`The edge adds **${f(edge.p50Ms - empty.p50Ms, 2)} ms** at p50 over the empty Worker (${f(edge.p50Ms, 2)} vs ${f(empty.p50Ms, 2)} ms), ` +
          `unloaded. At ${s.concurrency} concurrent, workerd is CPU-bound and the table above's p50 is mostly queueing (≈ ${s.concurrency} ÷ req/s).`]
      : []),
    ...(errors.length ? ["", `First errors: ${errors.map((r) => `${r.name}: ${r.latency?.firstError}`).join("; ")}`] : []),
  ];
}

/**
 * The edge/empty gap split into steps, each probe adding one thing to the empty Worker. Time per
 * request (1 / throughput) is what adds up step by step, so each step's share of the gap is taken
 * in it, not in req/s.
 */
function gapSection(results: TargetResult[]): string[] {
  const by = (n: TargetName) => results.find((r) => r.name === n) as TargetResult;
  const empty = by("empty");
  const steps: Array<[TargetName, string]> = [
    ["empty", "read the body, answer 202"],
    ["socket-open", "+ `connect()` to Redis, await `opened`, close after the response"],
    ["socket-ping", "+ AUTH and PING in one write through `createSocketTransport`, wait for PONG"],
    ["edge", "+ the app: routing, API-key check, validation, EVALSHA of BullMQ's add script"],
  ];
  const doSteps: Array<[TargetName, string]> = [
    ["empty", "read the body, answer 202"],
    ["do-ping", "+ one RPC to the RedisConnection object, which PINGs on the connection it holds"],
    ["edge-do", "+ the app: routing, API-key check, validation, EVALSHA of BullMQ's add script, through the same object"],
  ];
  const ms = (r: TargetResult) => 1000 / r.perSecond;
  const stepRows = (path: Array<[TargetName, string]>) => {
    const gapMs = ms(by((path.at(-1) as [TargetName, string])[0])) - ms(empty);
    let previous = empty;
    return path.map(([name, what]) => {
      const r = by(name);
      const redis = perJob(r.redis, r.ok);
      const row = [
        `${name}: ${what}`, f(r.perSecond), pct(r.perSecond / empty.perSecond),
        name === "empty" ? "–" : `${f(ms(r) - ms(previous), 2)} ms (${pct((ms(r) - ms(previous)) / gapMs)} of the gap)`,
        `${f(redis.connections, 2)} / ${f(redis.clientCommands, 2)}${redis.clientMix ? ` (${redis.clientMix})` : ""}`,
      ];
      previous = r;
      return row;
    });
  };
  const gapMs = ms(by("edge")) - ms(empty);
  const head = ["Worker (wrangler dev)", "req/s", "of empty", "step's cost: Δ 1/throughput", "Redis connections / client commands per request"];
  return [
    "### The edge/empty gap, step by step (probe Workers in the same interleaved rounds)",
    "",
    table(head, stepRows(steps)),
    "",
    "REDIS_TRANSPORT=durable-object, the same way:",
    "",
    table(head, stepRows(doSteps)),
    "",
    `Opening the per-request socket alone accounts for ${pct((ms(by("socket-open")) - ms(empty)) / gapMs)} of the edge's extra time per request; ` +
      `socket + one AUTH/PING round trip for ${pct((ms(by("socket-ping")) - ms(empty)) / gapMs)}. ` +
      "A Worker cannot keep a socket across requests, so this part is the platform's price for RESP over TCP, not the app's.",
  ];
}

function transportSection(input: NonNullable<ReportInput["transports"]>): string[] {
  const label = { resp: "RESP: TCP connect + AUTH + EVALSHA per job (Node stand-in)", rest: "REST: one POST /pipeline per job (Upstash stand-in, keep-alive)" };
  return [
    `### Edge transports in Node: ${input.requests} single-job enqueues each, ${input.concurrency} concurrent, fresh transport per job`,
    "",
    table(
      ["transport", "jobs/s", "p50 ms", "p99 ms", "errors", "request bytes / job"],
      input.results.map((r) => [label[r.transport], f(r.perSecond), f(r.p50Ms, 2), f(r.p99Ms, 2), String(r.errors), String(r.requestBytes)]),
    ),
    "",
    "Loopback ranks overheads (CPU, bytes, round trips) only; over the internet the round trips dominate. " +
      "The Node RESP stand-in sends AUTH in its own round trip, which the workerd socket transport pipelines.",
  ];
}

function stripeSection({ settings: s, result: r }: NonNullable<ReportInput["stripe"]>): string[] {
  return [
    `### Stripe webhooks end to end: ${s.lifecycles} customer lifecycles (${r.events} events, each delivered twice, shuffled), ` +
      `${s.concurrency} concurrent deliveries, worker concurrency ${s.workerConcurrency}`,
    "",
    table(
      ["deliveries", "accepted by the edge / s", "distinct events PROCESSED / s (first delivery → last PROCESSED)", "webhook_events rows / events", "non-200"],
      [[String(r.deliveries), f(r.acceptedPerSecond), f(r.eventsPerSecond), `${r.rows} / ${r.events}`, String(r.non200)]],
    ),
  ];
}

/**
 * Rows: process (tree); per scenario "CPU ms / wait ms per unit": CPU time spent, and time spent
 * runnable but waiting for a core (other load on the machine). The last rows show the whole
 * machine: how busy it was, and how much of that busy time was not this benchmark's processes.
 */
function cpuTable(cols: Array<{ label: string; usage: Usage; per: number; wallMs: number }>, unit = "request"): string {
  const names = [...new Set(cols.flatMap((c) => [...c.usage.procs.keys()]))].sort();
  const ours = (c: (typeof cols)[number]) => [...c.usage.procs.values()].reduce((t, u) => t + u.cpuMs, 0);
  return [
    table(
      ["process", ...cols.map((c) => `${c.label}: CPU / run-queue wait, ms per ${unit} (CPU % of one core)`)],
      [
        ...names.map((name) => [
          name,
          ...cols.map((c) => {
            const u = c.usage.procs.get(name);
            return u === undefined
              ? "–"
              : `${f(u.cpuMs / c.per, 3)} / ${f(u.waitMs / c.per, 3)} (${pct(u.cpuMs / c.wallMs)})`;
          }),
        ]),
        ["machine busy (all cores)", ...cols.map((c) => pct(c.usage.machine.busyMs / c.usage.machine.totalMs))],
        [
          "… of which other processes",
          ...cols.map((c) => pct(Math.max(0, c.usage.machine.busyMs - ours(c)) / c.usage.machine.totalMs)),
        ],
        ["steal", ...cols.map((c) => pct(c.usage.machine.stealMs / c.usage.machine.totalMs))],
      ],
    ),
  ].join("\n");
}
