/**
 * Rate limiting inside the enqueue's own round trip.
 *
 * A request's pipeline starts with the limiter (a short script sent as EVAL with its body, so it
 * can never come back NOSCRIPT and be skipped). It counts the request in a fixed window and, when
 * the count passes the limit, sets a denial marker named after this request. Every script that
 * writes (BullMQ's add and remove scripts) then runs behind a one-line prelude that looks for that
 * marker and refuses before BullMQ's body starts: a request over its limit writes nothing, and
 * BullMQ's script runs byte for byte after the prelude with its KEYS/ARGV at their usual indexes.
 * The marker is the last KEYS entry, appended after BullMQ's (its scripts never read `#KEYS`).
 *
 * Redis runs one connection's pipeline in order (and Upstash's /pipeline too), so the limiter has
 * always answered before the first write looks for its marker; other clients' commands may run in
 * between, but the marker is this request's alone.
 */
import { defineScript, type LuaScript } from "../../shared/jobs/bullmq-scripts.ts";
import type { RedisCommand, Reply } from "./resp.ts";
import type { ScriptCall } from "./transport.ts";

export interface LimitCheck {
  /** Counter name below `<prefix>:edgefleet:rl:`: route, caller and window index. */
  readonly key: string;
  /** Unique per request: names the denial marker. */
  readonly nonce: string;
  /** Requests allowed per window. */
  readonly limit: number;
  /** Counter lifetime in ms (the window plus slack for clock skew between isolates). */
  readonly ttlMs: number;
  /** Written by the producer: this window's count including this request, once Redis answered. */
  count?: number;
}

/** How long a denial marker lives: far longer than any pipeline, short enough to cost nothing. */
const MARKER_TTL_MS = 60_000;

/** The limiter's error reply code, as the prelude returns it. */
export const RATE_LIMITED_CODE = "RATE_LIMITED";

// KEYS[1] the caller's counter for this route and window, KEYS[2] this request's denial marker.
// ARGV[1] limit, ARGV[2] counter lifetime (ms), ARGV[3] marker lifetime (ms). Returns the count.
// Refused requests are counted too: in a fixed window that only delays nothing (the window ends
// at a fixed time), and it keeps the script to INCR (+ PEXPIRE once per window).
const LIMITER_LUA = `local count = redis.call("INCR", KEYS[1])
if count == 1 then redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then redis.call("SET", KEYS[2], "1", "PX", ARGV[3]) end
return count
`;

const PRELUDE = `-- edgefleet: the last KEYS entry is this request's rate-limit denial marker (set by the limiter
-- earlier in the same pipeline); present = over the limit, so refuse before the script below writes.
if redis.call("EXISTS", KEYS[#KEYS]) == 1 then return redis.error_reply("${RATE_LIMITED_CODE}") end
`;

export function counterKey(prefix: string, check: LimitCheck): string {
  return `${prefix}:edgefleet:rl:${check.key}`;
}

export function markerKey(prefix: string, check: LimitCheck): string {
  return `${prefix}:edgefleet:rl-deny:${check.nonce}`;
}

/** The pipeline's first command: count this request, mark it denied when over the limit. */
export function limiterCommand(prefix: string, check: LimitCheck): RedisCommand {
  return ["EVAL", LIMITER_LUA, "2", counterKey(prefix, check), markerKey(prefix, check), String(check.limit), String(check.ttlMs), String(MARKER_TTL_MS)];
}

/** Stores the limiter's reply on the check; an error reply leaves the count unknown. */
export function readCount(check: LimitCheck, reply: Reply | undefined): void {
  if (typeof reply === "number") check.count = reply;
}

export function isOver(check: LimitCheck | undefined): boolean {
  return check?.count !== undefined && check.count > check.limit;
}

const guardedScripts = new Map<LuaScript, LuaScript>();

/**
 * The same call behind the prelude. The script keeps BullMQ's name, so the Upstash transport still
 * wraps it with its base64 decoder (upstash-args.ts) by name; the decoder then runs first.
 */
export function guarded(prefix: string, call: ScriptCall, check: LimitCheck): ScriptCall {
  return { script: guardedScript(call.script), keys: [...call.keys, markerKey(prefix, check)], args: call.args };
}

/** `script` behind the prelude (memoised, so its SHA-1 is computed once per isolate). */
export function guardedScript(base: LuaScript): LuaScript {
  let script = guardedScripts.get(base);
  if (!script) {
    script = defineScript({ name: base.name, content: PRELUDE + base.content, keys: base.keys + 1 });
    guardedScripts.set(base, script);
  }
  return script;
}
