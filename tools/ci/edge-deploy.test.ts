/**
 * CI for the edge deploy (runs in `npm test`): each environment in wrangler.toml bundles with
 * `wrangler deploy --dry-run` within the size budget, the committed worker-configuration.d.ts is
 * what `wrangler types` generates today, and each deployed environment's vars plus its required
 * secrets are exactly what the edge needs to start (read through wrangler's own config loader, so
 * inheritance between the top level and environments is wrangler's, not a guess).
 */
import { unstable_readConfig } from "wrangler";
import { describe, expect, it } from "vitest";
import { EdgeEnv, parseEdgeEnv } from "../../edge/env.ts";
import { BUNDLE_BUDGET, DEPLOY_ENVIRONMENTS, dryRunDeploy, overBudget, runWrangler, WRANGLER_CONFIG } from "./edge-bundle.ts";

// wrangler bundles in seconds; the limits leave room for a loaded 2-core machine.
const WRANGLER_TIMEOUT_MS = 180_000;

/** Well-formed stand-ins for every secret the edge reads; none of them is real. */
const SAMPLE_SECRETS: Record<string, string> = {
  API_KEY_HASHES: "0".repeat(64),
  REDIS_URL: "rediss://default:sample@redis.example.com:6379",
  UPSTASH_REDIS_REST_URL: "https://sample.upstash.io",
  UPSTASH_REDIS_REST_TOKEN: "sample-token",
  STRIPE_WEBHOOK_SECRET: "whsec_sample",
};

/** The names EdgeEnv parses; it strips any other key, so a misspelt name is silently ignored. */
const EDGE_ENV_NAMES = Object.keys(EdgeEnv.in.shape);

/**
 * The parts of wrangler's resolved config read here. Its published types take `Config` from
 * @cloudflare/workers-utils, which wrangler bundles instead of installing, so they arrive as `any`.
 */
interface DeployedConfig {
  vars: Record<string, unknown>;
  secrets?: { required?: string[] };
  observability?: { enabled?: boolean; logs?: { invocation_logs?: boolean } };
  placement?: { mode?: string; region?: string; host?: string; hostname?: string };
}

function deployedConfig(env: string) {
  const config: DeployedConfig = unstable_readConfig({ config: WRANGLER_CONFIG, env }, { hideWarnings: true });
  const vars = Object.fromEntries(Object.entries(config.vars).map(([name, value]) => [name, String(value)]));
  return { config, vars, required: config.secrets?.required ?? [] };
}

function pick(from: Record<string, string>, names: readonly string[]): Record<string, string> {
  return Object.fromEntries(names.flatMap((name) => (from[name] === undefined ? [] : [[name, from[name]]])));
}

describe("edge deploy", () => {
  it.concurrent.each(DEPLOY_ENVIRONMENTS)(
    "wrangler deploy --dry-run --env %s builds the Worker within the bundle budget",
    async (env) => {
      const result = await dryRunDeploy(env);
      expect(result.code, result.output).toBe(0);
      expect(result.size?.files).toContain("worker.js");
      const size = result.size ?? { files: [], rawBytes: Infinity, gzipBytes: Infinity };
      expect(
        overBudget(size),
        `the ${env} bundle grew past BUNDLE_BUDGET (tools/ci/edge-bundle.ts): ${size.rawBytes} B raw, ${size.gzipBytes} B gzip`,
      ).toEqual([]);
      // A bundle that shrank to nothing would pass any budget: it must still be the real edge.
      expect(size.rawBytes).toBeGreaterThan(BUNDLE_BUDGET.rawBytes / 2);
    },
    WRANGLER_TIMEOUT_MS,
  );

  it(
    "the committed worker-configuration.d.ts is current (wrangler types --check)",
    async () => {
      const result = await runWrangler(["types", "--check", "--config", WRANGLER_CONFIG]);
      expect(result.code, `${result.output}\nregenerate with: npm run edge:types`).toBe(0);
      expect(result.output).toContain("up to date");
    },
    WRANGLER_TIMEOUT_MS,
  );

  describe.each(DEPLOY_ENVIRONMENTS)("the %s environment", (env) => {
    it("starts the edge from its vars and required secrets alone", () => {
      const { vars, required } = deployedConfig(env);
      expect(required.filter((name) => !EDGE_ENV_NAMES.includes(name)), "required secrets the edge never reads").toEqual([]);
      const parsed = parseEdgeEnv({ ...vars, ...pick(SAMPLE_SECRETS, required) });
      expect(parsed.API_KEY_HASHES).toEqual([{ digest: SAMPLE_SECRETS.API_KEY_HASHES }]);
    });

    it("requires only secrets the edge cannot start without", () => {
      const { vars, required } = deployedConfig(env);
      expect(required).toContain("API_KEY_HASHES");
      for (const name of required) {
        const without = pick(SAMPLE_SECRETS, required.filter((other) => other !== name));
        expect(() => parseEdgeEnv({ ...vars, ...without }), `${name} is declared required`).toThrow(name);
      }
    });

    it("sets only vars the edge reads, and no secret as a plain var", () => {
      const { vars } = deployedConfig(env);
      // A misspelt var would be stripped and the edge would silently run on the default.
      expect(Object.keys(vars).filter((name) => !EDGE_ENV_NAMES.includes(name))).toEqual([]);
      expect(Object.keys(vars).filter((name) => name in SAMPLE_SECRETS)).toEqual([]);
      expect(vars.QUEUE_PREFIX, "must match the fleet's QUEUE_PREFIX (default bull)").toBeDefined();
    });

    it("turns on observability and places the Worker next to Redis", () => {
      const { config } = deployedConfig(env);
      expect(config.observability?.enabled).toBe(true);
      expect(config.observability?.logs?.invocation_logs).not.toBe(false);
      const { mode, ...target } = config.placement ?? {};
      expect(mode ?? "targeted", "a region, host or hostname hint (mode may be omitted)").toBe("targeted");
      expect(Object.values(target).filter((value) => typeof value === "string" && value !== "")).toHaveLength(1);
    });
  });
});
