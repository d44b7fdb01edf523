import type { Redis } from "ioredis";
import type { QueueName } from "../../shared/jobs/contract.ts";
import { completedKey } from "./throughput.ts";

/**
 * One poll of a target's queues: ONE pipeline (one round trip) of plain commands, so the count is
 * exact and the same on Upstash (which bills commands inside scripts too):
 *   per queue  LLEN wait · ZCARD prioritized · ZCOUNT delayed (due) · LLEN active ·
 *              ZRANGEBYSCORE delayed (not yet due) LIMIT 0 1
 *   once       HMGET <prefix>:autoscaler:completed <queues…>   (the fleet's completed counters)
 * = 5 × queues + 1 commands.
 *
 * BullMQ 6.7.0 scores a delayed job `timestamp * 0x1000 + counter` (commands/includes/
 * getDelayedScore.lua; promoteDelayedJobs.lua moves scores up to `(now + 1) * 0x1000 - 1`), so
 * "due" is the score range [0, (now + 1) * 0x1000 - 1] and the earliest later job's due time is
 * floor(score / 0x1000). Jobs of a paused queue (the `paused` list) are left out: no replica would
 * take them.
 */

export interface QueueSnapshot {
  waiting: number;
  prioritized: number;
  dueDelayed: number;
  active: number;
  /** ms since the epoch when the queue's earliest not-yet-due delayed job becomes due. */
  nextDelayedAt?: number;
  /** The fleet's completed-jobs counter for the queue (only grows). */
  completed: number;
}

export interface Snapshot {
  at: number;
  /** waiting + prioritized + due delayed, over the target's queues. */
  backlog: number;
  active: number;
  nextDelayedAt?: number;
  completed: number;
  queues: Partial<Record<QueueName, QueueSnapshot>>;
}

export function commandsPerPoll(queueCount: number): number {
  return 5 * queueCount + 1;
}

export async function readSnapshot(redis: Pick<Redis, "pipeline">, prefix: string, queues: readonly QueueName[], now: number): Promise<Snapshot> {
  const dueMax = (now + 1) * 0x1000 - 1;
  const p = redis.pipeline();
  for (const q of queues) {
    const k = (name: string) => `${prefix}:${q}:${name}`;
    p.llen(k("wait"));
    p.zcard(k("prioritized"));
    p.zcount(k("delayed"), 0, dueMax);
    p.llen(k("active"));
    p.zrangebyscore(k("delayed"), dueMax + 1, "+inf", "WITHSCORES", "LIMIT", 0, 1);
  }
  p.hmget(completedKey(prefix), ...queues);
  const replies = (await p.exec()) ?? [];
  const values = replies.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
  const counters = (values.at(-1) ?? []) as Array<string | null>;
  const snapshot: Snapshot = { at: now, backlog: 0, active: 0, completed: 0, queues: {} };
  queues.forEach((queue, i) => {
    const [waiting, prioritized, dueDelayed, active, next] = values.slice(i * 5, i * 5 + 5) as [number, number, number, number, string[]];
    const nextScore = next[1];
    const q: QueueSnapshot = {
      waiting,
      prioritized,
      dueDelayed,
      active,
      completed: Number(counters[i] ?? 0),
      ...(nextScore !== undefined ? { nextDelayedAt: Math.floor(Number(nextScore) / 0x1000) } : {}),
    };
    snapshot.queues[queue] = q;
    snapshot.backlog += waiting + prioritized + dueDelayed;
    snapshot.active += active;
    snapshot.completed += q.completed;
    if (q.nextDelayedAt !== undefined && (snapshot.nextDelayedAt === undefined || q.nextDelayedAt < snapshot.nextDelayedAt)) {
      snapshot.nextDelayedAt = q.nextDelayedAt;
    }
  });
  return snapshot;
}

/**
 * Processing and arrival rates from successive snapshots: completed/s is the counters' growth over
 * the window, arrivals/s that plus the backlog's growth (what came in = what was done + what piled
 * up). The fleet flushes its counters every ~15 s, so a window shorter than ~30 s reads lumpy:
 * rates stay unknown until the samples span `windowMs`.
 */
export function createRateTracker(windowMs = 60_000) {
  const samples: Array<{ at: number; completed: number; backlog: number }> = [];
  return {
    add(s: Pick<Snapshot, "at" | "completed" | "backlog">): { completedPerSecond?: number; arrivalPerSecond?: number } {
      samples.push({ at: s.at, completed: s.completed, backlog: s.backlog });
      // Keep the newest sample at least windowMs old, drop anything older than it.
      while (samples.length > 2 && s.at - samples[1]!.at >= windowMs) samples.shift();
      const first = samples[0]!;
      const seconds = (s.at - first.at) / 1000;
      if (seconds * 1000 < windowMs || seconds <= 0) return {};
      // A counter that went backwards (hash deleted) restarts the window.
      if (s.completed < first.completed) {
        samples.splice(0, samples.length - 1);
        return {};
      }
      const completedPerSecond = (s.completed - first.completed) / seconds;
      const arrivalPerSecond = Math.max(0, completedPerSecond + (s.backlog - first.backlog) / seconds);
      return { completedPerSecond, arrivalPerSecond };
    },
    /** After a gap (asleep at zero) old samples say nothing about now. */
    reset: () => void samples.splice(0),
  };
}
