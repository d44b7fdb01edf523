/**
 * The wake call: after the edge's enqueue was confirmed by Redis, it tells the autoscaler which
 * queues just received work, so a fleet scaled to zero replicas starts (worker/autoscaler, POST
 * /wake with `Authorization: Bearer <AUTOSCALER_WAKE_TOKEN>` and `{"queues": [...]}`).
 *
 * The call never touches the caller's answer: the response is already decided (202) when it is
 * made, it runs in `waitUntil` (or floats on Node), it is bounded by a timeout, and every failure
 * is swallowed. Jobs never depend on it: a missed wake only delays them until the autoscaler's
 * own safety poll sees the backlog. It adds no Redis command.
 */

/** Where and how to wake the autoscaler (edge/env.ts: AUTOSCALER_WAKE_URL + AUTOSCALER_WAKE_TOKEN). */
export interface WakeTarget {
  url: string;
  token: string;
}

export interface WakeOptions {
  /** At most one wake per queue per this many ms, per isolate (process on Node). Default 5 s. */
  throttleMs?: number;
  /** The wake request gives up after this many ms. Default 2 s (Workers allow 30 s of waitUntil). */
  timeoutMs?: number;
}

/** Sends the wake for queues not woken within the throttle window; undefined when none is due. */
export type Wake = (queues: readonly string[]) => Promise<void> | undefined;

/**
 * Per isolate, like the app itself (edge/worker.ts caches one per isolate): when each queue was
 * last woken, keyed by target URL and queue. Isolates don't share it, so N isolates send at most
 * N wakes per queue per window — cheap for the autoscaler, and never a Redis command.
 */
const lastWake = new Map<string, number>();
/** Queue names come from contracts, so this stays small; the bound is against surprises. */
const MAX_TRACKED = 1_000;

export function createWake(target: WakeTarget, options: WakeOptions = {}): Wake {
  const throttleMs = options.throttleMs ?? 5_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  return (queues) => {
    const now = Date.now();
    // On the request path: one map lookup per queue while throttled, nothing else allocated.
    let due: string[] | undefined;
    let previous: string | undefined;
    for (const queue of queues) {
      // A batch names its queue once per job: look each run of the same queue up once.
      if (queue === previous || due?.includes(queue)) continue;
      previous = queue;
      const key = `${target.url} ${queue}`;
      if (now - (lastWake.get(key) ?? -Infinity) < throttleMs) continue;
      if (lastWake.size >= MAX_TRACKED) lastWake.clear();
      // Counted when sent, not when answered: an autoscaler that is down or slow gets one call per
      // window, not one per request.
      lastWake.set(key, now);
      (due ??= []).push(queue);
    }
    if (!due) return undefined;
    return fetch(target.url, {
      method: "POST",
      headers: { authorization: `Bearer ${target.token}`, "content-type": "application/json" },
      body: JSON.stringify({ queues: due }),
      signal: AbortSignal.timeout(timeoutMs),
    }).then(
      async (response) => {
        // Read the body so the connection can be reused; its content does not matter here.
        await response.arrayBuffer().catch(() => {});
        if (!response.ok) warn(due, `status ${response.status}`);
      },
      (err: unknown) => warn(due, err instanceof Error ? err.name : "error"),
    );
  };
}

/** One JSON line per failed wake (at most one per queue per window); never the token or a body. */
function warn(queues: readonly string[], reason: string): void {
  console.warn(JSON.stringify({ level: "warn", msg: "autoscaler wake failed", queues, reason }));
}
