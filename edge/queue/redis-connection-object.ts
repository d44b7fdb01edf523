/**
 * The RedisConnection Durable Object: holds one TLS connection to Redis across the requests it
 * serves (held-connection.ts) and group-commits their pipelines. Workers reach it over RPC
 * through durable-object-transport.ts; it reads REDIS_URL and the timeouts from its own bindings
 * (the Worker's), so no secret ever crosses the RPC boundary.
 *
 * The RPC is `send`: the Worker encodes its pipeline and decodes the replies, so one object, which
 * serves every request of its shard in turn, only passes bytes along. `pipeline` (commands in,
 * replies as values out) is what Workers of the previous version call; it stays for as long as
 * those can still run next to this object (a deployment in progress).
 *
 * It stores nothing: its only state is the socket. Cloudflare keeps the object in memory while
 * the socket is open (up to 15 minutes per connection, hence the held connection's max age) and
 * bills that as duration; an evicted object simply reconnects on its next request.
 */
import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import { createHeldConnection, type HeldConnection, type HeldConnectionStats } from "./held-connection.ts";
import type { RedisCommand } from "./resp.ts";
import { toWire, type WireResult } from "./wire-replies.ts";
import { TransportError } from "./transport.ts";

/** What `send` answers instead of replies when the pipeline may not have run (RPC loses classes). */
export interface SendFailure {
  message: string;
  maybeEnqueued: boolean;
}

/** Shown by CLIENT LIST, so an operator can tell the edge's held connections apart. */
export const CLIENT_NAME = "edgefleet-edge-do";

/** The bindings the object reads: a subset of the edge's (edge/env.ts), with the same defaults. */
const ConnectionEnv = z.object({
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: "must be a redis:// or rediss:// URL (REDIS_TRANSPORT=durable-object)" }),
  REDIS_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(2000),
  REDIS_COMMAND_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(3000),
});

export class RedisConnection extends DurableObject<Record<string, unknown>> {
  readonly #redis: HeldConnection;

  constructor(ctx: DurableObjectState, env: Record<string, unknown>) {
    super(ctx, env);
    const result = ConnectionEnv.safeParse(env);
    // Names only, never values (REDIS_URL holds the password).
    if (!result.success) throw new Error(`RedisConnection: ${result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    const parsed = result.data;
    this.#redis = createHeldConnection(parsed.REDIS_URL, {
      connectTimeoutMs: parsed.REDIS_CONNECT_TIMEOUT_MS,
      commandTimeoutMs: parsed.REDIS_COMMAND_TIMEOUT_MS,
      clientName: CLIENT_NAME,
    });
  }

  /**
   * One pipeline of `count` commands, RESP-encoded by the caller; answered with its `count`
   * replies as Redis sent them, or a SendFailure.
   */
  send(request: Uint8Array, count: number): Promise<Uint8Array | SendFailure> {
    if (!(request instanceof Uint8Array) || !Number.isInteger(count) || count < 0) {
      // A wrong count would shift every later reply on the connection to the wrong caller.
      return Promise.reject(new TypeError("RedisConnection.send(request: Uint8Array, count: integer ≥ 0)"));
    }
    return this.#redis.send(request, count).catch(failure);
  }

  /** The previous RPC (see the top): one pipeline, its replies as values. */
  async pipeline(commands: RedisCommand[]): Promise<WireResult> {
    try {
      return { ok: true, replies: toWire(await this.#redis.pipeline(commands)) };
    } catch (err) {
      if (err instanceof TransportError) return { ok: false, message: err.message, maybeEnqueued: err.maybeEnqueued };
      throw err;
    }
  }

  stats(): HeldConnectionStats {
    return this.#redis.stats();
  }
}

function failure(err: unknown): SendFailure {
  if (err instanceof TransportError) return { message: err.message, maybeEnqueued: err.maybeEnqueued };
  throw err;
}
