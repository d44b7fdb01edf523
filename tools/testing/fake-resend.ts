// A local stand-in for the Resend API: records every request and answers from a script of
// responses (default: 200 with a fresh id), so tests drive the real Resend SDK via baseUrl.
// It keeps Resend's idempotency semantics and can be made unreachable (refused or reset
// connections) or drop a connection after accepting a message, to test what the worker does when
// an answer never arrives.
import { randomUUID } from "node:crypto";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
  /** Date.now() when the request arrived. */
  at: number;
}

/** A message Resend would deliver: the first 2xx for an idempotency key (or any 2xx without one). */
export interface AcceptedMessage {
  id: string;
  idempotencyKey: string | undefined;
  body: Record<string, unknown>;
  at: number;
}

export interface ScriptedResponse {
  status: number;
  body?: Record<string, unknown>;
  headers?: Record<string, string>;
  /** Hold the answer this long (e.g. to keep a job running across a SIGTERM or SIGKILL). */
  delayMs?: number;
  /**
   * Accept the message (a 2xx: it counts as sent and its key is settled) but reset the connection
   * instead of answering: the client sees a network error although the email went out.
   */
  dropAfterAccept?: boolean;
}

/**
 * "refuse": nothing listens on the port (connection refused); "reset": connections are accepted
 * and reset at once. Either way open keep-alive connections are cut first.
 */
export type ResendOutage = "refuse" | "reset";

export interface FakeResend {
  url: string;
  requests: RecordedRequest[];
  /** What was accepted for sending, one entry per message Resend would deliver. */
  accepted: AcceptedMessage[];
  /** Queue answers for the next requests, in order; afterwards the default 200 applies. */
  respond(...responses: ScriptedResponse[]): void;
  /** Makes the server unreachable until `outage(undefined)`; resolves when the change is in effect. */
  outage(mode: ResendOutage | undefined): Promise<void>;
  /** Connections reset while in "reset" mode. */
  readonly resets: number;
  /** Resolves when at least `n` requests have arrived. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

function reply(res: ServerResponse, answer: ScriptedResponse): void {
  if (res.destroyed) return;
  res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
  res.end(JSON.stringify(answer.body));
}

/** Resend's error body shape: `{ statusCode, name, message }`. */
export function resendError(status: number, name: string, message = name, headers?: Record<string, string>): ScriptedResponse {
  return { status, body: { statusCode: status, name, message }, ...(headers ? { headers } : {}) };
}

export async function startFakeResend(): Promise<FakeResend> {
  const requests: RecordedRequest[] = [];
  const accepted: AcceptedMessage[] = [];
  const script: ScriptedResponse[] = [];
  const waiters: Array<() => void> = [];
  const sockets = new Set<Socket>();
  let mode: ResendOutage | undefined;
  let resets = 0;
  // Resend's idempotency (24 h per key): a finished request's answer is replayed for the same key;
  // a key still in flight answers 409 concurrent_idempotent_requests. A request whose client went
  // away still counts as finished, as on the real service (the email was sent).
  const byKey = new Map<string, ScriptedResponse | "in-flight">();
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    const at = Date.now();
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString()));
    req.on("end", () => {
      const body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
      requests.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body, at });
      for (const w of waiters.splice(0)) w();
      const key = typeof req.headers["idempotency-key"] === "string" ? req.headers["idempotency-key"] : undefined;
      const earlier = key === undefined ? undefined : byKey.get(key);
      if (earlier === "in-flight") return reply(res, resendError(409, "concurrent_idempotent_requests"));
      if (earlier) return reply(res, { status: earlier.status, body: earlier.body, ...(earlier.headers ? { headers: earlier.headers } : {}) });
      const scripted = script.shift() ?? { status: 200 };
      const answer = { ...scripted, body: scripted.body ?? { id: randomUUID() } };
      if (answer.status >= 400) return void later(() => reply(res, answer), answer.delayMs);
      const accept = () => {
        if (key !== undefined) byKey.set(key, answer);
        accepted.push({ id: String(answer.body.id), idempotencyKey: key, body, at });
      };
      if (answer.dropAfterAccept) {
        accept();
        return void later(() => req.socket.resetAndDestroy(), answer.delayMs);
      }
      if (key === undefined) {
        accept();
        return void later(() => reply(res, answer), answer.delayMs);
      }
      byKey.set(key, "in-flight");
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        accept();
      };
      res.once("close", finish);
      later(() => (finish(), reply(res, answer)), answer.delayMs);
    });
  });
  server.on("connection", (socket: Socket) => {
    if (mode === "reset") {
      resets++;
      socket.resetAndDestroy();
      return;
    }
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  const later = (fn: () => void, ms = 0) => {
    const timer = setTimeout(() => (timers.delete(timer), fn()), ms);
    timers.add(timer);
  };
  const cutOpenConnections = () => {
    for (const s of sockets) s.resetAndDestroy();
    sockets.clear();
  };
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    accepted,
    get resets() {
      return resets;
    },
    respond: (...responses) => void script.push(...responses),
    outage: async (next) => {
      if (next === mode) return;
      const wasListening = mode !== "refuse";
      mode = next;
      if (next !== undefined) cutOpenConnections();
      if (next === "refuse" && wasListening) {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      } else if (next !== "refuse" && !wasListening) {
        // Same port again, as a restarted service would come back.
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen(port, "127.0.0.1", () => (server.off("error", reject), resolve()));
        });
      }
    },
    waitForRequests: async (n, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      while (requests.length < n) {
        if (Date.now() > deadline) throw new Error(`expected ${n} requests, got ${requests.length}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.closeAllConnections();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
  };
}
