// Closed-loop load: a fixed number of lanes, each sending its next request as soon as the last
// one answered, until `count` requests are done or the deadline passes. Used for HTTP targets
// (node:http with keep-alive, one socket per lane) and for in-process calls (BullMQ Queue.add).
import { Agent, request } from "node:http";

export interface LoopOptions {
  concurrency: number;
  count: number;
  /** Wall-clock bound for the whole loop; lanes stop taking new items after it. */
  deadlineMs: number;
}

export interface LoopResult {
  ok: number;
  errors: number;
  firstError?: string;
  wallMs: number;
  /** Successful calls per second of wall time. */
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Every successful call's latency, ascending, for percentiles pooled across loops. */
  samplesMs: number[];
}

export async function closedLoop(options: LoopOptions, task: (i: number) => Promise<void>): Promise<LoopResult> {
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const stopAt = started + options.deadlineMs;
  const lane = async () => {
    while (next < options.count && performance.now() < stopAt) {
      const i = next++;
      const t0 = performance.now();
      try {
        await task(i);
        latencies.push(performance.now() - t0);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, lane));
  const wallMs = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return {
    ok: latencies.length,
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
    wallMs,
    perSecond: (latencies.length / wallMs) * 1000,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    samplesMs: latencies,
  };
}

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN;
}

/** Middle value; the mean of the two middle ones for an even count. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export interface HttpTarget {
  url: string;
  headers: Record<string, string>;
  expectStatus: number;
  timeoutMs: number;
}

/**
 * A keep-alive HTTP client for one target. `maxSockets` = the loop's concurrency, so each lane
 * holds one connection; `newConnections` shows whether keep-alive held (it should stay at the
 * lane count unless the server closed idle sockets).
 */
export function httpClient(target: HttpTarget, concurrency: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  const url = new URL(target.url);
  const seen = new WeakSet<object>();
  let newConnections = 0;

  /** POSTs a JSON body; resolves on the expected status, rejects on anything else. */
  const sendBody = (body: string) =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: "POST",
          headers: { ...target.headers, "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => {
            if (res.statusCode === target.expectStatus) return resolve();
            reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 300)}`));
          });
        },
      );
      req.setTimeout(target.timeoutMs, () => req.destroy(new Error(`no answer within ${target.timeoutMs} ms`)));
      req.on("socket", (socket) => {
        if (!seen.has(socket)) {
          seen.add(socket);
          newConnections++;
        }
      });
      req.on("error", reject);
      req.end(body);
    });

  return {
    sendBody,
    /** Connections opened since the last call. */
    takeNewConnections(): number {
      const n = newConnections;
      newConnections = 0;
      return n;
    },
    close: () => agent.destroy(),
  };
}
