import type { Log } from "../runner.ts";

/**
 * Replicas of one Railway service through Railway's public GraphQL API, the way its CLI
 * (railwayapp/cli 5.43, `railway scale`) does it today:
 * - endpoint `https://backboard.railway.com/graphql/v2` (RAILWAY_GRAPHQL_URL overrides it: tests);
 * - a project token goes in the `Project-Access-Token` header, an account or workspace token in
 *   `Authorization: Bearer` (src/client.rs);
 * - read: `environment(id) { config }` → `services[id].deploy.multiRegionConfig[region].numReplicas`
 *   (the CLI notes that the legacy `ServiceInstance.numReplicas` reads 1 for multi-region services);
 * - write: `environmentPatchCommit(environmentId, patch: { services: { [id]: { deploy: {
 *   multiRegionConfig: { [region]: { numReplicas } } } } } })`, which `railway scale` commits
 *   without a separate deploy call. `serviceInstanceUpdate(input: { numReplicas })` still exists but
 *   is the legacy single-region field the CLI no longer uses for scaling.
 * - 429 carries `Retry-After` (seconds) on every answer (the CLI's comment on Railway's backboard).
 * The token never appears in a log line or an error message.
 */

export const RAILWAY_GRAPHQL_URL = "https://backboard.railway.com/graphql/v2";

export interface RailwayAuth {
  /** "project": Project-Access-Token header; "account": Authorization: Bearer (account/workspace token). */
  kind: "project" | "account";
  token: string;
}

export interface RailwayService {
  serviceId: string;
  environmentId: string;
  /** The region whose replicas are set; default: the service's only configured region. */
  region?: string;
}

export class RailwayApiError extends Error {
  readonly status: number | undefined;
  /** From a 429's Retry-After: wait this long before the next call. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, status?: number, retryAfterMs?: number) {
    super(message);
    this.name = "RailwayApiError";
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

export interface RailwayClient {
  request<T>(query: string, variables: Record<string, unknown>): Promise<T>;
}

export function createRailwayClient(options: { url?: string; auth: RailwayAuth; timeoutMs?: number }): RailwayClient {
  const url = options.url ?? RAILWAY_GRAPHQL_URL;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const { auth } = options;
  const scrub = (text: string) => (auth.token ? text.replaceAll(auth.token, "[token]") : text);
  return {
    async request<T>(query: string, variables: Record<string, unknown>): Promise<T> {
      const headers: Record<string, string> = { "content-type": "application/json", "user-agent": "edgefleet-autoscaler" };
      if (auth.kind === "project") headers["project-access-token"] = auth.token;
      else headers.authorization = `Bearer ${auth.token}`;
      let res: Response;
      try {
        res = await fetch(url, { method: "POST", headers, body: JSON.stringify({ query, variables }), signal: AbortSignal.timeout(timeoutMs) });
      } catch (err) {
        const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
        throw new RailwayApiError(timedOut ? `Railway API did not answer within ${timeoutMs} ms` : `Railway API unreachable: ${scrub(err instanceof Error ? err.message : String(err))}`);
      }
      const text = await res.text().catch(() => "");
      if (res.status === 429) {
        const seconds = Number(res.headers.get("retry-after"));
        throw new RailwayApiError("Railway API rate limit (429)", 429, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 60_000);
      }
      if (!res.ok) throw new RailwayApiError(`Railway API answered ${res.status}: ${scrub(text.slice(0, 200))}`, res.status);
      let body: { data?: T; errors?: Array<{ message?: string }> };
      try {
        body = JSON.parse(text) as typeof body;
      } catch {
        throw new RailwayApiError(`Railway API answered ${res.status} with a body that is not JSON`, res.status);
      }
      if (body.errors?.length) throw new RailwayApiError(`Railway API error: ${scrub(body.errors.map((e) => e.message ?? "?").join("; ").slice(0, 300))}`, res.status);
      if (body.data === undefined || body.data === null) throw new RailwayApiError("Railway API answered without data", res.status);
      return body.data;
    },
  };
}

const READ = `query AutoscalerReplicas($environmentId: String!) {
  environment(id: $environmentId) { id config(decryptVariables: false) }
}`;

const WRITE = `mutation AutoscalerScale($environmentId: String!, $patch: EnvironmentConfig!, $commitMessage: String) {
  environmentPatchCommit(environmentId: $environmentId, patch: $patch, commitMessage: $commitMessage)
}`;

type RegionConfig = Record<string, { numReplicas?: number } | null>;
interface EnvironmentConfigReply {
  environment: { config: { services?: Record<string, { deploy?: { multiRegionConfig?: RegionConfig; numReplicas?: number; region?: string } }> } };
}

export interface RailwayDriver {
  current(): Promise<number>;
  apply(replicas: number): Promise<void>;
}

/**
 * `current()` reads Railway once, then answers from what this driver last applied, re-reading
 * every `refreshMs` (default 5 min) in case someone scaled by hand: one API call per poll would
 * spend the plan's rate limit for nothing.
 */
export function createRailwayDriver(client: RailwayClient, service: RailwayService, options: { log: Log; refreshMs?: number; now?: () => number }): RailwayDriver {
  const refreshMs = options.refreshMs ?? 300_000;
  const now = options.now ?? Date.now;
  let known: { replicas: number; region: string; at: number } | undefined;

  async function read(): Promise<{ replicas: number; region: string }> {
    const data = await client.request<EnvironmentConfigReply>(READ, { environmentId: service.environmentId });
    const deploy = data.environment.config.services?.[service.serviceId]?.deploy;
    if (!deploy) throw new RailwayApiError(`service ${service.serviceId} has no deploy config in environment ${service.environmentId}`);
    const regions: RegionConfig = deploy.multiRegionConfig ?? (deploy.region ? { [deploy.region]: { numReplicas: deploy.numReplicas ?? 1 } } : {});
    const configured = Object.entries(regions).filter(([, v]) => v !== null);
    let region = service.region;
    if (!region) {
      if (configured.length !== 1) {
        throw new RailwayApiError(
          `service ${service.serviceId} has ${configured.length} regions configured (${configured.map(([r]) => r).join(", ") || "none"}); name the one to scale in the target's "region"`,
        );
      }
      region = configured[0]![0];
    }
    return { replicas: regions[region]?.numReplicas ?? 0, region };
  }

  return {
    async current() {
      if (!known || now() - known.at >= refreshMs) known = { ...(await read()), at: now() };
      return known.replicas;
    },
    async apply(replicas) {
      const region = known?.region ?? (await read()).region;
      const patch = { services: { [service.serviceId]: { deploy: { multiRegionConfig: { [region]: { numReplicas: replicas } } } } } };
      try {
        await client.request(WRITE, { environmentId: service.environmentId, patch, commitMessage: `autoscaler: ${replicas} replica(s)` });
      } catch (err) {
        // The outcome is unknown (a timeout may still have applied): read again next time.
        known = undefined;
        throw err;
      }
      known = { replicas, region, at: now() };
      options.log("info", "railway replicas set", { service: service.serviceId, region, replicas });
    },
  };
}
