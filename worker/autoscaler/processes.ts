import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Log, LogRecord } from "../runner.ts";

/**
 * A replica driver for one machine: each replica is a `node worker/main.ts` process. `npm run dev`
 * and the local tests run the autoscaler's policy through it; Railway's driver (railway.ts) has the
 * same shape.
 * - Scale up: spawn with PORT=0 (the OS picks a free port; the process names it in its
 *   "worker ready" line), then poll its /readyz until 200. `apply` resolves only when every new
 *   replica is ready, and rejects (after stopping it) if one exits or is not ready in time.
 * - Scale down: SIGTERM the newest replicas. main.ts stops taking jobs, lets running ones finish
 *   (BullMQ's graceful close) and exits 0; `apply` waits for the exit. A replica still running
 *   `stopTimeoutMs` after SIGTERM is SIGKILLed (its jobs are retried once their locks lapse).
 * Calls to `apply` and `close` run one after another, never interleaved.
 */

export interface ReplicaExit {
  /** 1-based, in start order over the driver's life. */
  replica: number;
  pid: number | undefined;
  port: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** true when the driver stopped it (scale down, close, a failed start); false for a crash. */
  expected: boolean;
}

export interface ProcessDriverOptions {
  /** The replicas' whole environment (nothing is inherited); PORT is always set to 0. */
  env: Record<string, string>;
  /** Working directory of each replica; the entry is `<cwd>/worker/main.ts` unless `entry` says otherwise. */
  cwd: string;
  log: Log;
  onExit?: (exit: ReplicaExit) => void;
  entry?: string;
  /** Start → /readyz 200, per replica. Default 60 s (a cold start on a busy 2-core box takes a few). */
  readyTimeoutMs?: number;
  /** SIGTERM → exit before SIGKILL. Default 60 s; keep it above the replicas' SHUTDOWN_TIMEOUT_MS. */
  stopTimeoutMs?: number;
  /** Replicas' own log lines are passed to `log` with their replica number. Default true. */
  forwardLogs?: boolean;
}

export interface ProcessDriver {
  /** Replicas running or starting; ones already told to stop don't count. */
  current(): number;
  /** Starts or stops replicas until `current()` is `replicas`. */
  apply(replicas: number): Promise<void>;
  /** Stops every replica (graceful, like a scale to zero) and refuses further `apply` calls. */
  close(): Promise<void>;
  /** The replicas counted by `current()`, oldest first (dev output, tests); `port` once ready. */
  replicas(): Array<{ replica: number; pid: number | undefined; port: number | undefined }>;
}

interface Replica {
  replica: number;
  child: ChildProcess;
  port?: number;
  stopping: boolean;
  exited: Promise<void>;
  /** The last few stderr/stdout lines, to explain a failed start. */
  tail: string[];
}

export function createProcessDriver(options: ProcessDriverOptions): ProcessDriver {
  const entry = options.entry ?? join(options.cwd, "worker/main.ts");
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 60_000;
  const forwardLogs = options.forwardLogs ?? true;
  const { log } = options;
  const replicas: Replica[] = [];
  let started = 0;
  let closed = false;
  let queue: Promise<unknown> = Promise.resolve();

  const live = () => replicas.filter((r) => !r.stopping);

  function launch(): { replica: Replica; ready: Promise<void> } {
    const number = ++started;
    const child = spawn(process.execPath, [entry], {
      cwd: options.cwd,
      env: { ...options.env, PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let onPort: (port: number) => void = () => undefined;
    const portKnown = new Promise<number>((resolve) => (onPort = resolve));
    const replica: Replica = { replica: number, child, stopping: false, tail: [], exited: Promise.resolve() };
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream! }).on("line", (line) => {
        replica.tail.push(line);
        if (replica.tail.length > 20) replica.tail.shift();
        let parsed: Record<string, unknown> | undefined;
        try {
          const value: unknown = JSON.parse(line);
          if (value && typeof value === "object" && !Array.isArray(value)) parsed = value as Record<string, unknown>;
        } catch {
          // not JSON: forwarded as text below
        }
        if (parsed?.msg === "worker ready" && typeof parsed.port === "number") onPort(parsed.port);
        if (!forwardLogs) return;
        const { level, msg, time: _time, ...fields } = parsed ?? { level: "info", msg: line };
        const lvl = level === "warn" || level === "error" ? level : "info";
        log(lvl, typeof msg === "string" ? msg : String(msg), { ...(fields as LogRecord), replica: number });
      });
    }
    replica.exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        const index = replicas.indexOf(replica);
        if (index >= 0) replicas.splice(index, 1);
        const exit: ReplicaExit = { replica: number, pid: child.pid, port: replica.port, code, signal, expected: replica.stopping };
        log(exit.expected ? "info" : "warn", exit.expected ? "replica exited" : "replica exited unexpectedly", {
          replica: number, pid: child.pid, code, signal,
        });
        options.onExit?.(exit);
        resolve();
      });
    });
    child.once("error", (err) => log("error", "replica failed to spawn", { replica: number, error: err.message }));
    replicas.push(replica);
    log("info", "replica starting", { replica: number, pid: child.pid });

    const ready = (async () => {
      const deadline = Date.now() + readyTimeoutMs;
      const exitedEarly = replica.exited.then(() => {
        throw new Error(`replica ${number} exited before it was ready: ${replica.tail.join(" | ")}`);
      });
      // Awaited only through the races below; an exit after readiness is no error here.
      exitedEarly.catch(() => undefined);
      const timeout = (ms: number) => new Promise<"timeout">((r) => setTimeout(() => r("timeout"), Math.max(0, ms)).unref());
      const port = await Promise.race([portKnown, exitedEarly, timeout(deadline - Date.now())]);
      if (port === "timeout") throw new Error(`replica ${number} logged no "worker ready" within ${readyTimeoutMs} ms`);
      replica.port = port;
      for (;;) {
        const status = await Promise.race([probe(port), exitedEarly]);
        if (status === 200) break;
        if (Date.now() > deadline) throw new Error(`replica ${number} /readyz not 200 within ${readyTimeoutMs} ms (last: ${status})`);
        await Promise.race([timeout(100), exitedEarly]);
      }
      log("info", "replica ready", { replica: number, pid: child.pid, port });
    })();
    return { replica, ready };
  }

  async function stop(replica: Replica): Promise<void> {
    replica.stopping = true;
    if (replica.child.exitCode === null && replica.child.signalCode === null) replica.child.kill("SIGTERM");
    const timer = setTimeout(() => {
      log("warn", "replica did not stop in time; killing it", { replica: replica.replica, timeoutMs: stopTimeoutMs });
      replica.child.kill("SIGKILL");
    }, stopTimeoutMs);
    try {
      await replica.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  async function scale(target: number): Promise<void> {
    const running = live();
    if (target > running.length) {
      const launched = Array.from({ length: target - running.length }, launch);
      const results = await Promise.allSettled(launched.map((l) => l.ready));
      const failed = launched.filter((_, i) => results[i]!.status === "rejected");
      if (failed.length > 0) {
        await Promise.all(failed.map((l) => stop(l.replica)));
        const reasons = results.flatMap((r) => (r.status === "rejected" ? [String(r.reason instanceof Error ? r.reason.message : r.reason)] : []));
        throw new Error(`${failed.length} of ${launched.length} replica(s) failed to start: ${reasons.join("; ")}`);
      }
    } else if (target < running.length) {
      // Newest first: the longest-running replicas keep their warm connections.
      await Promise.all(running.slice(target).reverse().map(stop));
    }
  }

  function serial<T>(work: () => Promise<T>): Promise<T> {
    const next = queue.then(work, work);
    queue = next.catch(() => undefined);
    return next;
  }

  return {
    current: () => live().length,
    replicas: () => live().map((r) => ({ replica: r.replica, pid: r.child.pid, port: r.port })),
    apply: (target) => {
      if (!Number.isInteger(target) || target < 0) return Promise.reject(new Error(`replicas must be a whole number ≥ 0, got ${target}`));
      return serial(async () => {
        if (closed) throw new Error("process driver is closed");
        await scale(target);
      });
    },
    close: () =>
      serial(async () => {
        closed = true;
        await Promise.all([...replicas].map(stop));
      }),
  };
}

/** GET /readyz's status, or 0 when nothing answers (yet). */
async function probe(port: number): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}
