// A stand-in for the autoscaler's wake endpoint that the edge's tests (inside workerd, which cannot
// listen) call over real HTTP. It records every request under the key in its path and reports them:
//   POST /wake/<key>   recorded, answered 202
//   POST /hang/<key>   recorded, never answered (until the server stops)
//   GET  /recorded/<key>  → [{ method, authorization, body }] in arrival order
// `downUrl` is a port nothing listens on: connections are refused.
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedWake {
  method: string;
  authorization: string | undefined;
  body: string;
}

export async function startWakeRecorder(): Promise<{ url: string; downUrl: string; stop(): Promise<void> }> {
  const recorded = new Map<string, RecordedWake[]>();
  const hanging = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const [, kind = "", key = ""] = (req.url ?? "").split("/");
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      if (req.method === "GET" && kind === "recorded") {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(recorded.get(key) ?? []));
        return;
      }
      const list = recorded.get(key) ?? [];
      list.push({ method: req.method ?? "", authorization: req.headers.authorization, body: Buffer.concat(chunks).toString() });
      recorded.set(key, list);
      if (kind === "hang") hanging.add(res);
      else res.writeHead(202, { "content-type": "application/json" }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const down = createServer();
  await new Promise<void>((resolve) => down.listen(0, "127.0.0.1", resolve));
  const downPort = (down.address() as AddressInfo).port;
  await new Promise<void>((resolve) => down.close(() => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    downUrl: `http://127.0.0.1:${downPort}/wake`,
    stop: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
