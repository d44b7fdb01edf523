import type { Log, LogRecord } from "./runner.ts";

/**
 * Which completed-job lines reach the log. At a few jobs per second every job gets its line; at
 * thousands per second a line per job costs CPU and log-shipping bills for lines nobody reads (the
 * totals are in the metrics), so above `perSecond` per queue the rest of each second's completions
 * are folded into one summary line per queue per `summaryIntervalMs` (counts and duration
 * percentiles). Never sampled: failures, retries, jobs returned during an outage (the runner logs
 * those directly) and completed jobs slower than `slowMs`.
 */
export interface JobLogSettings {
  /** Completed-job lines per queue per second logged in full; "all" logs every one. */
  perSecond: number | "all";
  /** A completed job at least this slow is always logged (with `slow: true`). */
  slowMs: number;
}

export const DEFAULT_JOB_LOG: JobLogSettings = { perSecond: 10, slowMs: 1_000 };

export interface JobLogOptions extends Partial<JobLogSettings> {
  /** Default 10 s. */
  summaryIntervalMs?: number;
  /** Milliseconds clock; tests pass their own. */
  now?: () => number;
  /** Starts the end-of-interval summary; tests pass a no-op and call `flush()`. Default: an unref'd timer. */
  schedule?: (fn: () => void, ms: number) => void;
}

export interface JobLog {
  /** Logs a completed job's line (`fields` carry queue, jobId, attempt, durationMs) or counts it. */
  completed(queue: string, durationMs: number, fields: LogRecord): void;
  /** Writes the summary of every queue with unlogged completions now (on shutdown). */
  flush(): void;
}

/** Above this many durations per interval, a uniform sample of them (reservoir) feeds the percentiles. */
const MAX_DURATIONS = 20_000;

interface QueueWindow {
  /** Start of the current one-second budget window, and lines logged in it. */
  secondStart: number;
  loggedThisSecond: number;
  /** The summary interval: started at its first completion. */
  intervalStart: number;
  completed: number;
  unlogged: number;
  durations: number[];
  scheduled: boolean;
}

export function createJobLog(log: Log, options: JobLogOptions = {}): JobLog {
  const perSecond = options.perSecond ?? DEFAULT_JOB_LOG.perSecond;
  const slowMs = options.slowMs ?? DEFAULT_JOB_LOG.slowMs;
  const intervalMs = options.summaryIntervalMs ?? 10_000;
  const now = options.now ?? (() => performance.now());
  const schedule =
    options.schedule ?? ((fn: () => void, ms: number) => void setTimeout(fn, ms).unref());
  const windows = new Map<string, QueueWindow>();

  const summarize = (queue: string, w: QueueWindow) => {
    if (w.unlogged > 0) {
      const sorted = w.durations.sort((a, b) => a - b);
      log("info", "jobs completed (summary)", {
        queue,
        intervalMs: Math.round(now() - w.intervalStart),
        completed: w.completed,
        unlogged: w.unlogged,
        p50Ms: quantile(sorted, 0.5),
        p95Ms: quantile(sorted, 0.95),
        p99Ms: quantile(sorted, 0.99),
        maxMs: sorted.at(-1),
      });
    }
    windows.delete(queue);
  };

  return {
    completed(queue, durationMs, fields) {
      if (perSecond === "all") {
        log("info", "job completed", fields);
        return;
      }
      const t = now();
      let w = windows.get(queue);
      // An interval in which every line was logged ends without a summary.
      if (w && !w.scheduled && t - w.intervalStart >= intervalMs) {
        windows.delete(queue);
        w = undefined;
      }
      if (!w) {
        w = { secondStart: t, loggedThisSecond: 0, intervalStart: t, completed: 0, unlogged: 0, durations: [], scheduled: false };
        windows.set(queue, w);
      }
      w.completed++;
      if (w.durations.length < MAX_DURATIONS) w.durations.push(durationMs);
      else {
        const k = Math.floor(Math.random() * w.completed);
        if (k < MAX_DURATIONS) w.durations[k] = durationMs;
      }
      if (t - w.secondStart >= 1_000) {
        w.secondStart = t;
        w.loggedThisSecond = 0;
      }
      if (durationMs >= slowMs) {
        log("info", "job completed", { ...fields, slow: true });
      } else if (w.loggedThisSecond < perSecond) {
        w.loggedThisSecond++;
        log("info", "job completed", fields);
      } else {
        w.unlogged++;
        if (!w.scheduled) {
          w.scheduled = true;
          const window = w;
          schedule(() => {
            if (windows.get(queue) === window) summarize(queue, window);
          }, Math.max(0, intervalMs - (t - w.intervalStart)));
        }
      }
    },
    flush() {
      for (const [queue, w] of [...windows]) summarize(queue, w);
    },
  };
}

/** Nearest-rank quantile of sorted values, rounded to 0.1 ms. */
function quantile(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const v = sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return Math.round(v * 10) / 10;
}
