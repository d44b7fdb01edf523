// The printed result: one markdown document that pastes into a README as is.
import type { DrainResult } from "./drain.ts";
import { sumUsage } from "./drain.ts";
import type { EnqueueSettings, TargetName, TargetResult } from "./enqueue.ts";
import { median } from "./load.ts";
import { perJob } from "./redis-stats.ts";
import type { Machine, Usage } from "./system.ts";

export interface ReportInput {
  machine: Machine & { redis: string; postgres: string };
  enqueue?: { settings: EnqueueSettings; results: TargetResult[] };
  drain?: { jobs: number; concurrency: number; rounds: number; result: DrainResult };
  totalSeconds: number;
}

/** Throughput share of the edge over the floor that counts as "the edge adds little". */
export const EDGE_TARGET = 0.8;
/** Fleet drain rate over a no-op worker's. */
export const DRAIN_TARGET = 0.5;

const LABELS: Record<TargetName, string> = {
  edge: "edge `POST /v1/events` (wrangler dev)",
  empty: "empty Worker (wrangler dev)",
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
    const [edge, empty, node] = [by("edge"), by("empty"), by("node")];
    const ratio = edge.perSecond / empty.perSecond;
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
        `edge / Node \`Queue.add\`: ${pct(edge.perSecond / node.perSecond)}.`,
    );
    if (edge.firstError || empty.firstError || node.firstError) {
      out.push("", `First errors: ${results.filter((r) => r.firstError).map((r) => `${r.name}: ${r.firstError}`).join("; ")}`);
    }

    const e = perJob(edge.redis, edge.ok);
    const n = perJob(node.redis, node.ok);
    const emptyRedis = empty.redis.commands;
    out.push(
      "",
      "### Redis cost per enqueued job (INFO stats / commandstats deltas over the measured rounds)",
      "",
      table(
        ["per job", "edge (RESP socket per request)", "Node `Queue.add` (one shared connection)"],
        [
          ["commands sent by the client", `${f(e.clientCommands, 2)} (${e.clientMix})`, `${f(n.clientCommands, 2)} (${n.clientMix})`],
          ["commands incl. those run inside the Lua script", f(e.allCommands, 2), f(n.allCommands, 2)],
          ["bytes in (client → Redis)", f(e.bytesIn), f(n.bytesIn)],
          ["bytes out (Redis → client)", f(e.bytesOut), f(n.bytesOut)],
          ["connections accepted", f(e.connections, 3), f(n.connections, 4)],
          ["socket reads / writes by Redis", `${f(e.reads, 2)} / ${f(e.writes, 2)}`, `${f(n.reads, 2)} / ${f(n.writes, 2)}`],
          ["jobs in Redis / requests accepted", `${edge.jobsInRedis} / ${edge.accepted}`, `${node.jobsInRedis} / ${node.accepted}`],
        ],
      ),
      "",
      "One round trip per edge request shows as: 1 connection, AUTH + EVALSHA (≈ 2 client commands), and Redis " +
        "answering both with one socket write (reads ≈ 2 = the pipelined request + the close). " +
        `The empty Worker rounds sent ${emptyRedis} commands to Redis (expected 0).`,
      "",
      "### Where the time went (measured rounds)",
      "",
      cpuTable(
        results.map((r) => ({ label: r.name, usage: r.usage, per: r.ok, wallMs: r.rounds.reduce((t, x) => t + x.wallMs, 0) })),
      ),
      "",
      `HTTP connections the client opened during measured rounds: edge ${edge.clientConnections}, empty ${empty.clientConnections} ` +
        `(keep-alive, ${s.concurrency} lanes; wrangler dev closes sockets left idle between rounds).`,
    );
  }

  if (input.drain) {
    const { result, jobs, concurrency, rounds } = input.drain;
    const ratio = result.perSecond.fleet / result.perSecond.noop;
    const runs = (c: "fleet" | "noop") => result.runs.filter((r) => r.consumer === c);
    const fleetRuns = runs("fleet");
    const inserts = fleetRuns.reduce((t, r) => t + (r.inserts ?? 0), 0);
    out.push(
      "",
      `### Worker drain: ${jobs} pre-loaded audit jobs, concurrency ${concurrency}, ${rounds} interleaved rounds (median)`,
      "",
      table(
        ["consumer", "jobs/s", "jobs/s per round", "verified", "failed", "pre-load (addBulk) jobs/s"],
        (["fleet", "noop"] as const).map((c) => [
          c === "fleet" ? "fleet (`startFleet`, audit → Postgres)" : "no-op BullMQ `Worker`",
          f(result.perSecond[c]),
          runs(c).map((r) => f(r.perSecond)).join(" / "),
          runs(c).map((r) => `${r.verified}${c === "fleet" ? " rows" : " completed"}`).join(", "),
          String(runs(c).reduce((t, r) => t + r.failed, 0)),
          f(median(runs(c).map((r) => r.preloadPerSecond))),
        ]),
      ),
      "",
      `Fleet / no-op: **${pct(ratio)}** (target ≥ ${pct(DRAIN_TARGET)}: ${verdict(ratio >= DRAIN_TARGET)}). ` +
        `Fleet inserts: ${inserts} multi-row inserts for ${jobs * fleetRuns.length} rows ` +
        `(avg ${f((jobs * fleetRuns.length) / inserts, 0)} rows, largest ${Math.max(...fleetRuns.map((r) => r.largestInsert ?? 0))}).`,
      "",
      cpuTable(
        (["fleet", "noop"] as const).map((c) => ({
          label: c,
          usage: sumUsage(runs(c)),
          per: jobs * runs(c).length,
          wallMs: runs(c).reduce((t, r) => t + r.ms, 0),
        })),
        "job",
      ),
    );
  }

  out.push("", `Total run time: ${f(input.totalSeconds)} s.`);
  return out.join("\n");
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
