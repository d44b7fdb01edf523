/**
 * Replies as they cross the RPC boundary between a Worker and the RedisConnection Durable Object.
 * Structured clone keeps strings, numbers, null, arrays and Uint8Array but not classes, so an
 * error reply travels as `{ error }` and a transport failure as a result value.
 */
import { RespError, type Reply } from "./resp.ts";

export type WireReply = string | number | null | { error: string } | WireReply[];

export type WireResult =
  | { ok: true; replies: WireReply[] }
  | { ok: false; message: string; maybeEnqueued: boolean };

export function toWire(replies: readonly Reply[]): WireReply[] {
  return replies.map((reply): WireReply => {
    if (reply instanceof RespError) return { error: reply.message };
    return Array.isArray(reply) ? toWire(reply) : reply;
  });
}

export function fromWire(replies: readonly WireReply[]): Reply[] {
  return replies.map((reply): Reply => {
    if (Array.isArray(reply)) return fromWire(reply);
    if (reply !== null && typeof reply === "object") return new RespError(reply.error);
    return reply;
  });
}
