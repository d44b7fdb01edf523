import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Liveness and readiness over plain node:http.
 * - `/healthz`: 200 whenever the process can answer — restarting it would not help otherwise.
 * - `/readyz`: 200 only when every dependency answers (Redis PING, Postgres `select 1`), else 503
 *   naming the failing ones, so the platform holds traffic/deploys instead of killing the process.
 */

export type Check = () => Promise<void>;

export interface HealthOptions {
  /** 0 picks a free port (tests). */
  port: number;
  checks: Record<string, Check>;
  /** Per-check bound: a hung dependency reads as down, not as a hung probe. */
  checkTimeoutMs?: number;
  /**
   * Extra facts for `/readyz`'s body that don't decide readiness, e.g. queues held off because a
   * provider is down (the process is healthy and restarting it would not help).
   */
  details?: () => Record<string, unknown>;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface Readiness {
  ok: boolean;
  checks: Record<string, "ok" | string>;
}

export async function checkReadiness(checks: Record<string, Check>, timeoutMs: number): Promise<Readiness> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]): Promise<[string, string]> => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          check(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
        return [name, "ok"];
      } catch (err) {
        return [name, describeError(err)];
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return { ok: entries.every(([, v]) => v === "ok"), checks: Object.fromEntries(entries) };
}

/**
 * The innermost cause names the problem: Drizzle wraps driver errors as "Failed query: …", and a
 * refused connection is an AggregateError with an empty message but a `code`.
 */
function describeError(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  if (!(e instanceof Error)) return String(e);
  const code = (e as Error & { code?: unknown }).code;
  return [typeof code === "string" ? code : undefined, e.message || e.name].filter(Boolean).join(": ");
}

export async function startHealthServer(options: HealthOptions): Promise<HealthServer> {
  const timeoutMs = options.checkTimeoutMs ?? 2_000;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    };
    if (req.method !== "GET" && req.method !== "HEAD") return reply(405, { error: "method not allowed" });
    if (path === "/healthz") return reply(200, { status: "ok" });
    if (path === "/readyz") {
      checkReadiness(options.checks, timeoutMs).then(
        (r) => reply(r.ok ? 200 : 503, { status: r.ok ? "ready" : "not ready", checks: r.checks, ...options.details?.() }),
        (err: unknown) => reply(503, { status: "not ready", error: String(err) }),
      );
      return;
    }
    reply(404, { error: "not found" });
  });
  // Probes are short; don't let a keep-alive probe connection delay shutdown.
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
