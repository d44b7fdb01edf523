/**
 * Helpers for the conformance test: a prefix-independent snapshot of everything a queue wrote to
 * Redis, and byte views of command arguments as ioredis and the edge hold them.
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";

/** Unique per test so parallel tests and reruns never share keys. No ':' (it is BullMQ's separator). */
export function uniquePrefix(tag: string): string {
  return `t${tag}${randomUUID().slice(0, 8)}`;
}

/** Strings, Buffers, numbers (ioredis numKeys) and Uint8Arrays → comparable byte arrays. */
export function toBytes(value: unknown): number[] {
  if (value instanceof Uint8Array) return [...value];
  if (typeof value === "string" || typeof value === "number") return [...Buffer.from(String(value))];
  throw new Error(`unexpected argument type: ${typeof value}`);
}

export interface KeySnapshot {
  type: string;
  value: unknown;
  /** Only whether a TTL is set: absolute TTLs drift between the two adds. */
  expires: boolean;
}

/**
 * Every key under `prefix:` with its type, value and TTL presence; the prefix is replaced by
 * `<p>` in key names and values so two queues under different prefixes compare equal.
 * Stream entry ids are server time, so only the entries' fields are kept. `ignore` lists hash
 * fields to drop per key suffix (e.g. `{ meta: ["version"] }`).
 */
export async function snapshotRedis(
  client: Redis,
  prefix: string,
  ignore: Record<string, string[]> = {},
): Promise<Record<string, KeySnapshot>> {
  const norm = (s: string) => s.split(`${prefix}:`).join("<p>:");
  const keys = (await client.keys(`${prefix}:*`)).sort();
  const out: Record<string, KeySnapshot> = {};
  for (const key of keys) {
    const type = await client.type(key);
    let value: unknown;
    if (type === "string") value = norm((await client.get(key)) ?? "");
    else if (type === "list") value = (await client.lrange(key, 0, -1)).map(norm);
    else if (type === "set") value = (await client.smembers(key)).map(norm).sort();
    else if (type === "zset") value = (await client.zrange(key, "0", "-1", "WITHSCORES")).map(norm);
    else if (type === "hash") {
      const hash = await client.hgetall(key);
      const suffix = key.slice(key.lastIndexOf(":") + 1);
      for (const field of ignore[suffix] ?? []) delete hash[field];
      value = Object.fromEntries(Object.entries(hash).map(([f, v]) => [f, norm(v)]).sort());
    } else if (type === "stream") {
      value = (await client.xrange(key, "-", "+")).map(([, fields]) => fields.map(norm));
    } else throw new Error(`unhandled type ${type} for ${key}`);
    out[norm(key)] = { type, value, expires: (await client.pttl(key)) > 0 };
  }
  return out;
}
