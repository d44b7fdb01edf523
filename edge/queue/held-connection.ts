/**
 * One long-lived RESP connection to Redis shared by every request that reaches its owner (the
 * RedisConnection Durable Object, redis-connection-object.ts), with group commit: the pipelines of
 * concurrent callers go out back to back in one socket write, and their replies are handed back
 * by order (Redis answers a connection's commands in the order it received them).
 *
 * Lifetimes and bounds:
 * - The socket opens on first use and is kept. A socket that errors, is closed by Redis, or misses
 *   a reply deadline is dropped at once: every pipeline written on it and not yet answered fails
 *   as "maybe enqueued" (its commands may have run), and the next pipeline opens a new socket.
 * - After `maxAgeMs` (default 14 min: Cloudflare keeps an object alive for an outbound connection
 *   up to 15 min) new writes go to a fresh socket; the old one closes once its replies are in.
 * - Every caller waits at most connectTimeoutMs (to open) + commandTimeoutMs (from its write to
 *   its last reply): a Redis outage is a fast TransportError, never a hang.
 *
 * Group commit adds no delay of its own: a pipeline is written at once unless a write is still
 * being handed to the socket; what arrives meanwhile goes out together in the next write.
 *
 * The object's own work per pipeline is kept small (it serves every request of its shard, one at a
 * time): `send` takes a pipeline already encoded by the caller and answers with its replies as
 * the bytes Redis sent (resp-scanner.ts finds where they end), and one timer per connection
 * watches the oldest unanswered write instead of one timer per pipeline.
 */
import { connect } from "cloudflare:sockets";
import { concatBytes, encodeCommands, handshakeCommands, RespError, type RedisCommand } from "./resp.ts";
import { decodeReplies, RespScanner } from "./resp-scanner.ts";
import { deadline, message, socketHostname } from "./socket-transport.ts";
import { TransportError, type RedisTransport } from "./transport.ts";

export interface HeldConnectionOptions {
  /** Max ms to establish TCP (and TLS); default 2000. */
  connectTimeoutMs?: number;
  /** Max ms from a pipeline's write until all its replies arrived; default 3000. */
  commandTimeoutMs?: number;
  /** A socket older than this takes no new writes; default 14 minutes. */
  maxAgeMs?: number;
  /** CLIENT SETNAME sent with the handshake, so CLIENT LIST shows the held connections. */
  clientName?: string;
  connect?: typeof connect;
  /** The clock the age is read from, in ms; default Date.now (tests pass their own). Reply
   *  deadlines use Date.now, the clock their timer runs on. */
  now?: () => number;
}

export interface HeldConnectionStats {
  /** Sockets opened so far, writes made, and pipelines sent through them. */
  connections: number;
  writes: number;
  pipelines: number;
}

export interface HeldConnection extends RedisTransport {
  /**
   * One pipeline of `count` commands, already RESP-encoded (encodeCommands); resolves with its
   * `count` replies as Redis sent them (decodeReplies turns them into values). Failures reject
   * with a TransportError, as `pipeline` does.
   */
  send(request: Uint8Array, count: number): Promise<Uint8Array>;
  stats(): HeldConnectionStats;
}

interface Waiter {
  request: Uint8Array;
  count: number;
  resolve(replies: Uint8Array): void;
  reject(err: TransportError): void;
  settled: boolean;
}

interface InFlight {
  /** undefined: the handshake (AUTH/SELECT/SETNAME) sent ahead of the first pipeline. */
  waiter: Waiter | undefined;
  expected: number;
  received: number;
  /** Date.now() by which its last reply must be in (its write's time + commandTimeoutMs). */
  due: number;
}

interface Connection {
  socket: Socket;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  openedAt: number;
  /** The handshake still has to go out, ahead of the first write's pipelines. */
  handshakePending: boolean;
  /** A handshake command got an error reply: the pipelines behind it are refused, then the socket goes. */
  handshakeError?: string;
  /** Replies come in write order, so the head's deadline is the only one that can pass first. */
  inFlight: InFlight[];
  /** Set for the head's deadline; on firing it moves on to the new head's (see expire). */
  timer: ReturnType<typeof setTimeout> | undefined;
  retired: boolean;
  dead: boolean;
}

export function createHeldConnection(redisUrl: string, options: HeldConnectionOptions = {}): HeldConnection {
  const url = new URL(redisUrl);
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new Error(`Redis URL must start with redis:// or rediss://, got ${url.protocol}//`);
  }
  const connectTimeoutMs = options.connectTimeoutMs ?? 2000;
  const commandTimeoutMs = options.commandTimeoutMs ?? 3000;
  const maxAgeMs = options.maxAgeMs ?? 14 * 60_000;
  const now = options.now ?? Date.now;
  const target = `${url.hostname}:${url.port || 6379}`;
  const handshake: RedisCommand[] = [
    ...handshakeCommands(url),
    ...(options.clientName ? [["CLIENT", "SETNAME", options.clientName] as RedisCommand] : []),
  ];
  const handshakeBytes = encodeCommands(handshake);
  const stats: HeldConnectionStats = { connections: 0, writes: 0, pipelines: 0 };
  /** The socket new writes go to, and the open in progress when there is none. */
  let live: Connection | undefined;
  let opening: Promise<Connection> | undefined;
  const outbox: Waiter[] = [];
  let flushing = false;
  let closed = false;

  async function open(): Promise<Connection> {
    let socket: Socket | undefined;
    try {
      socket = (options.connect ?? connect)(
        { hostname: socketHostname(url), port: Number(url.port || 6379) },
        { secureTransport: url.protocol === "rediss:" ? "on" : "off", allowHalfOpen: false },
      );
      await deadline(socket.opened, connectTimeoutMs, `connect to ${target} timed out after ${connectTimeoutMs} ms`);
    } catch (err) {
      void socket?.close().catch(() => {});
      throw new TransportError(`Redis unreachable at ${target}: ${message(err)}`, false, { cause: err });
    }
    stats.connections++;
    const conn: Connection = {
      socket, writer: socket.writable.getWriter(), openedAt: now(), handshakePending: handshake.length > 0,
      inFlight: [], timer: undefined, retired: false, dead: false,
    };
    void readLoop(conn, socket.readable.getReader());
    return conn;
  }

  /** The socket new writes go to; a failed open is forgotten so the next caller tries again. */
  function connection(): Promise<Connection> {
    if (live && !live.dead && !live.retired) return Promise.resolve(live);
    opening ??= open().then((conn) => (live = conn)).finally(() => {
      opening = undefined;
    });
    return opening;
  }

  async function readLoop(conn: Connection, reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    const scanner = new RespScanner();
    try {
      for (;;) {
        while (scanner.skip()) deliver(conn, scanner);
        if (conn.dead) return;
        const { value, done } = await reader.read();
        if (done) throw new Error("connection closed by Redis");
        scanner.push(value);
      }
    } catch (err) {
      kill(conn, err);
    }
  }

  /** One more complete reply is in the scanner; the head's last one hands it its replies. */
  function deliver(conn: Connection, scanner: RespScanner): void {
    const head = conn.inFlight[0];
    if (!head) throw new Error("RESP: a reply nobody asked for");
    if (++head.received < head.expected) return;
    conn.inFlight.shift();
    const { waiter } = head;
    const bytes = scanner.take();
    if (!waiter) {
      const replies = decodeReplies(bytes, head.expected);
      const refused = replies.findIndex((r) => r instanceof RespError);
      if (refused >= 0) conn.handshakeError = `Redis rejected ${String(handshake[refused]?.[0])}: ${(replies[refused] as RespError).message}`;
    } else if (conn.handshakeError) {
      // Behind a refused AUTH the commands got NOAUTH unless Redis has no password at all.
      const ran = decodeReplies(bytes, head.expected).some((r) => !(r instanceof RespError && r.code === "NOAUTH"));
      settle(waiter, new TransportError(conn.handshakeError, ran));
    } else {
      settle(waiter, bytes);
    }
    if (conn.handshakeError && conn.inFlight.length === 0) kill(conn, new Error(conn.handshakeError));
    else if (conn.retired && conn.inFlight.length === 0) retire(conn);
  }

  /** Arms the connection's timer for the head's deadline, unless it is armed already. */
  function arm(conn: Connection): void {
    const head = conn.inFlight[0];
    if (conn.timer !== undefined || !head) return;
    conn.timer = setTimeout(() => expire(conn), Math.max(1, head.due - Date.now()));
  }

  /**
   * A missed deadline means Redis (or the path to it) stalled: drop the socket, fail what it owed.
   * The timer was set for an earlier head than the one waiting now, maybe: then it waits on for
   * this one's deadline.
   */
  function expire(conn: Connection): void {
    conn.timer = undefined;
    const head = conn.inFlight[0];
    if (conn.dead || !head) return;
    if (Date.now() >= head.due) kill(conn, new Error(`no reply from ${target} within ${commandTimeoutMs} ms`));
    else arm(conn);
  }

  function settle(waiter: Waiter, outcome: Uint8Array | TransportError): void {
    if (waiter.settled) return;
    waiter.settled = true;
    if (outcome instanceof TransportError) waiter.reject(outcome);
    else waiter.resolve(outcome);
  }

  /** Drops a socket whose stream position is unknown; what it owed fails as maybe enqueued. */
  function kill(conn: Connection, err: unknown): void {
    if (conn.dead) return;
    conn.dead = true;
    if (live === conn) live = undefined;
    clearTimeout(conn.timer);
    const failure = new TransportError(`Redis connection to ${target} failed: ${message(err)}`, true, { cause: err });
    for (const entry of conn.inFlight.splice(0)) {
      if (entry.waiter) settle(entry.waiter, failure);
    }
    void conn.socket.close().catch(() => {});
  }

  function retire(conn: Connection): void {
    conn.dead = true;
    clearTimeout(conn.timer);
    void conn.socket.close().catch(() => {});
  }

  /** Writes everything queued in one write; runs again for what arrived while it was writing. */
  async function flush(): Promise<void> {
    if (flushing) return;
    flushing = true;
    try {
      while (outbox.length > 0) {
        let conn: Connection;
        try {
          conn = live && !live.dead && !live.retired ? live : await connection();
          if (now() - conn.openedAt > maxAgeMs) {
            conn.retired = true;
            if (conn.inFlight.length === 0) retire(conn);
            conn = await connection();
          }
        } catch (err) {
          // Nothing of what waits was written: a retry cannot double-enqueue.
          const failure = err instanceof TransportError ? err : new TransportError(message(err), false, { cause: err });
          for (const waiter of outbox.splice(0)) settle(waiter, failure);
          return;
        }
        if (conn.dead) continue; // dropped while we waited for it: the loop opens another
        const batch = outbox.splice(0).filter((w) => !w.settled);
        if (batch.length === 0) continue;
        // Pipelines arriving while this write is handed to the socket go out in the next one.
        await write(conn, batch);
      }
    } finally {
      flushing = false;
    }
  }

  function write(conn: Connection, batch: Waiter[]): Promise<void> {
    const due = Date.now() + commandTimeoutMs;
    const parts: Uint8Array[] = [];
    if (conn.handshakePending) {
      parts.push(handshakeBytes);
      conn.inFlight.push({ waiter: undefined, expected: handshake.length, received: 0, due });
      conn.handshakePending = false;
    }
    for (const waiter of batch) {
      parts.push(waiter.request);
      conn.inFlight.push({ waiter, expected: waiter.count, received: 0, due });
    }
    arm(conn);
    stats.writes++;
    stats.pipelines += batch.length;
    return conn.writer.write(concatBytes(parts)).catch((err: unknown) => kill(conn, err));
  }

  function send(request: Uint8Array, count: number): Promise<Uint8Array> {
    if (closed) return Promise.reject(new TransportError("connection already closed", false));
    if (count === 0) return Promise.resolve(new Uint8Array(0));
    return new Promise<Uint8Array>((resolve, reject) => {
      outbox.push({ request, count, resolve, reject, settled: false });
      if (!flushing) void flush();
    });
  }

  return {
    send,
    async pipeline(commands) {
      return decodeReplies(await send(encodeCommands(commands), commands.length), commands.length);
    },
    async close() {
      closed = true;
      const failure = new TransportError("connection closed", false);
      for (const waiter of outbox.splice(0)) settle(waiter, failure);
      const conn = live ?? (await opening?.catch(() => undefined));
      if (conn) kill(conn, new Error("connection closed"));
    },
    stats: () => ({ ...stats }),
  };
}
