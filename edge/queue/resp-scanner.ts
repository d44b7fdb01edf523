/**
 * Where each RESP2 reply ends in a byte stream, found without decoding it. The RedisConnection
 * object (held-connection.ts) hands a pipeline's replies back to its caller as the bytes Redis
 * sent; the caller decodes them once (`decodeReplies`), so nothing is built in the object, cloned
 * across the RPC boundary and rebuilt on the other side.
 */
import { RespDecoder, type Reply } from "./resp.ts";

export class RespScanner {
  #buffer: Uint8Array = new Uint8Array(0);
  /** Start of the bytes not taken yet, and end of the complete replies skipped over so far. */
  #start = 0;
  #end = 0;

  push(chunk: Uint8Array): void {
    if (this.#start === this.#buffer.byteLength) {
      // Everything before was taken (the common case: whole replies per chunk): no copy.
      this.#buffer = chunk;
    } else {
      const rest = this.#buffer.subarray(this.#start);
      const merged = new Uint8Array(rest.byteLength + chunk.byteLength);
      merged.set(rest, 0);
      merged.set(chunk, rest.byteLength);
      this.#buffer = merged;
    }
    this.#end -= this.#start;
    this.#start = 0;
  }

  /** Moves past the next reply if it is complete; false if more bytes are needed. */
  skip(): boolean {
    const end = this.#scan(this.#end);
    if (end < 0) return false;
    this.#end = end;
    return true;
  }

  /** A copy of the replies skipped over since the last take (a copy: a view would keep, and an RPC would clone, the whole buffer). */
  take(): Uint8Array {
    const out = this.#buffer.slice(this.#start, this.#end);
    this.#start = this.#end;
    return out;
  }

  /** The end of the reply starting at `at`, or -1 if the buffer ends first. */
  #scan(at: number): number {
    const b = this.#buffer;
    if (at >= b.byteLength) return -1;
    let cr = at + 1;
    while (cr + 1 < b.byteLength && !(b[cr] === 13 && b[cr + 1] === 10)) cr++;
    if (cr + 1 >= b.byteLength) return -1;
    const next = cr + 2;
    switch (b[at]) {
      case 0x2b: // '+'
      case 0x2d: // '-'
      case 0x3a: // ':'
        return next;
      case 0x24: {
        // '$': length-prefixed bulk string; -1 is the null bulk string.
        const length = integer(b, at + 1, cr);
        if (length < 0) return next;
        const end = next + length + 2;
        return end > b.byteLength ? -1 : end;
      }
      case 0x2a: {
        // '*': an array of replies; -1 is the null array.
        let cursor = next;
        for (let i = integer(b, at + 1, cr); i > 0; i--) {
          cursor = this.#scan(cursor);
          if (cursor < 0) return -1;
        }
        return cursor;
      }
      default:
        // Not RESP2 (e.g. a RESP3 push after a stray HELLO 3): fail loudly rather than desync.
        throw new Error(`RESP: unexpected type byte 0x${(b[at] ?? 0).toString(16)}`);
    }
  }
}

/** The decimal integer in b[from, to), as RESP writes lengths and counts (an optional '-'). */
function integer(b: Uint8Array, from: number, to: number): number {
  const negative = b[from] === 0x2d;
  let n = 0;
  for (let i = negative ? from + 1 : from; i < to; i++) n = n * 10 + ((b[i] as number) - 48);
  return negative ? -n : n;
}

/** Decodes `count` complete replies (what a RespScanner took for one pipeline). */
export function decodeReplies(bytes: Uint8Array, count: number): Reply[] {
  const decoder = new RespDecoder();
  decoder.push(bytes);
  const replies: Reply[] = [];
  for (let i = 0; i < count; i++) {
    const reply = decoder.next();
    if (reply === undefined) throw new Error(`RESP: ${count} replies expected, ${i} found`);
    replies.push(reply);
  }
  return replies;
}
