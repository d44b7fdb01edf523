// A TCP proxy a test can break on purpose, in front of a real server (Postgres, Redis …):
//   "pass"   forwards bytes both ways;
//   "refuse" resets every open connection and every new one at once (a crashed or restarting peer);
//   "hang"   keeps connections open but forwards nothing, and accepts new ones that never answer
//            (a silently dropped route, a frozen server) — only timeouts can notice it.
// Back to "pass", new connections work again; connections broken meanwhile stay broken.
import { createServer, connect, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

export type FaultMode = "pass" | "refuse" | "hang";

export interface FaultProxy {
  /** host:port of the proxy (127.0.0.1, a free port). */
  readonly port: number;
  /** `url` with its host and port replaced by the proxy's. */
  rewrite(url: string): string;
  set(mode: FaultMode): void;
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let mode: FaultMode = "pass";
  let connections = 0;
  let hung = false;
  const pairs = new Set<{ client: Socket; upstream: Socket | undefined }>();

  const server = createServer((client) => {
    connections++;
    client.on("error", () => undefined);
    if (mode === "refuse") {
      client.resetAndDestroy();
      return;
    }
    const pair: { client: Socket; upstream: Socket | undefined } = { client, upstream: undefined };
    pairs.add(pair);
    client.on("close", () => {
      pair.upstream?.destroy();
      pairs.delete(pair);
    });
    if (mode === "hang") return; // never connected upstream: the client waits for an answer forever
    const upstream = connect(target.port, target.host);
    pair.upstream = upstream;
    upstream.on("error", () => client.destroy());
    upstream.on("close", () => client.destroy());
    // Forward only while passing; in "hang" the bytes are swallowed.
    client.on("data", (chunk: Buffer) => {
      if (mode === "pass") upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (mode === "pass") client.write(chunk);
    });
  });
  const port = await listenOnLoopback(server);

  return {
    port,
    get connections() {
      return connections;
    },
    rewrite: (url) => rewriteToProxy(url, port),
    set(next) {
      mode = next;
      if (next === "refuse") {
        for (const { client, upstream } of pairs) {
          upstream?.destroy();
          client.resetAndDestroy();
        }
        pairs.clear();
      }
      if (next === "pass" && hung) {
        // Every connection that lived through the hang may have swallowed bytes and be out of step
        // with its server: drop them all, as a real network partition's end would leave them.
        for (const { client, upstream } of pairs) {
          upstream?.destroy();
          client.resetAndDestroy();
        }
        pairs.clear();
      }
      hung = next === "hang";
    },
    close: async () => {
      for (const { client, upstream } of pairs) {
        upstream?.destroy();
        client.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Listens on a free port of 127.0.0.1 (tests and benchmarks only); resolves with the port. */
export async function listenOnLoopback(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return (server.address() as AddressInfo).port;
}

/** `url` with its host and port replaced by a proxy's on 127.0.0.1 (scheme, user, password stay). */
export function rewriteToProxy(url: string, port: number): string {
  const u = new URL(url);
  u.hostname = "127.0.0.1";
  u.port = String(port);
  return u.toString();
}
