// The REST probe's far end (fetch-ping-worker.ts), run by the benchmark as a child process so its
// CPU is not the load generator's: answers every POST /pipeline with what Upstash answers a
// pipelined PING (base64 encoding requested), after reading the body. It stands for the cheapest
// possible REST endpoint, with no Redis behind it. Prints its port, then serves until killed.
import { createServer } from "node:http";

const TOKEN = process.env.PING_TOKEN ?? "";
const REPLY = JSON.stringify([{ result: Buffer.from("PONG").toString("base64") }]);

const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    if (req.method !== "POST" || req.url !== "/pipeline" || req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(REPLY);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`${typeof address === "object" && address ? address.port : 0}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
