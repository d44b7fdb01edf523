/**
 * TEST STAND-IN, not a product: a small HTTP server that speaks the subset of Upstash's Redis
 * REST API the edge uses, executing each command on a real redis-server. Nothing on npm serves
 * that API locally (DESIGN §2.3), and testing against a fake Redis would prove nothing about
 * BullMQ's scripts.
 *
 * Implemented, as Upstash documents and @upstash/redis relies on:
 * - `Authorization: Bearer <token>`, else HTTP 401 `{"error":"Unauthorized"}`;
 * - `POST /` with one command as a JSON array → `{"result": …}`, or HTTP 400 `{"error": "…"}`;
 * - `POST /pipeline` with an array of commands → `[{"result": …} | {"error": "…"}]`, not atomic;
 * - `Upstash-Encoding: base64`: every string result base64-encoded, except a literal "OK".
 * Not implemented: GET path-style commands, `_token` query auth, /multi-exec, read-your-writes.
 *
 * Tests can script the next requests' fate (`interpose`): an HTTP error status (before or after
 * running the commands), an answer that never comes, or a reset connection.
 *
 * Replies are read as Buffers (ioredis `callBuffer`), so binary values reach the client intact.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";

/** What happens to one upcoming authorised request instead of a normal answer. */
export type StandInAction =
  /** Answer `status` with `{error}`; with `afterRunning`, the commands ran first (answer lost upstream). */
  | { status: number; error: string; afterRunning?: boolean }
  /** Never answer (the request stays open until the client gives up or the stand-in stops). */
  | { hang: true }
  /** Reset the TCP connection without an HTTP answer. */
  | { reset: true };

export interface UpstashStandIn {
  /** `http://127.0.0.1:<port>` — what UPSTASH_REDIS_REST_URL would hold. */
  url: string;
  token: string;
  /** HTTP requests received (authorised or not); tests assert round trips with it. */
  readonly requests: number;
  /** Queues actions for the next authorised requests, one each, in order. */
  interpose(...actions: StandInAction[]): void;
  stop(): Promise<void>;
}

type Json = string | number | null | Json[];
type Command = Array<string | number>;

export async function startUpstashStandIn(options: { redisUrl: string; token: string }): Promise<UpstashStandIn> {
  // RESP2 like Upstash's REST layer (integers, bulk strings, arrays; no RESP3 maps).
  const redis = new Redis(options.redisUrl, { protocol: 2, maxRetriesPerRequest: 1 });
  let requests = 0;
  const scripted: StandInAction[] = [];

  async function execute(commands: Command[]): Promise<Array<{ result: unknown } | { error: string }>> {
    const pipeline = redis.pipeline();
    for (const [name, ...args] of commands) pipeline.callBuffer(String(name), ...args);
    const results = (await pipeline.exec()) ?? [];
    return results.map(([err, result]) => (err ? { error: err.message } : { result }));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    requests++;
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.headers.authorization !== `Bearer ${options.token}`) return send(401, { error: "Unauthorized" });
    if (req.method !== "POST") return send(405, { error: "ERR only POST is implemented by this stand-in" });

    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return send(400, { error: "ERR failed to parse command" });
    }
    const base64 = req.headers["upstash-encoding"] === "base64";
    const path = new URL(req.url ?? "/", "http://stand-in").pathname;
    const action = scripted.shift();
    if (action && "hang" in action) return;
    if (action && "reset" in action) return void req.socket.resetAndDestroy();
    if (path === "/pipeline") {
      if (!Array.isArray(body) || !body.every(isCommand)) return send(400, { error: "ERR pipeline must be an array of commands" });
      if (action && !action.afterRunning) return send(action.status, { error: action.error });
      const items = await execute(body);
      if (action) return send(action.status, { error: action.error });
      return send(200, items.map((item) => ("error" in item ? item : { result: toJson(item.result, base64) })));
    }
    if (path === "/") {
      if (!isCommand(body)) return send(400, { error: "ERR command must be a non-empty array" });
      if (action) return send(action.status, { error: action.error });
      const [item] = await execute([body]);
      if (!item || "error" in item) return send(400, { error: item?.error ?? "ERR no reply" });
      return send(200, { result: toJson(item.result, base64) });
    }
    return send(404, { error: `ERR ${path} is not implemented by this stand-in` });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    token: options.token,
    get requests() {
      return requests;
    },
    interpose(...actions) {
      scripted.push(...actions);
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
      await redis.quit().catch(() => {});
    },
  };
}

function isCommand(value: unknown): value is Command {
  return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string" || typeof v === "number");
}

/** ioredis Buffer-mode replies → Upstash's JSON result, base64-encoding strings when asked. */
function toJson(value: unknown, base64: boolean): Json {
  if (value === null || value === undefined) return null;
  if (typeof value === "number") return value;
  if (value instanceof Uint8Array || typeof value === "string") {
    const bytes = Buffer.from(value);
    const text = bytes.toString("utf8");
    return !base64 || text === "OK" ? text : bytes.toString("base64");
  }
  if (Array.isArray(value)) return value.map((v) => toJson(v, base64));
  throw new Error(`stand-in: unhandled reply type ${typeof value}`);
}
