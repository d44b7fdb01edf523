// A local stand-in for the Resend API: records every request and answers from a script of
// responses (default: 200 with a fresh id), so tests drive the real Resend SDK via baseUrl.
import { randomUUID } from "node:crypto";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

export interface ScriptedResponse {
  status: number;
  body?: Record<string, unknown>;
  /** Hold the answer this long (e.g. to keep a job running across a SIGTERM or SIGKILL). */
  delayMs?: number;
}

export interface FakeResend {
  url: string;
  requests: RecordedRequest[];
  /** Queue answers for the next requests, in order; afterwards the default 200 applies. */
  respond(...responses: ScriptedResponse[]): void;
  /** Resolves when at least `n` requests have arrived. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

function reply(res: ServerResponse, answer: ScriptedResponse): void {
  if (res.destroyed) return;
  res.writeHead(answer.status, { "content-type": "application/json" });
  res.end(JSON.stringify(answer.body));
}

/** Resend's error body shape: `{ statusCode, name, message }`. */
export function resendError(status: number, name: string, message = name): ScriptedResponse {
  return { status, body: { statusCode: status, name, message } };
}

export async function startFakeResend(): Promise<FakeResend> {
  const requests: RecordedRequest[] = [];
  const script: ScriptedResponse[] = [];
  const waiters: Array<() => void> = [];
  // Resend's idempotency (24 h per key): a finished request's answer is replayed for the same key;
  // a key still in flight answers 409 concurrent_idempotent_requests. A request whose client went
  // away still counts as finished, as on the real service (the email was sent).
  const byKey = new Map<string, ScriptedResponse | "in-flight">();
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString()));
    req.on("end", () => {
      requests.push({
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: raw ? (JSON.parse(raw) as Record<string, unknown>) : {},
      });
      for (const w of waiters.splice(0)) w();
      const key = typeof req.headers["idempotency-key"] === "string" ? req.headers["idempotency-key"] : undefined;
      const earlier = key === undefined ? undefined : byKey.get(key);
      if (earlier === "in-flight") return reply(res, resendError(409, "concurrent_idempotent_requests"));
      if (earlier) return reply(res, { status: earlier.status, body: earlier.body });
      const scripted = script.shift() ?? { status: 200 };
      const answer = { ...scripted, body: scripted.body ?? { id: randomUUID() } };
      if (key === undefined || answer.status >= 400) return void later(() => reply(res, answer), answer.delayMs);
      byKey.set(key, "in-flight");
      const finish = () => void byKey.set(key, answer);
      res.once("close", finish);
      later(() => (finish(), reply(res, answer)), answer.delayMs);
    });
  });
  const later = (fn: () => void, ms = 0) => {
    const timer = setTimeout(() => (timers.delete(timer), fn()), ms);
    timers.add(timer);
  };
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    respond: (...responses) => void script.push(...responses),
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
        server.close(() => resolve());
      }),
  };
}
