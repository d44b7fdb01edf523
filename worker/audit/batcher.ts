/**
 * Group commit for concurrently running jobs: each `add()` joins the next batch and settles when
 * that batch's write has committed (or failed — then every job in it fails and BullMQ retries it).
 *
 * A batch is written when `maxBatch` items are waiting, or as soon as no write is in flight. So
 * an idle process writes a lone item at once (no added latency, no timers), and under load the
 * items that arrive during one write ride together in the next: the batch size adapts to the
 * database's round-trip time. A full batch does not wait for the write in flight.
 *
 * With `maxInFlight` above 1, a further write starts while others are in flight once `overlapAt`
 * items wait for it, so a commit's wait (an fsync, a network round trip to the database) no longer
 * holds every later item back; below that count items keep waiting and ride together as before.
 *
 * One bad item must not fail its neighbours: when a multi-item write fails and `isolate(err)` says
 * the error may belong to one item (a value the database refuses, not an outage), the batch is split
 * in halves and each half written again, down to single items — so only the guilty item's job fails,
 * at the cost of about 2·log2(n) extra writes for one poison item in n.
 */

export interface BatcherStats {
  /** Writes started (each one multi-row insert). */
  flushes: number;
  /** Items handed to successful writes. */
  written: number;
  failedFlushes: number;
  largestBatch: number;
  /** Failed multi-item writes that were split to find the failing item(s). */
  splits: number;
}

export interface Batcher<T> {
  add(item: T): Promise<void>;
  readonly stats: Readonly<BatcherStats>;
  /** Resolves when nothing is waiting or in flight. */
  idle(): Promise<void>;
}

interface Waiting<T> {
  item: T;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface BatcherOptions {
  /** True when a failed write should be retried in halves; default: never (fail the whole batch). */
  isolate?: (err: unknown) => boolean;
  /** Writes allowed in flight at once, full batches aside (default 1). */
  maxInFlight?: number | undefined;
  /** Items that must be waiting before a write starts beside one in flight (default and most: maxBatch). */
  overlapAt?: number | undefined;
}

export function createBatcher<T>(
  write: (items: T[]) => Promise<void>,
  maxBatch: number,
  options: BatcherOptions = {},
): Batcher<T> {
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError("maxBatch must be a positive integer");
  const maxInFlight = options.maxInFlight ?? 1;
  const overlapAt = Math.min(options.overlapAt ?? maxBatch, maxBatch);
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new RangeError("maxInFlight must be a positive integer");
  if (!Number.isInteger(overlapAt) || overlapAt < 1) throw new RangeError("overlapAt must be a positive integer");
  let waiting: Waiting<T>[] = [];
  let inFlight = 0;
  let scheduled = false;
  let idleWaiters: Array<() => void> = [];
  const stats: BatcherStats = { flushes: 0, written: 0, failedFlushes: 0, largestBatch: 0, splits: 0 };
  const isolate = options.isolate ?? (() => false);

  /** Writes a batch, settling each item; never rejects. */
  const settle = async (batch: Waiting<T>[]): Promise<void> => {
    try {
      // write() may throw synchronously; the async function turns that into a rejection.
      await write(batch.map((w) => w.item));
      stats.written += batch.length;
      for (const w of batch) w.resolve();
    } catch (err) {
      stats.failedFlushes++;
      if (batch.length > 1 && isolate(err)) {
        stats.splits++;
        const half = Math.ceil(batch.length / 2);
        await settle(batch.slice(0, half));
        await settle(batch.slice(half));
        return;
      }
      for (const w of batch) w.reject(err);
    }
  };

  /** Whether the waiting items should be written now rather than join a later batch. */
  const due = () => inFlight === 0 || (inFlight < maxInFlight && waiting.length >= overlapAt);

  const flush = () => {
    const batch = waiting.splice(0, maxBatch);
    if (batch.length === 0) return;
    inFlight++;
    stats.flushes++;
    stats.largestBatch = Math.max(stats.largestBatch, batch.length);
    void settle(batch).finally(() => {
      inFlight--;
      if (waiting.length > 0 && due()) flush();
      if (waiting.length === 0 && inFlight === 0) {
        const done = idleWaiters;
        idleWaiters = [];
        for (const d of done) d();
      }
    });
  };

  return {
    stats,
    add(item) {
      return new Promise<void>((resolve, reject) => {
        waiting.push({ item, resolve, reject });
        if (waiting.length >= maxBatch) {
          flush();
        } else if (!scheduled && due()) {
          // A microtask, not a timer: items added in the same tick still share the first write.
          scheduled = true;
          queueMicrotask(() => {
            scheduled = false;
            if (waiting.length > 0 && due()) flush();
          });
        }
      });
    },
    idle() {
      if (waiting.length === 0 && inFlight === 0) return Promise.resolve();
      return new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
  };
}
