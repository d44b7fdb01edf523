import { describe, expect, it } from "vitest";
import { AutoscalerEnvError, parseAutoscalerEnv } from "./config.ts";

const target = { serviceId: "svc", environmentId: "env", queues: ["email", "audit"] };
const base = {
  REDIS_URL: "redis://:pw@127.0.0.1:6379",
  AUTOSCALER_TARGETS: JSON.stringify([target]),
  AUTOSCALER_WAKE_TOKEN: "w".repeat(32),
  RAILWAY_TOKEN: "project-token",
};

function problems(env: Record<string, string | undefined>): string[] {
  try {
    parseAutoscalerEnv(env);
  } catch (err) {
    if (err instanceof AutoscalerEnvError) return err.issues;
    throw err;
  }
  return [];
}

describe("parseAutoscalerEnv", () => {
  it("fills every default from KEDA's and HPA's where they exist", () => {
    const config = parseAutoscalerEnv(base);
    expect(config).toMatchObject({
      queuePrefix: "bull",
      railway: { kind: "project", token: "project-token" },
      railwayTimeoutMs: 10_000,
      dryRun: false,
      port: 8080,
    });
    expect(config.targets).toEqual([
      {
        name: "fleet",
        serviceId: "svc",
        environmentId: "env",
        queues: ["email", "audit"],
        settings: {
          minReplicas: 0, maxReplicas: 10, jobsPerReplica: 100, activationBacklog: 1, stabilizationSeconds: 300,
          scaleDownCooldownSeconds: 60, idleSeconds: 300, pollingIntervalSeconds: 30, safetyPollSeconds: 300, rateWindowSeconds: 60,
        },
      },
    ]);
  });

  it("takes a target's own settings over the AUTOSCALER_* defaults", () => {
    const config = parseAutoscalerEnv({
      ...base,
      AUTOSCALER_JOBS_PER_REPLICA: "20",
      AUTOSCALER_IDLE_SECONDS: "600",
      AUTOSCALER_TARGETS: JSON.stringify([{ ...target, name: "mail", region: "europe-west4", maxReplicas: 3, idleSeconds: 60 }]),
    });
    expect(config.targets[0]).toMatchObject({ name: "mail", region: "europe-west4", settings: { maxReplicas: 3, jobsPerReplica: 20, idleSeconds: 60 } });
  });

  it("takes the environment from RAILWAY_ENVIRONMENT_ID, which Railway sets on the autoscaler's service", () => {
    const config = parseAutoscalerEnv({ ...base, RAILWAY_ENVIRONMENT_ID: "env-own", AUTOSCALER_TARGETS: JSON.stringify([{ serviceId: "svc", queues: ["audit"] }]) });
    expect(config.targets[0]).toMatchObject({ serviceId: "svc", environmentId: "env-own" });
  });

  it("uses Authorization: Bearer for an account token (RAILWAY_API_TOKEN)", () => {
    expect(parseAutoscalerEnv({ ...base, RAILWAY_TOKEN: undefined, RAILWAY_API_TOKEN: "acct" }).railway).toEqual({ kind: "account", token: "acct" });
  });

  it.each<[string, Record<string, string | undefined>, string]>([
    ["REDIS_URL is required", { REDIS_URL: undefined }, "REDIS_URL: "],
    ["REDIS_URL must be redis:// or rediss://", { REDIS_URL: "http://x" }, "REDIS_URL: "],
    ["QUEUE_PREFIX follows the fleet's pattern", { QUEUE_PREFIX: "a:b" }, "QUEUE_PREFIX: 1–64 of A-Z a-z 0-9 _ . -"],
    ["AUTOSCALER_TARGETS is required", { AUTOSCALER_TARGETS: undefined }, "AUTOSCALER_TARGETS: "],
    ["AUTOSCALER_TARGETS must be JSON", { AUTOSCALER_TARGETS: "[{" }, "AUTOSCALER_TARGETS: not valid JSON"],
    ["AUTOSCALER_TARGETS needs at least one target", { AUTOSCALER_TARGETS: "[]" }, "AUTOSCALER_TARGETS: at least one target"],
    ["a target names known queues", { AUTOSCALER_TARGETS: JSON.stringify([{ ...target, queues: ["nope"] }]) }, 'AUTOSCALER_TARGETS[0]["queues"][0]: '],
    ["a target has at least one queue", { AUTOSCALER_TARGETS: JSON.stringify([{ ...target, queues: [] }]) }, 'AUTOSCALER_TARGETS[0]["queues"]: at least one queue'],
    ["a target has no unknown fields (typos)", { AUTOSCALER_TARGETS: JSON.stringify([{ ...target, maxReplica: 3 }]) }, "AUTOSCALER_TARGETS[0]: "],
    ["maxReplicas is at most Railway's 50", { AUTOSCALER_TARGETS: JSON.stringify([{ ...target, maxReplicas: 51 }]) }, 'AUTOSCALER_TARGETS[0]["maxReplicas"]: '],
    ["minReplicas is not above maxReplicas", { AUTOSCALER_TARGETS: JSON.stringify([{ ...target, minReplicas: 3, maxReplicas: 2 }]) }, "AUTOSCALER_TARGETS[0] (fleet): minReplicas 3 is above maxReplicas 2"],
    ["jobsPerReplica is positive", { AUTOSCALER_TARGETS: JSON.stringify([{ ...target, jobsPerReplica: 0 }]) }, 'AUTOSCALER_TARGETS[0]["jobsPerReplica"]: '],
    ["one queue belongs to one target", { AUTOSCALER_TARGETS: JSON.stringify([{ ...target, name: "a" }, { ...target, name: "b", queues: ["email"] }]) }, "AUTOSCALER_TARGETS[1] (b): queue email is already scaled by target a; one queue, one target"],
    ["target names are unique", { AUTOSCALER_TARGETS: JSON.stringify([{ ...target, name: "a", queues: ["email"] }, { ...target, name: "a", queues: ["audit"] }]) }, "AUTOSCALER_TARGETS[1] (a): duplicate name"],
    ["a target names its Railway service and environment", { AUTOSCALER_TARGETS: JSON.stringify([{ queues: ["email"] }]) }, "AUTOSCALER_TARGETS[0] (fleet): serviceId and environmentId are required"],
    ["a Railway token is required outside a dry run", { RAILWAY_TOKEN: undefined }, "RAILWAY_TOKEN / RAILWAY_API_TOKEN: one is required"],
    ["one Railway token, not both", { RAILWAY_API_TOKEN: "acct" }, "RAILWAY_TOKEN / RAILWAY_API_TOKEN: set one, not both"],
    ["the wake token is long enough to guess at no cost", { AUTOSCALER_WAKE_TOKEN: "short" }, "AUTOSCALER_WAKE_TOKEN: at least 32 characters"],
    ["the polling interval is at least a second", { AUTOSCALER_POLLING_INTERVAL_SECONDS: "0" }, "AUTOSCALER_POLLING_INTERVAL_SECONDS: "],
    ["the safety poll is a whole number of seconds", { AUTOSCALER_SAFETY_POLL_SECONDS: "1.5" }, "AUTOSCALER_SAFETY_POLL_SECONDS: "],
    ["RAILWAY_GRAPHQL_URL is http(s)", { RAILWAY_GRAPHQL_URL: "ftp://x" }, "RAILWAY_GRAPHQL_URL: "],
    ["the API timeout is bounded", { RAILWAY_API_TIMEOUT_MS: "120000" }, "RAILWAY_API_TIMEOUT_MS: "],
    ["DRY_RUN is a boolean", { DRY_RUN: "maybe" }, "DRY_RUN: "],
  ])("%s", (_title, overrides, message) => {
    expect(problems({ ...base, ...overrides })).toEqual(expect.arrayContaining([expect.stringContaining(message)]));
  });

  it("in a dry run needs neither a Railway token nor service ids", () => {
    const config = parseAutoscalerEnv({ ...base, RAILWAY_TOKEN: undefined, DRY_RUN: "1", AUTOSCALER_TARGETS: JSON.stringify([{ queues: ["audit"] }]) });
    expect(config).toMatchObject({ dryRun: true, targets: [{ name: "fleet", queues: ["audit"] }] });
    expect(config.railway).toBeUndefined();
  });

  it("lists every problem at once and never echoes a token", () => {
    const issues = problems({ ...base, REDIS_URL: undefined, AUTOSCALER_WAKE_TOKEN: "secret-but-short", RAILWAY_API_TOKEN: "acct-secret" });
    expect(issues).toHaveLength(3);
    expect(issues.join("\n")).not.toMatch(/secret/);
  });
});
