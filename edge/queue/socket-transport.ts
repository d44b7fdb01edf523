/**
 * RESP2 over `cloudflare:sockets`, for `redis://` and `rediss://` (TLS) URLs.
 *
 * Lifetime: one transport per Worker request. A socket opened in one request cannot be used from
 * another ("Cannot perform I/O on behalf of a different request"), so nothing is kept at module
 * scope; the caller runs `close()` in `ctx.waitUntil` so closing never delays the response.
 *
 * Latency: the socket is opened lazily and AUTH/SELECT go out in the same write as the first
 * pipeline, so an enqueue costs the TCP(+TLS) handshake plus one round trip.
 */
import { connect } from "cloudflare:sockets";
import { encodeCommands, handshakeCommands, RespDecoder, RespError, type RedisCommand, type Reply } from "./resp.ts";
import { TransportError, type RedisTransport } from "./transport.ts";

export interface SocketTransportOptions {
  /** Max ms to establish TCP (and TLS); default 2000. Nothing is sent before it succeeds. */
  connectTimeoutMs?: number;
  /** Max ms from writing a pipeline until all its replies arrived; default 3000. */
  commandTimeoutMs?: number;
  /** `cloudflare:sockets` connect; replaceable only so tests can simulate a hanging handshake. */
  connect?: typeof connect;
}

interface Connection {
  socket: Socket;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  reader: ReadableStreamDefaultReader<Uint8Array>;
  decoder: RespDecoder;
  /** AUTH/SELECT still to be prepended to the first write. */
  handshake: RedisCommand[];
}

export function createSocketTransport(redisUrl: string, options: SocketTransportOptions = {}): RedisTransport {
  const url = new URL(redisUrl);
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new Error(`Redis URL must start with redis:// or rediss://, got ${url.protocol}//`);
  }
  const connectTimeoutMs = options.connectTimeoutMs ?? 2000;
  const commandTimeoutMs = options.commandTimeoutMs ?? 3000;
  // WHATWG URLs keep the brackets of a literal IPv6 host (`[::1]`); connect() wants the bare address.
  const hostname = socketHostname(url);
  const target = `${url.hostname}:${url.port || 6379}`;
  let connection: Connection | undefined;
  let closed = false;
  // Pipelines are serialised: RESP replies are matched to commands purely by order.
  let tail: Promise<unknown> = Promise.resolve();

  async function open(): Promise<Connection> {
    let socket: Socket | undefined;
    try {
      socket = (options.connect ?? connect)(
        { hostname, port: Number(url.port || 6379) },
        { secureTransport: url.protocol === "rediss:" ? "on" : "off", allowHalfOpen: false },
      );
      await deadline(socket.opened, connectTimeoutMs, `connect to ${target} timed out after ${connectTimeoutMs} ms`);
    } catch (err) {
      // Abandon the half-open socket so it cannot linger past the request.
      void socket?.close().catch(() => {});
      throw new TransportError(`Redis unreachable at ${target}: ${message(err)}`, false, { cause: err });
    }
    return {
      socket,
      writer: socket.writable.getWriter(),
      reader: socket.readable.getReader(),
      decoder: new RespDecoder(),
      handshake: handshakeCommands(url),
    };
  }

  async function exchange(commands: readonly RedisCommand[]): Promise<Reply[]> {
    if (closed) throw new TransportError("transport already closed", false);
    connection ??= await open();
    const conn = connection;
    const prefix = conn.handshake;
    const expected = prefix.length + commands.length;
    let written = false;
    try {
      const writing = conn.writer.write(encodeCommands([...prefix, ...commands]));
      // From here on Redis may execute the commands even if we never see the replies.
      written = true;
      const replies = await deadline(readReplies(conn, expected, writing), commandTimeoutMs,
        `no reply from ${target} within ${commandTimeoutMs} ms`);
      conn.handshake = [];
      return checkHandshake(prefix, replies);
    } catch (err) {
      // The stream position is unknown now: drop the socket; a later pipeline reconnects.
      connection = undefined;
      void conn.socket.close().catch(() => {});
      if (err instanceof TransportError) throw err;
      throw new TransportError(`Redis connection to ${target} failed: ${message(err)}`, written, { cause: err });
    }
  }

  return {
    pipeline(commands) {
      const run = tail.then(() => exchange(commands));
      tail = run.catch(() => {});
      return run;
    },
    async close() {
      closed = true;
      const conn = connection;
      connection = undefined;
      if (conn) await conn.socket.close().catch(() => {});
    },
  };
}

/** The host as `connect()` takes it: a literal IPv6 address without its URL brackets. */
export function socketHostname(url: URL): string {
  const host = url.hostname;
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

async function readReplies(conn: Connection, count: number, writing: Promise<void>): Promise<Reply[]> {
  await writing;
  const replies: Reply[] = [];
  while (replies.length < count) {
    const reply = conn.decoder.next();
    if (reply !== undefined) {
      replies.push(reply);
      continue;
    }
    const { value, done } = await conn.reader.read();
    if (done) throw new Error("connection closed by Redis");
    conn.decoder.push(value);
  }
  return replies;
}

/**
 * Strips the AUTH/SELECT replies. A failed AUTH is a configuration error, reported as a
 * TransportError so callers handle it like any unreachable Redis (503); the commands behind it
 * were refused with NOAUTH unless Redis has no password at all, in which case they did run.
 */
function checkHandshake(prefix: readonly RedisCommand[], replies: Reply[]): Reply[] {
  const results = replies.slice(prefix.length);
  prefix.forEach((command, i) => {
    const reply = replies[i];
    if (!(reply instanceof RespError)) return;
    const ran = results.some((r) => !(r instanceof RespError && r.code === "NOAUTH"));
    throw new TransportError(`Redis rejected ${String(command[0])}: ${reply.message}`, ran);
  });
  return results;
}

/** Rejects with `reason` if `promise` has not settled within `ms`. */
export function deadline<T>(promise: Promise<T>, ms: number, reason: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(reason)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
