import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { Log } from "../runner.ts";
import type { Autoscaler } from "./loop.ts";

/**
 * The autoscaler's HTTP side, on PORT:
 * - GET /healthz → 200 with each target's replicas, whether it sleeps at zero, and the Redis
 *   commands the autoscaler has spent (Railway's healthcheck).
 * - POST /wake, `Authorization: Bearer <AUTOSCALER_WAKE_TOKEN>`, body optional:
 *   `{"queues": ["email"]}` (the edge's form) or `{"queue": "email"}` wakes the targets draining
 *   those queues; no body wakes them all. Answers 202 at once: the observation runs in the
 *   background (at most one per second per target) and never holds the caller, nor waits for
 *   Railway. Wrong or missing token → 401, with nothing about why.
 */

export interface WakeableTarget {
  name: string;
  queues: readonly string[];
  autoscaler: Autoscaler;
}

export interface AutoscalerServer {
  port: number;
  close(): Promise<void>;
}

const MAX_BODY = 4_096;

export async function startAutoscalerServer(options: {
  port: number;
  wakeToken: string;
  targets: readonly WakeableTarget[];
  log: Log;
  /** Extra facts for /healthz (command counts). */
  details?: () => Record<string, unknown>;
}): Promise<AutoscalerServer> {
  // Compared as SHA-256 digests: equal length whatever was sent, so timingSafeEqual never throws and
  // the comparison time says nothing about the token.
  const expected = createHash("sha256").update(`Bearer ${options.wakeToken}`).digest();
  const authorised = (req: IncomingMessage) =>
    timingSafeEqual(createHash("sha256").update(req.headers.authorization ?? "").digest(), expected);

  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    };
    if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
      return reply(200, {
        status: "ok",
        targets: options.targets.map((t) => {
          const s = t.autoscaler.status();
          return { name: t.name, queues: t.queues, replicas: s.replicas, asleep: s.asleep, backlog: s.last?.backlog ?? null };
        }),
        ...options.details?.(),
      });
    }
    if (path !== "/wake") return reply(404, { error: "not found" });
    if (req.method !== "POST") return reply(405, { error: "method not allowed" });
    if (!authorised(req)) {
      req.resume();
      return reply(401, { error: "unauthorized" });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on("end", () => {
      if (size > MAX_BODY) return reply(413, { error: "body too large" });
      const text = Buffer.concat(chunks).toString().trim();
      let queues: string[] | undefined;
      if (text !== "") {
        try {
          const body = JSON.parse(text) as { queue?: unknown; queues?: unknown };
          const list = [...(Array.isArray(body.queues) ? body.queues : []), ...(body.queue !== undefined ? [body.queue] : [])];
          if (!list.every((q) => typeof q === "string")) return reply(400, { error: "queue(s) must be strings" });
          queues = list.length > 0 ? (list as string[]) : undefined;
        } catch {
          return reply(400, { error: "body must be JSON" });
        }
      }
      const woken = options.targets.filter((t) => !queues || queues.some((q) => t.queues.includes(q)));
      for (const t of woken) t.autoscaler.wake(queues ? `wake ${queues.join(",")}` : "wake");
      reply(202, { woken: woken.map((t) => t.name) });
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
