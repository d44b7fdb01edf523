/**
 * The Worker's side of REDIS_TRANSPORT=durable-object: each pipeline is one RPC call to a
 * RedisConnection object (redis-connection-object.ts), which writes it on the connection it holds
 * to Redis. Per enqueue that is one hop to the object plus one round trip to Redis, instead of
 * TCP + TLS + AUTH/EVALSHA on a fresh socket.
 *
 * Sharding: `shards` objects named `redis-0` … `redis-<n-1>`; a request picks one at random, so
 * load spreads evenly and each object keeps its own connection. `locationHint` asks Cloudflare to
 * create the objects near Redis (it applies when an object is first created).
 *
 * Failures: a reply that never comes back (the RPC call failed, or missed its deadline) is
 * "maybe enqueued", like a socket lost after writing; the object itself reports whether its
 * commands reached Redis.
 */
import type { RedisCommand } from "./resp.ts";
import { TransportError, type RedisTransport } from "./transport.ts";
import { fromWire, type WireResult } from "./wire-replies.ts";

/** The RPC surface of RedisConnection as a stub exposes it (its full stub type is too deep for tsc). */
interface RedisConnectionStub {
  pipeline(commands: RedisCommand[]): Promise<WireResult>;
}

export interface DurableObjectTransportOptions {
  shards: number;
  locationHint?: DurableObjectLocationHint | undefined;
  /** Bound on one RPC call: the object's connect + command budgets plus a margin. */
  timeoutMs: number;
  /** Pins the shard (tests); default random. */
  shard?: number;
}

export function createDurableObjectTransport(
  namespace: DurableObjectNamespace,
  options: DurableObjectTransportOptions,
): RedisTransport {
  const shard = options.shard ?? Math.floor(Math.random() * options.shards);
  const id = namespace.idFromName(`redis-${shard}`);
  const stub = namespace.get(id, options.locationHint ? { locationHint: options.locationHint } : {}) as unknown as RedisConnectionStub;
  return {
    async pipeline(commands) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
      });
      let result: WireResult;
      try {
        result = await Promise.race([stub.pipeline([...commands]), timeout]);
      } catch (err) {
        throw new TransportError(`Redis connection object failed: ${err instanceof Error ? err.message : String(err)}`, true, { cause: err });
      } finally {
        clearTimeout(timer);
      }
      if (!result.ok) throw new TransportError(result.message, result.maybeEnqueued);
      return fromWire(result.replies);
    },
    // The connection belongs to the object and outlives this request.
    close: async () => {},
  };
}
