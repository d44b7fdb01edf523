// Test stand-in for Neon's WebSocket proxy: accepts `ws://host:port/v2?address=<pg-host>:<pg-port>`
// and pipes the binary WebSocket messages to a plain TCP connection to Postgres and back. Neon's
// proxy carries the raw Postgres wire protocol the same way, so the Neon driver can't tell.
// Written against RFC 6455 with node:http/node:net only (the `ws` package ships no types here).
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

export interface WsTcpBridge {
  port: number;
  /** Connections opened so far — lets a test prove traffic really went through the bridge. */
  readonly connections: number;
  close(): Promise<void>;
}

export async function startWsTcpBridge(): Promise<WsTcpBridge> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((_req, res) => res.writeHead(426).end());
  server.on("upgrade", (req: IncomingMessage, client: Socket) => {
    const address = new URL(req.url ?? "/", "http://bridge").searchParams.get("address") ?? "";
    const [host, port] = address.split(":");
    const key = req.headers["sec-websocket-key"];
    if (!host || !port || typeof key !== "string") return void client.destroy();
    connections++;
    sockets.add(client);
    const accept = createHash("sha1").update(key + WS_GUID).digest("base64");
    client.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    const upstream = connect(Number(port), host);
    sockets.add(upstream);
    upstream.on("data", (chunk: Buffer) => client.write(frame(0x2, chunk)));
    // A clean close handshake: a bare TCP reset reads as an error (1006) to the WebSocket client.
    const end = () => {
      upstream.destroy();
      if (client.writable) client.end(frame(0x8, Buffer.from([0x03, 0xe8])));
    };
    upstream.on("close", end).on("error", end);
    client.on("close", () => upstream.destroy()).on("error", () => upstream.destroy());

    let buffered = Buffer.alloc(0);
    client.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const parsed = parseFrame(buffered);
        if (!parsed) break;
        buffered = buffered.subarray(parsed.size);
        if (parsed.opcode === 0x8) return end();
        if (parsed.opcode === 0x9) client.write(frame(0xa, parsed.payload));
        else if (parsed.opcode <= 0x2) upstream.write(parsed.payload);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** One unmasked server→client frame (servers must not mask). */
function frame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const header =
    len < 126
      ? Buffer.from([0x80 | opcode, len])
      : len < 65_536
        ? Buffer.from([0x80 | opcode, 126, len >> 8, len & 0xff])
        : Buffer.concat([Buffer.from([0x80 | opcode, 127]), u64(len)]);
  return Buffer.concat([header, payload]);
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** Parses one client frame (always masked); undefined until the whole frame has arrived. */
function parseFrame(buf: Buffer): { opcode: number; payload: Buffer; size: number } | undefined {
  if (buf.length < 2) return undefined;
  const opcode = buf[0]! & 0x0f;
  const masked = (buf[1]! & 0x80) !== 0;
  let len = buf[1]! & 0x7f;
  let offset = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    offset = 4;
  } else if (len === 127) {
    if (buf.length < 10) return undefined;
    len = Number(buf.readBigUInt64BE(2));
    offset = 10;
  }
  const maskOffset = offset;
  if (masked) offset += 4;
  if (buf.length < offset + len) return undefined;
  const payload = Buffer.from(buf.subarray(offset, offset + len));
  if (masked) for (let i = 0; i < len; i++) payload[i]! ^= buf[maskOffset + (i % 4)]!;
  return { opcode, payload, size: offset + len };
}
