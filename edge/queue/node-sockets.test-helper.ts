/**
 * `cloudflare:sockets` for Node-side tests: `connect()` over `node:net` / `node:tls` with the same
 * Web-stream surface (opened, closed, readable, writable, close). vitest's "node" project aliases
 * the `cloudflare:sockets` import to this file, so Node tests run the PRODUCTION socket transport
 * (socket-transport.ts: handshake pipelining, RESP, timeouts, NOSCRIPT fallback) unchanged; only
 * the runtime's socket primitive is stood in for. workerd's own sockets are tested in workerd
 * (socket-transport.test.ts). TLS verifies like workerd does: system CAs + NODE_EXTRA_CA_CERTS.
 */
import { isIP, connect as tcpConnect, type Socket as NodeSocket } from "node:net";
import { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";

export function connect(address: string | SocketAddress, options?: SocketOptions): Socket {
  const { hostname, port } = typeof address === "string" ? parseAddress(address) : address;
  const secure = options?.secureTransport === "on";
  const socket: NodeSocket = secure
    ? tlsConnect({ host: hostname, port, ...(isIP(hostname) ? {} : { servername: hostname }) })
    : tcpConnect({ host: hostname, port });
  const opened = new Promise<SocketInfo>((done, fail) => {
    socket.once(secure ? "secureConnect" : "connect", () =>
      done({ remoteAddress: `${socket.remoteAddress}:${socket.remotePort}`, localAddress: `${socket.localAddress}:${socket.localPort}` }));
    socket.once("error", fail);
  });
  const closed = new Promise<void>((done) => socket.once("close", () => done()));
  // Rejections are observed by whoever awaits them (the transport); never report them twice.
  opened.catch(() => {});
  const { readable, writable } = Duplex.toWeb(socket);
  return {
    readable,
    writable,
    opened,
    closed,
    upgraded: false,
    secureTransport: secure ? "on" : "off",
    async close() {
      socket.destroy();
      await closed;
    },
    startTls() {
      throw new Error("startTls is not implemented by the Node test sockets");
    },
  } as unknown as Socket;
}

function parseAddress(address: string): { hostname: string; port: number } {
  const url = new URL(`tcp://${address}`);
  return { hostname: url.hostname, port: Number(url.port) };
}
