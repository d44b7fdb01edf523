/**
 * RESP2 over `node:net` / `node:tls`: the edge producer's `RedisTransport` for the API when it runs
 * on Node (self-host mode, worker/api/server.ts).
 *
 * Lifetime: one connection per process, shared by every request. A Worker's socket cannot outlive
 * its request, so the edge pays a handshake per request; on Node that cost is paid once. Requests
 * multiplex on the connection: RESP answers strictly in order, so each pipeline takes the next
 * `commands.length` replies. `session()` hands a request a view whose `close()` leaves the shared
 * connection open.
 *
 * Failure semantics match the edge's socket transport: nothing written → `maybeEnqueued: false`;
 * once a pipeline's bytes went out, losing the connection or the reply deadline leaves its outcome
 * unknown (`maybeEnqueued: true`) and the caller retries with the same job ids. After any such
 * failure the stream position is unknown, so the connection is dropped and the next pipeline
 * reconnects.
 */
import { readFileSync } from "node:fs";
import { isIP, connect as tcpConnect, type Socket } from "node:net";
import { getCACertificates, connect as tlsConnect } from "node:tls";
import { encodeCommands, handshakeCommands, RespDecoder, RespError, type RedisCommand, type Reply } from "../../edge/queue/resp.ts";
import { TransportError, type RedisTransport } from "../../edge/queue/transport.ts";

export interface NodeRedisOptions {
  /** Max ms to establish TCP (and TLS); default 2000. Nothing is sent before it succeeds. */
  connectTimeoutMs?: number;
  /** Max ms from writing a pipeline until all its replies arrived; default 3000. */
  commandTimeoutMs?: number;
  /**
   * PEM file with a CA to trust for `rediss://`, in addition to Node's default CAs (private CAs,
   * tests). Verification is never switched off.
   */
  caCertPath?: string;
}

export interface NodeRedis extends RedisTransport {
  /** A per-request transport on the shared connection; its `close()` does not close the connection. */
  session(): RedisTransport;
  /** Resolves when Redis answers PONG (readiness). */
  ping(): Promise<void>;
  /** Connections opened so far (reconnects included). */
  readonly connectionsOpened: number;
}

interface Pending {
  count: number;
  replies: Reply[];
  done: (replies: Reply[]) => void;
  fail: (err: TransportError) => void;
  timer: NodeJS.Timeout;
}

interface Connection {
  socket: Socket;
  decoder: RespDecoder;
  /** Written pipelines awaiting replies, oldest first. */
  pending: Pending[];
  /** TCP (+TLS) up and AUTH/SELECT answered. */
  ready: Promise<void>;
  dead: boolean;
}

export function createNodeRedis(redisUrl: string, options: NodeRedisOptions = {}): NodeRedis {
  const url = new URL(redisUrl);
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new Error(`Redis URL must start with redis:// or rediss://, got ${url.protocol}//`);
  }
  const connectTimeoutMs = options.connectTimeoutMs ?? 2000;
  const commandTimeoutMs = options.commandTimeoutMs ?? 3000;
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const port = Number(url.port || 6379);
  const target = `${url.hostname}:${port}`;
  const tls = url.protocol === "rediss:";
  // Read once at start-up: a missing file is a configuration error, not a per-request one.
  const ca = tls && options.caCertPath
    ? [...getCACertificates("default"), readFileSync(options.caCertPath, "utf8")]
    : undefined;
  let current: Connection | undefined;
  let closed = false;
  let connectionsOpened = 0;

  function open(): Connection {
    connectionsOpened++;
    const socket = tls
      ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...(ca ? { ca } : {}) })
      : tcpConnect({ host, port });
    const conn: Connection = { socket, decoder: new RespDecoder(), pending: [], ready: Promise.resolve(), dead: false };
    socket.setNoDelay(true);
    // Finds a peer that vanished without a FIN (NAT timeouts, a dropped route) while idle.
    socket.setKeepAlive(true, 30_000);
    socket.on("data", (chunk: Buffer) => receive(conn, chunk));
    socket.on("error", (err) => kill(conn, `Redis connection to ${target} failed: ${err.message}`));
    socket.on("close", () => kill(conn, `Redis connection to ${target} closed`));
    conn.ready = (async () => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await new Promise<void>((resolve, reject) => {
          timer = setTimeout(() => reject(new Error(`connect to ${target} timed out after ${connectTimeoutMs} ms`)), connectTimeoutMs);
          socket.once(tls ? "secureConnect" : "connect", () => resolve());
          socket.once("error", reject);
          socket.once("close", () => reject(new Error("connection closed while connecting")));
        });
      } catch (err) {
        kill(conn, "connect failed");
        throw new TransportError(`Redis unreachable at ${target}: ${message(err)}`, false, { cause: err });
      } finally {
        clearTimeout(timer);
      }
      const commands = handshakeCommands(url);
      if (commands.length === 0) return;
      // Nothing else is written until the handshake is answered, so a refused AUTH means no
      // request's commands reached Redis.
      const replies = await write(conn, commands).catch((err: unknown) => {
        throw new TransportError(message(err), false, { cause: err });
      });
      replies.forEach((reply, i) => {
        if (reply instanceof RespError) {
          kill(conn, "handshake refused");
          throw new TransportError(`Redis rejected ${String(commands[i]?.[0])}: ${reply.message}`, false);
        }
      });
    })();
    // Observed by every pipeline that awaits it; never an unhandled rejection on its own.
    conn.ready.catch(() => {});
    return conn;
  }

  function receive(conn: Connection, chunk: Buffer): void {
    conn.decoder.push(chunk);
    try {
      for (let head = conn.pending[0]; head; head = conn.pending[0]) {
        const reply = conn.decoder.next();
        if (reply === undefined) return;
        head.replies.push(reply);
        if (head.replies.length === head.count) {
          conn.pending.shift();
          clearTimeout(head.timer);
          head.done(head.replies);
        }
      }
    } catch (err) {
      kill(conn, `Redis sent an unreadable reply: ${message(err)}`);
    }
  }

  /** Fails every written pipeline as "maybe enqueued" and forgets the connection. */
  function kill(conn: Connection, reason: string): void {
    if (conn.dead) return;
    conn.dead = true;
    if (current === conn) current = undefined;
    conn.socket.destroy();
    for (const p of conn.pending.splice(0)) {
      clearTimeout(p.timer);
      p.fail(new TransportError(reason, true));
    }
  }

  function write(conn: Connection, commands: readonly RedisCommand[]): Promise<Reply[]> {
    return new Promise((done, fail) => {
      const timer = setTimeout(
        () => kill(conn, `no reply from ${target} within ${commandTimeoutMs} ms`),
        commandTimeoutMs,
      );
      conn.pending.push({ count: commands.length, replies: [], done, fail, timer });
      conn.socket.write(encodeCommands(commands));
    });
  }

  async function pipeline(commands: readonly RedisCommand[]): Promise<Reply[]> {
    if (closed) throw new TransportError("Redis connection pool is closed", false);
    if (commands.length === 0) return [];
    // A connection can die between becoming ready and this write (Redis restarted, idle timeout):
    // nothing of this pipeline was sent, so one fresh connection is tried before giving up.
    for (let attempt = 0; ; attempt++) {
      const conn = (current ??= open());
      await conn.ready;
      if (conn.dead) {
        if (attempt === 0) continue;
        throw new TransportError(`Redis connection to ${target} closed`, false);
      }
      return write(conn, commands);
    }
  }

  return {
    pipeline,
    get connectionsOpened() {
      return connectionsOpened;
    },
    session() {
      let ended = false;
      return {
        pipeline: (commands) =>
          ended ? Promise.reject(new TransportError("transport already closed", false)) : pipeline(commands),
        close: async () => {
          ended = true;
        },
      };
    },
    async ping() {
      const [reply] = await pipeline([["PING"]]);
      if (reply !== "PONG") throw new Error(reply instanceof RespError ? reply.message : "unexpected PING reply");
    },
    async close() {
      closed = true;
      const conn = current;
      current = undefined;
      if (!conn) return;
      // Pipelines already written get their replies (each is bounded by the command timeout).
      while (conn.pending.length > 0 && !conn.dead) {
        await new Promise<void>((resolve) => {
          const last = conn.pending[conn.pending.length - 1];
          if (!last) return resolve();
          const { done, fail } = last;
          last.done = (r) => (done(r), resolve());
          last.fail = (e) => (fail(e), resolve());
        });
      }
      conn.dead = true;
      await new Promise<void>((resolve) => {
        if (conn.socket.destroyed) return resolve();
        conn.socket.once("close", () => resolve());
        conn.socket.end();
        // A peer that never acknowledges the FIN does not hold shutdown.
        setTimeout(() => conn.socket.destroy(), 1_000).unref();
      });
    },
  };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
