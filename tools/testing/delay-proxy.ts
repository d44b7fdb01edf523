// A TCP proxy on 127.0.0.1 that adds latency: every chunk is forwarded RTT/2 after it arrived, in
// each direction, in order (one FIFO per direction; the delay is the same for every chunk, so
// nothing overtakes). TLS passes through untouched, so a client still verifies the server.
//
// What it cannot add: the TCP handshake. The client's connect() completes against this proxy on
// loopback, so a fresh connection's SYN/SYN-ACK costs nothing here, where on a real path it costs
// one RTT. Figures measured through it count that round trip separately (see tools/bench/latency.ts).
import { connect, createServer, type Socket } from "node:net";
import { listenOnLoopback, rewriteToProxy } from "./fault-proxy.ts";

export interface DelayProxy {
  readonly port: number;
  /** `url` with its host and port replaced by the proxy's (the scheme, user, password stay). */
  rewrite(url: string): string;
  /** Round-trip time added from now on (ms); 0 forwards at once. */
  setRtt(ms: number): void;
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

export async function startDelayProxy(target: { host: string; port: number }, rttMs = 0): Promise<DelayProxy> {
  let oneWayMs = rttMs / 2;
  let connections = 0;
  const open = new Set<Socket>();

  const server = createServer((client) => {
    connections++;
    const upstream = connect(target.port, target.host);
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.setNoDelay(true);
      socket.on("close", () => open.delete(socket));
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    forward(client, upstream, () => oneWayMs);
    forward(upstream, client, () => oneWayMs);
  });
  const port = await listenOnLoopback(server);
  return {
    port,
    get connections() {
      return connections;
    },
    rewrite: (url) => rewriteToProxy(url, port),
    setRtt(ms) {
      oneWayMs = ms / 2;
    },
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Chunks from `from` reach `to` after the one-way delay, in arrival order; an end follows the last. */
function forward(from: Socket, to: Socket, delayMs: () => number): void {
  const queue: Array<{ due: number; chunk: Buffer | null }> = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pump = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && (queue[0] as { due: number }).due <= now) {
      const { chunk } = queue.shift() as { chunk: Buffer | null };
      if (chunk === null) to.end();
      else to.write(chunk);
    }
    const head = queue[0];
    if (head) timer = setTimeout(pump, Math.max(0, head.due - now));
  };
  const push = (chunk: Buffer | null) => {
    const delay = delayMs();
    if (delay <= 0 && queue.length === 0) {
      if (chunk === null) to.end();
      else to.write(chunk);
      return;
    }
    queue.push({ due: performance.now() + delay, chunk });
    timer ??= setTimeout(pump, delay);
  };
  from.on("data", (chunk: Buffer) => push(chunk));
  from.on("end", () => push(null));
}
