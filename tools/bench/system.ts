// What the numbers were measured on, and how much CPU each process spent: on a 2-core machine
// the first question about any throughput figure is which process was saturated.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { ROOT } from "../dev/local-services.ts";

export interface Machine {
  cpu: string;
  cores: number;
  ramGiB: number;
  loadAverage: string;
  node: string;
  wrangler: string;
  workerd: string;
  bullmq: string;
}

export function machineInfo(): Machine {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown";
  return {
    cpu: model,
    cores: availableParallelism(),
    ramGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: loadavg().map((l) => l.toFixed(2)).join(" "),
    node: process.version,
    wrangler: tryRun(join(ROOT, "node_modules/.bin/wrangler"), ["--version"]),
    workerd: packageVersion("workerd"),
    bullmq: packageVersion("bullmq"),
  };
}

function tryRun(cmd: string, args: string[]): string {
  try {
    const out = execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 30_000 });
    return out.trim().split("\n").at(-1) ?? "unknown";
  } catch {
    return "unknown";
  }
}

function packageVersion(name: string): string {
  try {
    const pkg = JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

const TICKS_PER_SECOND = Number(tryRun("getconf", ["CLK_TCK"])) || 100;

export interface ProcUsage {
  /** utime + stime. */
  cpuMs: number;
  /** Time spent runnable but waiting for a core (schedstat of every thread): starvation by other load. */
  waitMs: number;
}

interface ProcStat extends ProcUsage {
  pid: number;
  ppid: number;
  comm: string;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm is in parentheses and may contain spaces; the fields after it are space-separated.
    const close = text.lastIndexOf(")");
    const comm = text.slice(text.indexOf("(") + 1, close);
    const fields = text.slice(close + 2).split(" ");
    // After comm: [0]=state [1]=ppid … [11]=utime [12]=stime (stat fields 14 and 15).
    const ticks = Number(fields[11]) + Number(fields[12]);
    return { pid, ppid: Number(fields[1]), comm, cpuMs: (ticks * 1000) / TICKS_PER_SECOND, waitMs: 0 };
  } catch {
    return undefined; // exited meanwhile
  }
}

function runQueueWaitMs(pid: number): number {
  try {
    let ns = 0;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[1] ?? 0);
    }
    return ns / 1e6;
  } catch {
    return 0;
  }
}

/** Node names its main thread "MainThread", which is what /proc shows for a node process. */
const COMM_LABELS: Record<string, string> = { MainThread: "node" };

/**
 * Usage per "<root label> / <command>" over each root process and all its descendants, read from
 * /proc now (counters since process start; diff two readings with `usageDelta`).
 */
export function treeUsage(roots: ReadonlyArray<{ pid: number; label: string }>): Map<string, ProcUsage> {
  const all = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map((d) => readStat(Number(d)))
    .filter((s): s is ProcStat => s !== undefined);
  const children = new Map<number, ProcStat[]>();
  for (const s of all) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  const usage = new Map<string, ProcUsage>();
  const visit = (s: ProcStat, label: string) => {
    const comm = COMM_LABELS[s.comm] ?? s.comm;
    const key = comm.startsWith(label) ? label : `${label} / ${comm}`;
    const u = usage.get(key) ?? { cpuMs: 0, waitMs: 0 };
    usage.set(key, { cpuMs: u.cpuMs + s.cpuMs, waitMs: u.waitMs + runQueueWaitMs(s.pid) });
    for (const c of children.get(s.pid) ?? []) visit(c, label);
  };
  for (const root of roots) {
    const s = all.find((p) => p.pid === root.pid);
    if (s) visit(s, root.label);
  }
  return usage;
}

/** This process alone (its children, e.g. wrangler, are measured as their own trees). */
export function selfUsage(label: string): Map<string, ProcUsage> {
  const cpu = process.cpuUsage();
  return new Map([[label, { cpuMs: (cpu.user + cpu.system) / 1000, waitMs: runQueueWaitMs(process.pid) }]]);
}

/** `after - before`, per name, dropping names that spent nothing. */
export function usageDelta(before: Map<string, ProcUsage>, after: Map<string, ProcUsage>): Map<string, ProcUsage> {
  const delta = new Map<string, ProcUsage>();
  for (const [name, u] of after) {
    const b = before.get(name) ?? { cpuMs: 0, waitMs: 0 };
    const d = { cpuMs: u.cpuMs - b.cpuMs, waitMs: u.waitMs - b.waitMs };
    if (d.cpuMs > 0 || d.waitMs > 0) delta.set(name, d);
  }
  return delta;
}

export function addUsage(total: Map<string, ProcUsage>, more: Map<string, ProcUsage>): void {
  for (const [name, u] of more) {
    const t = total.get(name) ?? { cpuMs: 0, waitMs: 0 };
    total.set(name, { cpuMs: t.cpuMs + u.cpuMs, waitMs: t.waitMs + u.waitMs });
  }
}

/** Whole-machine CPU time from /proc/stat (all cores), to show how busy the machine was. */
export interface MachineCpu {
  busyMs: number;
  totalMs: number;
  stealMs: number;
}

export function machineCpu(): MachineCpu {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  // cpu user nice system idle iowait irq softirq steal …
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const toMs = (t = 0) => (t * 1000) / TICKS_PER_SECOND;
  const busy = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0);
  return { busyMs: toMs(busy), totalMs: toMs(busy + (idle ?? 0) + (iowait ?? 0) + (steal ?? 0)), stealMs: toMs(steal) };
}

export function machineDelta(before: MachineCpu, after: MachineCpu): MachineCpu {
  return { busyMs: after.busyMs - before.busyMs, totalMs: after.totalMs - before.totalMs, stealMs: after.stealMs - before.stealMs };
}

export function addMachine(a: MachineCpu, b: MachineCpu): MachineCpu {
  return { busyMs: a.busyMs + b.busyMs, totalMs: a.totalMs + b.totalMs, stealMs: a.stealMs + b.stealMs };
}

export const NO_MACHINE_CPU: MachineCpu = { busyMs: 0, totalMs: 0, stealMs: 0 };

export interface Usage {
  procs: Map<string, ProcUsage>;
  machine: MachineCpu;
}

export function emptyUsage(): Usage {
  return { procs: new Map(), machine: NO_MACHINE_CPU };
}

/** Starts measuring the given process trees, this process and the whole machine; call the result to stop. */
export function startMeter(roots: ReadonlyArray<{ pid: number; label: string }>, selfLabel: string): () => Usage {
  const read = () => {
    const procs = treeUsage(roots);
    for (const [k, v] of selfUsage(selfLabel)) procs.set(k, v);
    return { procs, machine: machineCpu() };
  };
  const before = read();
  return () => {
    const after = read();
    return { procs: usageDelta(before.procs, after.procs), machine: machineDelta(before.machine, after.machine) };
  };
}

export function addInto(total: Usage, more: Usage): void {
  addUsage(total.procs, more.procs);
  total.machine = addMachine(total.machine, more.machine);
}

/** Pids of this process's direct children, from /proc. */
export function childPids(): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map((d) => readStat(Number(d)))
    .filter((s): s is ProcStat => s !== undefined && s.ppid === process.pid)
    .map((s) => s.pid);
}
