// Runs the edge under `wrangler dev` (the real workerd runtime) as a child process: used by
// `npm run dev`, the end-to-end tests and the benchmark.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { freePort, ROOT } from "./local-services.ts";

export interface EdgeProcess {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

export interface EdgeOptions {
  /** Worker bindings, passed as `--var NAME:value` (they never touch a file). */
  vars: Record<string, string>;
  port?: number;
  /** Another entry point than wrangler.toml's `main` (the benchmark's empty Worker). */
  script?: string;
  log?: (line: string) => void;
  /** wrangler's log level: "info" shows one line per request (npm run dev); default "warn". */
  logLevel?: "info" | "warn" | "error";
  /** Path that must answer 2xx before the edge counts as up. */
  readyPath?: string;
}

export async function untilHealthy(url: string, child: ChildProcess, name: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new ExitedEarly(`${name} exited with code ${child.exitCode}`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${name} did not become healthy at ${url}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function stopChild(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once("exit", () => done());
    child.kill(signal);
  });
}

/** The child process ended before its first healthy answer. */
class ExitedEarly extends Error {}

/**
 * Starts `wrangler dev` and waits until it answers. The ports are picked free just before, so another
 * process starting at the same moment can take one first; an edge that exits before answering is
 * started again on fresh ports, at most three times. A fixed `port` (npm run dev) is not retried.
 */
export async function startEdge(options: EdgeOptions): Promise<EdgeProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEdgeOnce(options);
    } catch (err) {
      if (!(err instanceof ExitedEarly) || options.port !== undefined || attempt >= 3) throw err;
    }
  }
}

async function startEdgeOnce(options: EdgeOptions): Promise<EdgeProcess> {
  const port = options.port ?? (await freePort());
  const args = [
    "dev", ...(options.script ? [options.script] : []),
    "--config", join(ROOT, "wrangler.toml"),
    "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(await freePort()),
    "--show-interactive-dev-session=false", "--log-level", options.logLevel ?? "warn",
    ...Object.entries(options.vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
  ];
  const child = spawn(join(ROOT, "node_modules/.bin/wrangler"), args, {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = options.log ?? (() => {});
  child.stdout?.on("data", (b: Buffer) => log(b.toString()));
  child.stderr?.on("data", (b: Buffer) => log(b.toString()));
  const url = `http://127.0.0.1:${port}`;
  try {
    await untilHealthy(`${url}${options.readyPath ?? "/health"}`, child, "wrangler dev");
  } catch (err) {
    await stopChild(child, "SIGKILL");
    throw err;
  }
  return { url, child, stop: () => stopChild(child) };
}
