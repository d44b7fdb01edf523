// Runs `node worker/main.ts` as a child process with exactly the given environment and collects
// its JSON log lines, so tests drive the real entry point: env parsing, signals, exit codes.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

const MAIN = join(import.meta.dirname, "../../worker/main.ts");

export interface MainProcess {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  /** Resolves with the first line whose `msg` is `msg`; rejects after `timeoutMs` listing every line. */
  waitForLine(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** The exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Rejects when the process has not exited within `timeoutMs`. */
  exitedWithin(timeoutMs: number): Promise<number | null>;
}

/** Only PATH is inherited: no NODE_EXTRA_CA_CERTS or app variables leak in from the test run. */
export function runMain(env: Record<string, string>): MainProcess {
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const lines: Array<Record<string, unknown>> = [];
  const listeners = new Set<() => void>();
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream! }).on("line", (line) => {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
      for (const l of listeners) l();
    });
  }
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    exitedWithin: (timeoutMs) => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`still running after ${timeoutMs} ms; got ${JSON.stringify(lines)}`)), timeoutMs);
      });
      return Promise.race([exited, late]).finally(() => clearTimeout(timer));
    },
    waitForLine: (msg, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const found = lines.find((l) => l.msg === msg);
          if (found) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no "${msg}" line; got ${JSON.stringify(lines)}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      }),
  };
}
