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
 */
import { connect } from "cloudflare:sockets";
import { encodeCommands, handshakeCommands, RespDecoder, RespError, type RedisCommand, type Reply } from "./resp.ts";
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
  /** The clock the age is read from, in ms; default Date.now (tests pass their own). */
  now?: () => number;
}

export interface HeldConnectionStats {
  /** Sockets opened so far, writes made, and pipelines sent through them. */
  connections: number;
  writes: number;
  pipelines: number;
}

export interface HeldConnection extends RedisTransport {
  stats(): HeldConnectionStats;
}

interface Waiter {
  commands: readonly RedisCommand[];
  resolve(replies: Reply[]): void;
  reject(err: TransportError): void;
  settled: boolean;
}

interface InFlight {
  /** undefined: the handshake (AUTH/SELECT/SETNAME) sent ahead of the first pipeline. */
  waiter: Waiter | undefined;
  expected: number;
  replies: Reply[];
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface Connection {
  socket: Socket;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  openedAt: number;
  handshake: RedisCommand[];
  /** A handshake command got an error reply: the pipelines behind it are refused, then the socket goes. */
  handshakeError?: string;
  inFlight: InFlight[];
  writing: boolean;
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
      socket, writer: socket.writable.getWriter(), openedAt: now(), handshake: [...handshake],
      inFlight: [], writing: false, retired: false, dead: false,
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
    const decoder = new RespDecoder();
    try {
      for (;;) {
        for (let reply = decoder.next(); reply !== undefined; reply = decoder.next()) deliver(conn, reply);
        if (conn.dead) return;
        const { value, done } = await reader.read();
        if (done) throw new Error("connection closed by Redis");
        decoder.push(value);
      }
    } catch (err) {
      kill(conn, err);
    }
  }

  function deliver(conn: Connection, reply: Reply): void {
    const head = conn.inFlight[0];
    if (!head) throw new Error("RESP: a reply nobody asked for");
    head.replies.push(reply);
    if (head.replies.length < head.expected) return;
    conn.inFlight.shift();
    clearTimeout(head.timer);
    const { waiter, replies } = head;
    if (!waiter) {
      const refused = replies.findIndex((r) => r instanceof RespError);
      if (refused >= 0) conn.handshakeError = `Redis rejected ${String(handshake[refused]?.[0])}: ${(replies[refused] as RespError).message}`;
    } else if (conn.handshakeError) {
      // Behind a refused AUTH the commands got NOAUTH unless Redis has no password at all.
      const ran = replies.some((r) => !(r instanceof RespError && r.code === "NOAUTH"));
      settle(waiter, new TransportError(conn.handshakeError, ran));
    } else {
      settle(waiter, replies);
    }
    if (conn.handshakeError && conn.inFlight.length === 0) kill(conn, new Error(conn.handshakeError));
    else if (conn.retired && conn.inFlight.length === 0) retire(conn);
  }

  function settle(waiter: Waiter, outcome: Reply[] | TransportError): void {
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
    const failure = new TransportError(`Redis connection to ${target} failed: ${message(err)}`, true, { cause: err });
    for (const entry of conn.inFlight.splice(0)) {
      clearTimeout(entry.timer);
      if (entry.waiter) settle(entry.waiter, failure);
    }
    void conn.socket.close().catch(() => {});
  }

  function retire(conn: Connection): void {
    conn.dead = true;
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
          conn = await connection();
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
    const commands: RedisCommand[] = [...conn.handshake];
    if (conn.handshake.length > 0) conn.inFlight.push({ waiter: undefined, expected: conn.handshake.length, replies: [], timer: undefined });
    conn.handshake = [];
    for (const waiter of batch) {
      commands.push(...waiter.commands);
      const entry: InFlight = { waiter, expected: waiter.commands.length, replies: [], timer: undefined };
      // A missed deadline means Redis (or the path to it) stalled: drop the socket, fail what it owed.
      entry.timer = setTimeout(() => kill(conn, new Error(`no reply from ${target} within ${commandTimeoutMs} ms`)), commandTimeoutMs);
      conn.inFlight.push(entry);
    }
    stats.writes++;
    stats.pipelines += batch.length;
    return conn.writer.write(encodeCommands(commands)).catch((err: unknown) => kill(conn, err));
  }

  return {
    pipeline(commands) {
      if (closed) return Promise.reject(new TransportError("connection already closed", false));
      if (commands.length === 0) return Promise.resolve([]);
      return new Promise<Reply[]>((resolve, reject) => {
        outbox.push({ commands, resolve, reject, settled: false });
        void flush();
      });
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
