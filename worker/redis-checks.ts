// Start-up checks of the Redis the fleet runs against, and the reconnect schedule for its
// connections. Kept apart from fleet.ts so they can be tested without starting workers.
import type { Redis } from "ioredis";
import type { Log } from "./runner.ts";

/** First reconnect delay and the cap, in ms. */
export const RECONNECT_BASE_MS = 200;
export const RECONNECT_MAX_MS = 10_000;

/**
 * ioredis `retryStrategy`: capped exponential backoff with "equal jitter" (half fixed, half
 * random). After a hosted Redis fails over, every replica's connections drop at the same moment;
 * the jitter spreads their reconnects (each one AUTH + HELLO/CLIENT SETNAME + INFO, all billed on
 * Upstash) instead of hammering the new primary in lockstep. Never gives up (returns a number,
 * never null): a worker without Redis can do nothing else, and readiness reports the outage.
 * `attempt` is ioredis' 1-based retry count.
 */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const exponential = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.max(0, attempt - 1));
  return Math.round(exponential / 2 + (exponential / 2) * random());
}

/**
 * Warns (one log line) unless Redis evicts nothing. A queue under any other `maxmemory-policy`
 * silently loses job hashes, locks and markers when memory runs short. Upstash and several hosted
 * Redis services disable CONFIG: that is not a failure, only a check that cannot run, so it is
 * logged at info and start-up goes on. Returns the policy, or undefined when it could not be read.
 */
export async function checkEvictionPolicy(redis: Redis, log: Log): Promise<string | undefined> {
  let reply: unknown;
  try {
    reply = await redis.config("GET", "maxmemory-policy");
  } catch (err) {
    log("info", "redis maxmemory-policy not checked: CONFIG GET refused", {
      error: err instanceof Error ? err.message : String(err),
    });
    return undefined;
  }
  // RESP2 reply: ["maxmemory-policy", "<value>"].
  const policy = Array.isArray(reply) && typeof reply[1] === "string" ? reply[1] : undefined;
  if (policy === undefined) {
    log("info", "redis maxmemory-policy not checked: unexpected CONFIG GET reply", { reply: JSON.stringify(reply) });
    return undefined;
  }
  if (policy !== "noeviction") {
    log("warn", "redis maxmemory-policy is not noeviction: queue keys can be evicted under memory pressure", {
      policy,
      fix: "CONFIG SET maxmemory-policy noeviction (or the provider's eviction setting)",
    });
  }
  return policy;
}
