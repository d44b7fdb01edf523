/**
 * The seam between the producer and a way of reaching Redis, and the one place that knows how to
 * run a Lua script (EVALSHA, then EVAL on NOSCRIPT).
 *
 * Implementations: RESP over `cloudflare:sockets` (socket-transport.ts), Upstash REST over fetch,
 * and a `node:net` one for Node-side tests. A transport object lives for one Worker request.
 */
import type { LuaScript } from "../../shared/jobs/bullmq-scripts.ts";
import { RespError, type RedisArg, type RedisCommand, type Reply } from "./resp.ts";

export interface RedisTransport {
  /**
   * Sends all commands in one round trip and returns one reply per command, in order. Error
   * replies come back as `RespError` values; only transport failures reject (`TransportError`).
   */
  pipeline(commands: readonly RedisCommand[]): Promise<Reply[]>;
  /** Releases the connection; callers run it in `ctx.waitUntil` so it never delays a response. */
  close(): Promise<void>;
  /**
   * Lets a transport substitute the script it actually runs, e.g. Upstash REST wraps BullMQ's
   * script with a base64 decoder for the binary arguments. Default: the script unchanged.
   */
  scriptFor?(script: LuaScript): LuaScript;
}

/**
 * Redis could not be reached or stopped answering. `maybeEnqueued` is true once any command
 * bytes were written: Redis may have executed them, so the caller must treat the outcome as
 * unknown and retry with the same jobId (a duplicate add is harmless). False means nothing was
 * sent and a retry cannot double-enqueue.
 */
export class TransportError extends Error {
  readonly maybeEnqueued: boolean;
  constructor(message: string, maybeEnqueued: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TransportError";
    this.maybeEnqueued = maybeEnqueued;
  }
}

/**
 * The first round trip of a pipeline was answered, a later one (the NOSCRIPT fallback) failed in
 * transit. `replies` holds what is known: the first round's replies, and `undefined` for each
 * item whose retry went unanswered.
 */
export class PipelineInterrupted extends TransportError {
  readonly replies: Array<Reply | undefined>;
  constructor(cause: TransportError, replies: Array<Reply | undefined>) {
    super(cause.message, cause.maybeEnqueued, { cause });
    this.name = "PipelineInterrupted";
    this.replies = replies;
  }
}

/** Redis answered a command with an error reply (bad password, script runtime error, OOM …). */
export class RedisReplyError extends Error {
  readonly code: string;
  constructor(reply: RespError, context: string) {
    super(`${context}: ${reply.message}`);
    this.name = "RedisReplyError";
    this.code = reply.code;
  }
}

/** One script invocation: KEYS then ARGV, as BullMQ would pass them. */
export interface ScriptCall {
  readonly script: LuaScript;
  readonly keys: readonly string[];
  readonly args: readonly RedisArg[];
}

export type PipelineItem = RedisCommand | ScriptCall;

function isScriptCall(item: PipelineItem): item is ScriptCall {
  return !Array.isArray(item);
}

async function evalCommand(call: ScriptCall, script: LuaScript, full: boolean): Promise<RedisCommand> {
  const head = full ? ["EVAL", script.content] : ["EVALSHA", await script.sha1()];
  return [...head, String(call.keys.length), ...call.keys, ...call.args];
}

/**
 * Runs plain commands and script calls in one pipeline. Scripts go out as EVALSHA (≈0.4 KB
 * instead of the 26 KB body); any that come back NOSCRIPT (cold or flushed Redis) are re-sent in
 * a second round trip, for just those items: one EVAL per distinct script, which also loads it,
 * and EVALSHA for the other items of that script behind it in the same pipeline (Redis runs a
 * pipeline in order). NOSCRIPT means the script did not run, so re-sending cannot add twice.
 */
export async function runPipeline(transport: RedisTransport, items: readonly PipelineItem[]): Promise<Reply[]> {
  const resolve = (call: ScriptCall) => transport.scriptFor?.(call.script) ?? call.script;
  const first = await Promise.all(
    items.map((item) => (isScriptCall(item) ? evalCommand(item, resolve(item), false) : item)),
  );
  const replies = await transport.pipeline(first);

  const missing = (indexes: readonly number[]) =>
    indexes.filter((i) => {
      const reply = replies[i];
      return isScriptCall(items[i] as PipelineItem) && reply instanceof RespError && reply.code === "NOSCRIPT";
    });
  // Round 2: the first item of each script carries its body. Round 3 (should a body fail to
  // load and its followers miss again) sends every remaining item with its body.
  let retry = missing(items.map((_, i) => i));
  for (const firstOnly of [true, false]) {
    if (retry.length === 0) return replies;
    const loaded = new Set<string>();
    const commands = await Promise.all(
      retry.map((i) => {
        const call = items[i] as ScriptCall;
        const script = resolve(call);
        const full = !firstOnly || !loaded.has(script.content);
        loaded.add(script.content);
        return evalCommand(call, script, full);
      }),
    );
    let retried: Reply[];
    try {
      retried = await transport.pipeline(commands);
    } catch (err) {
      if (!(err instanceof TransportError)) throw err;
      const known: Array<Reply | undefined> = [...replies];
      for (const index of retry) known[index] = undefined;
      throw new PipelineInterrupted(err, known);
    }
    retry.forEach((index, j) => {
      replies[index] = retried[j] ?? null;
    });
    retry = missing(retry);
  }
  return replies;
}
