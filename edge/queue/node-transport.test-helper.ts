/**
 * A `RedisTransport` over `node:net`, for Node-side tests only: it lets the conformance test run
 * the edge producer (job-args + resp + script runner) against real Redis without workerd. The
 * workerd socket path has its own test (socket-transport.test.ts). No TLS, no timeouts beyond a
 * generous one — a hang here should fail the test, not be handled.
 */
import { connect, type Socket } from "node:net";
import { encodeCommands, RespDecoder, RespError, type RedisCommand, type Reply } from "./resp.ts";
import { TransportError, type RedisTransport } from "./transport.ts";

export interface NodeTransport extends RedisTransport {
  /** Every pipeline sent, in order; tests assert round trips and bytes with it. */
  readonly sent: RedisCommand[][];
}

export function createNodeTransport(redisUrl: string): NodeTransport {
  const url = new URL(redisUrl);
  const sent: RedisCommand[][] = [];
  const decoder = new RespDecoder();
  let socket: Socket | undefined;
  let waiting: { count: number; replies: Reply[]; done: (r: Reply[]) => void; fail: (e: Error) => void } | undefined;

  const drain = () => {
    if (!waiting) return;
    for (let reply = decoder.next(); reply !== undefined; reply = decoder.next()) {
      waiting.replies.push(reply);
      if (waiting.replies.length === waiting.count) {
        const { done, replies } = waiting;
        waiting = undefined;
        done(replies);
        return;
      }
    }
  };

  async function open(): Promise<Socket> {
    const s = connect({ host: url.hostname, port: Number(url.port || 6379) });
    await new Promise<void>((resolve, reject) => {
      s.once("connect", resolve);
      s.once("error", reject);
    });
    s.on("data", (chunk: Buffer) => {
      decoder.push(chunk);
      drain();
    });
    s.on("error", (err) => waiting?.fail(new TransportError(err.message, true, { cause: err })));
    const password = decodeURIComponent(url.password);
    if (password) {
      const user = decodeURIComponent(url.username);
      const [auth] = await send([user ? ["AUTH", user, password] : ["AUTH", password]], s);
      if (auth instanceof RespError) throw new TransportError(`AUTH failed: ${auth.message}`, false);
    }
    return s;
  }

  function send(commands: readonly RedisCommand[], s: Socket): Promise<Reply[]> {
    return new Promise((done, fail) => {
      waiting = { count: commands.length, replies: [], done, fail };
      s.write(encodeCommands(commands));
    });
  }

  return {
    sent,
    async pipeline(commands) {
      socket ??= await open();
      sent.push([...commands]);
      return send(commands, socket);
    },
    async close() {
      socket?.end();
      socket = undefined;
    },
  };
}
