// Splits a drain's V8 CPU profile (`npm run bench -- --drain-profile DIR`) into the parts of the
// fleet's per-job cost: each sample goes to the innermost stack frame that belongs to a known part
// (the job log line, zod, the batcher, Drizzle, node-postgres, BullMQ, ioredis, …), so a library's
// own callees count for it and the runner gets only its own lines.
//
//   node tools/bench/cpu-split.ts /tmp/prof/drain-fleet-0.cpuprofile [more.cpuprofile …]
import { readFileSync } from "node:fs";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Ordered: the first rule a frame matches names its part. */
const PARTS: ReadonlyArray<[part: string, match: (f: CallFrame) => boolean]> = [
  ["(idle)", (f) => f.functionName === "(idle)"],
  ["(garbage collector)", (f) => f.functionName === "(garbage collector)"],
  ["(program)", (f) => f.functionName === "(program)"],
  ["job log line", (f) => /worker\/(runner|job-log)\.ts$/.test(f.url) && /log|summar|record|flush|emit/i.test(f.functionName) || /tools\/bench\/drain\.ts$/.test(f.url) && f.functionName === "log"],
  ["zod validation", (f) => f.url.includes("/node_modules/zod/")],
  ["drizzle (query building)", (f) => f.url.includes("/node_modules/drizzle-orm/")],
  ["node-postgres (driver)", (f) => /\/node_modules\/(pg|pg-protocol|pg-types|pg-pool|postgres-[a-z]+)\//.test(f.url)],
  ["audit handler + batcher", (f) => f.url.includes("/worker/audit/")],
  ["runner (rest)", (f) => /\/worker\/(runner|outage|job-log)\.ts$/.test(f.url)],
  ["msgpackr", (f) => f.url.includes("/node_modules/msgpackr")],
  ["bullmq", (f) => f.url.includes("/node_modules/bullmq/")],
  ["ioredis + parser", (f) => /\/node_modules\/(ioredis|redis-parser|@ioredis|denque|cluster-key-slot|standard-as-callback)\//.test(f.url)],
  ["bench harness", (f) => f.url.includes("/tools/bench/")],
];

function split(path: string): Map<string, number> {
  const profile = JSON.parse(readFileSync(path, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const partOf = new Map<number, string>();
  const resolve = (id: number): string => {
    const known = partOf.get(id);
    if (known) return known;
    const node = byId.get(id)!;
    const rule = PARTS.find(([, match]) => match(node.callFrame));
    const up = parent.get(id);
    const part = rule ? rule[0] : up === undefined ? "node internals / other" : resolve(up);
    partOf.set(id, part);
    return part;
  };
  const totals = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const part = resolve(id);
    totals.set(part, (totals.get(part) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return totals;
}

function print(title: string, totals: Map<string, number>): void {
  const busy = [...totals].filter(([p]) => p !== "(idle)").reduce((n, [, us]) => n + us, 0);
  console.log(`\n${title}: ${(busy / 1000).toFixed(0)} ms on CPU (idle ${((totals.get("(idle)") ?? 0) / 1000).toFixed(0)} ms)`);
  for (const [part, us] of [...totals].filter(([p]) => p !== "(idle)").sort((a, b) => b[1] - a[1])) {
    console.log(`  ${part.padEnd(28)} ${(us / 1000).toFixed(0).padStart(7)} ms  ${((us / busy) * 100).toFixed(1).padStart(5)} %`);
  }
}

const files = process.argv.slice(2);
if (files.length === 0) throw new Error("usage: node tools/bench/cpu-split.ts FILE.cpuprofile …");
const all = new Map<string, number>();
for (const file of files) {
  const totals = split(file);
  print(file, totals);
  for (const [part, us] of totals) all.set(part, (all.get(part) ?? 0) + us);
}
if (files.length > 1) print(`all ${files.length} profiles`, all);
