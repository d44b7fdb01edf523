import type { Redis } from "ioredis";
import type { QueueName } from "../../shared/jobs/contract.ts";
import type { Log } from "../runner.ts";

/**
 * How the autoscaler learns the processing rate without a Redis command per job (Upstash bills
 * every command): each fleet process counts its completed jobs in memory and, every
 * `flushIntervalMs`, adds them to the hash `<prefix>:autoscaler:completed` (field = queue) — one
 * HINCRBY per queue that completed something since the last flush, none when idle. The
 * autoscaler reads the hash with one HGETALL per poll and turns the growth into jobs/s.
 * The hash only grows; it is tiny (one field per queue) and never expires, like the fleet key.
 */
export function completedKey(prefix: string): string {
  return `${prefix}:autoscaler:completed`;
}

export interface ThroughputCounter {
  completed(queue: QueueName): void;
  /** Writes what was counted since the last flush (nothing when nothing was). */
  flush(): Promise<void>;
  /** Stops the timer and flushes once more, so a replica scaled down loses no count. */
  close(): Promise<void>;
}

export function createThroughputCounter(options: {
  redis: Pick<Redis, "pipeline">;
  prefix: string;
  log: Log;
  /** Default 15 s: the autoscaler's rate window spans several flushes. */
  flushIntervalMs?: number;
}): ThroughputCounter {
  const counts = new Map<QueueName, number>();
  const key = completedKey(options.prefix);
  const flush = async () => {
    if (counts.size === 0) return;
    const batch = [...counts];
    counts.clear();
    const pipeline = options.redis.pipeline();
    for (const [queue, n] of batch) pipeline.hincrby(key, queue, n);
    try {
      const replies = (await pipeline.exec()) ?? [];
      const failed = replies.find(([err]) => err);
      if (failed) throw failed[0];
    } catch (err) {
      // Put the counts back: the next flush retries them, so a Redis blip loses nothing.
      for (const [queue, n] of batch) counts.set(queue, (counts.get(queue) ?? 0) + n);
      options.log("warn", "throughput flush failed", { error: err instanceof Error ? err.message : String(err) });
    }
  };
  const timer = setInterval(() => void flush(), options.flushIntervalMs ?? 15_000);
  timer.unref();
  return {
    completed: (queue) => void counts.set(queue, (counts.get(queue) ?? 0) + 1),
    flush,
    close: async () => {
      clearInterval(timer);
      await flush();
    },
  };
}
