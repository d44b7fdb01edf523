/**
 * Minimal RESP2 codec: just what the edge needs to talk to Redis over a raw socket.
 *
 * Requests are always arrays of bulk strings (binary-safe: msgpack arguments go out untouched).
 * Replies are decoded incrementally because a socket delivers arbitrary chunks. Error replies are
 * returned as `RespError` values, not thrown: in a pipeline one failing command (NOSCRIPT, a
 * script error) must not hide the replies of the others.
 */

export type RedisArg = string | Uint8Array;
export type RedisCommand = readonly RedisArg[];

export class RespError {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
  /** The leading upper-case word Redis uses as an error code, e.g. `NOSCRIPT`, `WRONGPASS`. */
  get code(): string {
    return this.message.split(" ", 1)[0] ?? "";
  }
}

/** Simple and bulk strings both decode to `string` (UTF-8); a null bulk/array to `null`. */
export type Reply = string | number | null | RespError | Reply[];

const encoder = new TextEncoder();

/** String arguments up to this many UTF-16 units are counted in JS and encoded with their neighbours. */
const INLINE_MAX = 4096;

/**
 * Encodes commands back to back into one buffer, so a whole pipeline is one socket write. String
 * arguments are joined with the protocol text around them and encoded in one call per run of
 * strings (an add is ~35 arguments: one TextEncoder call each cost more than the rest of the
 * encoding); binary and long string arguments are copied as they are.
 */
export function encodeCommands(commands: readonly RedisCommand[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let size = 0;
  let text = "";
  const push = (part: Uint8Array) => {
    parts.push(part);
    size += part.byteLength;
  };
  const flush = () => {
    if (text !== "") push(encoder.encode(text));
    text = "";
  };
  for (const command of commands) {
    text += `*${command.length}\r\n`;
    for (const arg of command) {
      if (typeof arg === "string" && arg.length <= INLINE_MAX) {
        // Every argument is followed by CRLF, so a lone surrogate at either end stays lone in
        // `text` and becomes U+FFFD (3 bytes) exactly as utf8Length counts it.
        text += `$${utf8Length(arg)}\r\n${arg}\r\n`;
        continue;
      }
      const bytes = typeof arg === "string" ? encoder.encode(arg) : arg;
      text += `$${bytes.byteLength}\r\n`;
      flush();
      push(bytes);
      text = "\r\n";
    }
  }
  flush();
  return concatBytes(parts, size);
}

/** The parts as one buffer (the part itself when there is one); `size` is their total length. */
export function concatBytes(parts: readonly Uint8Array[], size = parts.reduce((n, p) => n + p.byteLength, 0)): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

/** Bytes TextEncoder produces for `text` (a lone surrogate becomes U+FFFD, 3 bytes). */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Returned by the parser when the buffer ends mid-reply; distinct from a `null` reply. */
const INCOMPLETE = Symbol("incomplete");
type Parsed = { value: Reply; end: number } | typeof INCOMPLETE;

export class RespDecoder {
  #buffer: Uint8Array = new Uint8Array(0);
  #offset = 0;
  readonly #text = new TextDecoder();

  push(chunk: Uint8Array): void {
    const rest = this.#buffer.subarray(this.#offset);
    const merged = new Uint8Array(rest.byteLength + chunk.byteLength);
    merged.set(rest, 0);
    merged.set(chunk, rest.byteLength);
    this.#buffer = merged;
    this.#offset = 0;
  }

  /** The next complete reply, or `undefined` if more bytes are needed. */
  next(): Reply | undefined {
    const parsed = this.#parse(this.#offset);
    if (parsed === INCOMPLETE) return undefined;
    this.#offset = parsed.end;
    return parsed.value;
  }

  #line(start: number): { text: string; end: number } | typeof INCOMPLETE {
    for (let i = start; i + 1 < this.#buffer.byteLength; i++) {
      if (this.#buffer[i] === 13 && this.#buffer[i + 1] === 10) {
        return { text: this.#text.decode(this.#buffer.subarray(start, i)), end: i + 2 };
      }
    }
    return INCOMPLETE;
  }

  #parse(start: number): Parsed {
    if (start >= this.#buffer.byteLength) return INCOMPLETE;
    const type = this.#buffer[start];
    const line = this.#line(start + 1);
    if (line === INCOMPLETE) return INCOMPLETE;
    switch (type) {
      case 0x2b: // '+'
        return { value: line.text, end: line.end };
      case 0x2d: // '-'
        return { value: new RespError(line.text), end: line.end };
      case 0x3a: // ':'
        return { value: Number(line.text), end: line.end };
      case 0x24: {
        // '$': a length-prefixed bulk string; -1 is the null bulk string.
        const length = Number(line.text);
        if (length < 0) return { value: null, end: line.end };
        const end = line.end + length + 2;
        if (end > this.#buffer.byteLength) return INCOMPLETE;
        const bytes = this.#buffer.subarray(line.end, line.end + length);
        return { value: this.#text.decode(bytes), end };
      }
      case 0x2a: {
        // '*': an array of replies; -1 is the null array.
        const count = Number(line.text);
        if (count < 0) return { value: null, end: line.end };
        const items: Reply[] = [];
        let cursor = line.end;
        for (let i = 0; i < count; i++) {
          const item = this.#parse(cursor);
          if (item === INCOMPLETE) return INCOMPLETE;
          items.push(item.value);
          cursor = item.end;
        }
        return { value: items, end: cursor };
      }
      default:
        // Not RESP2 (e.g. a RESP3 push after a stray HELLO 3): fail loudly rather than desync.
        throw new Error(`RESP: unexpected type byte 0x${(type ?? 0).toString(16)}`);
    }
  }
}

/**
 * What a new connection sends before anything else, from a `redis[s]://[user:password@]host[:port][/db]`
 * URL: AUTH (with the ACL user when one is given) and SELECT for a database other than 0.
 */
export function handshakeCommands(url: URL): RedisCommand[] {
  const commands: RedisCommand[] = [];
  const password = decodeURIComponent(url.password);
  const user = decodeURIComponent(url.username);
  if (password) commands.push(user ? ["AUTH", user, password] : ["AUTH", password]);
  const db = url.pathname.replace(/^\//, "");
  if (db && db !== "0") commands.push(["SELECT", db]);
  return commands;
}
