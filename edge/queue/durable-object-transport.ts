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
 * The call carries the pipeline RESP-encoded, one Uint8Array, and the object answers with the
 * replies' bytes: encoding and decoding happen here, in the Worker, so the object (one per shard,
 * serving every request of it in turn) does little more than pass bytes along, and the RPC clones
 * one buffer each way instead of a tree of strings.
 *
 * Failures: a reply that never comes back (the RPC call failed, or missed its deadline) is
 * "maybe enqueued", like a socket lost after writing; the object itself reports whether its
 * commands reached Redis.
 */
import type { SendFailure } from "./redis-connection-object.ts";
import { encodeCommands } from "./resp.ts";
import { decodeReplies } from "./resp-scanner.ts";
import { TransportError, type RedisTransport } from "./transport.ts";

/** The RPC surface of RedisConnection as a stub exposes it (its full stub type is too deep for tsc). */
interface RedisConnectionStub {
  send(request: Uint8Array, count: number): Promise<Uint8Array | SendFailure>;
}

export interface DurableObjectTransportOptions {
  shards: number;
  locationHint?: DurableObjectLocationHint | undefined;
  /** Bound on one RPC call: the object's connect + command budgets plus a margin. */
  timeoutMs: number;
  /** Pins the shard (tests); default random. */
  shard?: number;
}

/**
 * The objects' ids by shard, per namespace: idFromName hashes the name on every call, and an id is a
 * plain value that outlives the request. A stub is not (it belongs to the request that made it).
 */
const ids = new WeakMap<DurableObjectNamespace, DurableObjectId[]>();

function shardId(namespace: DurableObjectNamespace, shard: number): DurableObjectId {
  let known = ids.get(namespace);
  if (!known) ids.set(namespace, (known = []));
  return (known[shard] ??= namespace.idFromName(`redis-${shard}`));
}

export function createDurableObjectTransport(
  namespace: DurableObjectNamespace,
  options: DurableObjectTransportOptions,
): RedisTransport {
  const shard = options.shard ?? Math.floor(Math.random() * options.shards);
  const id = shardId(namespace, shard);
  const stub = namespace.get(id, options.locationHint ? { locationHint: options.locationHint } : {}) as unknown as RedisConnectionStub;
  return {
    async pipeline(commands) {
      if (commands.length === 0) return [];
      const request = encodeCommands(commands);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
      });
      let result: Uint8Array | SendFailure;
      try {
        result = await Promise.race([stub.send(request, commands.length), timeout]);
      } catch (err) {
        throw new TransportError(`Redis connection object failed: ${err instanceof Error ? err.message : String(err)}`, true, { cause: err });
      } finally {
        clearTimeout(timer);
      }
      if (!(result instanceof Uint8Array)) throw new TransportError(result.message, result.maybeEnqueued);
      return decodeReplies(result, commands.length);
    },
    // The connection belongs to the object and outlives this request.
    close: async () => {},
  };
}
