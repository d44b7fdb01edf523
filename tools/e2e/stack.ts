// The real system for end-to-end tests: the edge under `wrangler dev` (workerd) and the worker fleet
// as a child process (`node worker/main.ts`), sharing one Redis and a queue prefix unique to the
// test file. Everything observable goes through the edge's HTTP API, BullMQ and Postgres.
import { spawn, type ChildProcess } from "node:child_process";
import { Queue } from "bullmq";
import { inject } from "vitest";
import { sha256Hex } from "../../edge/auth.ts";
import type { QueueName } from "../../shared/jobs/contract.ts";
import { startEdge, stopChild, untilHealthy, type EdgeProcess } from "../dev/edge-process.ts";
import { ROOT } from "../dev/local-services.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { deleteKeys, uniqueId } from "../testing/fixtures.ts";

export interface FleetProcess {
  child: ChildProcess;
  /** Everything the process wrote, for failure messages. */
  output(): string;
  /** SIGTERM (graceful drain) by default; SIGKILL to simulate a crash. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `node worker/main.ts` with exactly this configuration on a port it binds itself (PORT=0,
 * read back from its "worker ready" line) and waits until /readyz is 200.
 */
export async function startFleetProcess(env: Record<string, string>, timeoutMs = 60_000): Promise<FleetProcess> {
  // Only what a process needs from the parent; the worker's config comes from `env` alone.
  const base = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp" };
  const child = spawn(process.execPath, ["worker/main.ts"], {
    cwd: ROOT,
    env: { ...base, ...env, PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let onOutput = () => {};
  child.stdout?.on("data", (b: Buffer) => ((output += b.toString()), onOutput()));
  child.stderr?.on("data", (b: Buffer) => ((output += b.toString()), onOutput()));
  try {
    const deadline = Date.now() + timeoutMs;
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker did not log "worker ready" within ${timeoutMs} ms`)), timeoutMs);
      child.once("exit", (code) => (clearTimeout(timer), reject(new Error(`worker exited with code ${code}`))));
      onOutput = () => {
        const m = /"msg":"worker ready".*?"port":(\d+)/.exec(output);
        if (m) (clearTimeout(timer), resolve(Number(m[1])));
      };
      onOutput();
    });
    await untilHealthy(`http://127.0.0.1:${port}/readyz`, child, "worker", Math.max(1_000, deadline - Date.now()));
  } catch (err) {
    await stopChild(child, "SIGKILL");
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${output}`);
  }
  return { child, output: () => output, stop: (signal = "SIGTERM") => stopChild(child, signal) };
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  body: unknown;
  ms: number;
}

export interface Stack {
  edge: EdgeProcess;
  /** The current fleet; tests that crash it start a replacement with `restartFleet`. */
  fleet: FleetProcess;
  redisUrl: string;
  prefix: string;
  fleetEnv: Record<string, string>;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<ApiResponse>;
  get(path: string): Promise<ApiResponse>;
  queue(name: QueueName): Queue;
  restartFleet(extraEnv?: Record<string, string>): Promise<FleetProcess>;
  stop(): Promise<void>;
}

export interface StackOptions {
  /** Default: the run's shared Redis. */
  redisUrl?: string;
  /** Extra worker env (RESEND_BASE_URL, WORKER_STALLED_INTERVAL_MS, …). */
  fleetEnv?: Record<string, string>;
  /** Extra edge bindings (STRIPE_WEBHOOK_SECRET, …). */
  edgeVars?: Record<string, string>;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const redisUrl = options.redisUrl ?? inject("redisUrl");
  const prefix = uniqueId("e2e");
  const apiKey = `ef_test_${uniqueId("key")}`;
  const fleetEnv: Record<string, string> = {
    REDIS_URL: redisUrl,
    DATABASE_URL: inject("databaseUrl"),
    QUEUE_PREFIX: prefix,
    RESEND_API_KEY: "re_test_x",
    // Short blocking waits so a closing worker returns promptly; latency is unaffected.
    WORKER_DRAIN_DELAY_SECONDS: "1",
    EMAIL_RATE_PER_SECOND: "100",
    SHUTDOWN_TIMEOUT_MS: "5000",
    ...options.fleetEnv,
  };
  let edgeLog = "";
  const [edge, fleet] = await Promise.all([
    startEdge({
      vars: { REDIS_URL: redisUrl, API_KEY_HASHES: await sha256Hex(apiKey), QUEUE_PREFIX: prefix, ...options.edgeVars },
      log: (line) => (edgeLog += line),
    }).catch((err: unknown) => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${edgeLog}`);
    }),
    startFleetProcess(fleetEnv),
  ]);
  const queues = new Map<QueueName, Queue>();

  const request = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const started = performance.now();
    const res = await fetch(`${edge.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json", ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      // Far above the edge's own bounds (connect 2 s + command 3 s): a hang fails the test.
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    const ms = performance.now() - started;
    return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as unknown) : null, ms };
  };

  const stack: Stack = {
    edge,
    fleet,
    redisUrl,
    prefix,
    fleetEnv,
    post: (path, body, headers) => request("POST", path, body, headers),
    get: (path) => request("GET", path),
    queue: (name) => {
      let q = queues.get(name);
      if (!q) {
        q = new Queue(name, { connection: redisOptions(redisUrl), prefix });
        queues.set(name, q);
      }
      return q;
    },
    restartFleet: async (extraEnv = {}) => {
      await stack.fleet.stop("SIGKILL");
      stack.fleet = await startFleetProcess({ ...fleetEnv, ...extraEnv });
      return stack.fleet;
    },
    stop: async () => {
      await Promise.allSettled([stack.fleet.stop(), edge.stop()]);
      await Promise.allSettled([...queues.values()].map((q) => q.close()));
      await deleteKeys(redisUrl, prefix).catch(() => undefined);
    },
  };
  return stack;
}

