import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import { Hono } from "hono";
import { bearerAuth } from "hono/bearer-auth";

/**
 * The worker's operations server (a small Hono app on @hono/node-server):
 * - `/healthz`: 200 whenever the process can answer — restarting it would not help otherwise.
 * - `/readyz`: 200 only when every dependency answers (Redis PING, Postgres `select 1`), else 503
 *   naming the failing ones, so the platform holds traffic/deploys instead of killing the process.
 * - `/metrics`: Prometheus text (worker/metrics.ts), behind a bearer token when one is configured.
 * - `/dashboard`: the queue dashboard (worker/dashboard.ts) when configured, with its own auth.
 * In roles `api` and `all` the API server routes these paths to the same app (worker/api/server.ts).
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
  /** `/metrics` (worker/metrics.ts `createMetrics`); absent → 404. */
  metrics?: { readonly contentType: string; render(): Promise<string> } | undefined;
  /** `Authorization: Bearer <token>` required on `/metrics` when set (METRICS_TOKEN). */
  metricsToken?: string | undefined;
  /** Mounted under `/dashboard` (worker/dashboard.ts), authentication included; absent → 404. */
  dashboard?: { fetch(request: Request): Response | Promise<Response> } | undefined;
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

/** Paths the operations app answers; the API server (roles api, all) routes exactly these to it. */
export function isOpsPath(path: string, options: Pick<HealthOptions, "metrics" | "dashboard">): boolean {
  if (path === "/healthz" || path === "/readyz") return true;
  if (path === "/metrics") return options.metrics !== undefined;
  return options.dashboard !== undefined && (path === "/dashboard" || path.startsWith("/dashboard/"));
}

export function createOpsApp(options: Omit<HealthOptions, "port">): Hono {
  const timeoutMs = options.checkTimeoutMs ?? 2_000;
  const app = new Hono();
  const noStore = { "cache-control": "no-store" };
  app.on(["POST", "PUT", "PATCH", "DELETE", "OPTIONS"], ["/healthz", "/readyz", "/metrics"], (c) => c.json({ error: "method not allowed" }, 405));
  app.get("/healthz", (c) => c.json({ status: "ok" }, 200, noStore));
  app.get("/readyz", async (c) => {
    try {
      const r = await checkReadiness(options.checks, timeoutMs);
      return c.json({ status: r.ok ? "ready" : "not ready", checks: r.checks, ...options.details?.() }, r.ok ? 200 : 503, noStore);
    } catch (err) {
      return c.json({ status: "not ready", error: String(err) }, 503, noStore);
    }
  });
  const { metrics, metricsToken, dashboard } = options;
  if (metrics) {
    if (metricsToken) app.use("/metrics", bearerAuth({ token: metricsToken }));
    app.get("/metrics", async (c) => c.body(await metrics.render(), 200, { "content-type": metrics.contentType, ...noStore }));
  }
  if (dashboard) app.all("/dashboard/*", (c) => dashboard.fetch(c.req.raw));
  app.notFound((c) => c.json({ error: "not found" }, 404));
  return app;
}

export async function startHealthServer(options: HealthOptions): Promise<HealthServer> {
  const app = createOpsApp(options);
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
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
