import { z } from "zod";
import { DEFAULT_QUEUE_PREFIX, QUEUE_PREFIX_PATTERN, type QueueName } from "../../shared/jobs/contract.ts";
import { QUEUE_NAMES } from "../../shared/jobs/registry.ts";
import type { LoopSettings } from "./loop.ts";
import { DEFAULT_POLICY } from "./policy.ts";
import type { RailwayAuth } from "./railway.ts";

/**
 * The autoscaler's configuration (`node worker/autoscaler/main.ts`), parsed once; every problem is
 * listed with the variable it comes from.
 *
 * AUTOSCALER_TARGETS is a JSON array, one entry per Railway service the autoscaler scales:
 *   [{ "name": "fleet", "serviceId": "…", "queues": ["email", "audit"],
 *      "minReplicas": 0, "maxReplicas": 5, "jobsPerReplica": 100 }]
 * `environmentId` defaults to RAILWAY_ENVIRONMENT_ID, which Railway gives the autoscaler's own
 * service: the fleet it scales is normally in the same environment.
 * Policy fields left out take the AUTOSCALER_* defaults below.
 */

/** Railway's own ceiling: 50 replicas in total across a service's regions (CLI MAX_TOTAL_REPLICAS). */
export const RAILWAY_MAX_REPLICAS = 50;

const seconds = (max: number) => z.coerce.number().int().min(0).max(max);
const optionalString = z
  .string()
  .trim()
  .transform((s) => (s === "" ? undefined : s))
  .optional();

const Target = z
  .object({
    name: z.string().regex(/^[\w.-]{1,64}$/, "1–64 of A-Z a-z 0-9 _ . -").optional(),
    serviceId: z.string().trim().min(1).optional(),
    environmentId: z.string().trim().min(1).optional(),
    region: z.string().trim().min(1).optional(),
    queues: z.array(z.enum(QUEUE_NAMES as [QueueName, ...QueueName[]])).min(1, "at least one queue"),
    minReplicas: z.number().int().min(0).max(RAILWAY_MAX_REPLICAS).optional(),
    maxReplicas: z.number().int().min(1).max(RAILWAY_MAX_REPLICAS).optional(),
    jobsPerReplica: z.number().int().positive().optional(),
    activationBacklog: z.number().int().positive().optional(),
    stabilizationSeconds: z.number().int().min(0).max(3_600).optional(),
    scaleDownCooldownSeconds: z.number().int().min(0).max(3_600).optional(),
    idleSeconds: z.number().int().min(0).max(86_400).optional(),
  })
  .strict();

const EnvSchema = z.object({
  REDIS_URL: z.url({ protocol: /^rediss?$/ }),
  REDIS_CA_CERT: optionalString,
  QUEUE_PREFIX: z.string().regex(QUEUE_PREFIX_PATTERN, "1–64 of A-Z a-z 0-9 _ . -").default(DEFAULT_QUEUE_PREFIX),
  AUTOSCALER_TARGETS: z.string().trim().min(1, "required: a JSON array of targets"),
  /** KEDA pollingInterval: seconds between polls while a target runs replicas. */
  AUTOSCALER_POLLING_INTERVAL_SECONDS: seconds(3_600).pipe(z.number().min(1)).default(30),
  /** At zero: the longest sleep without a wake or a due delayed job. */
  AUTOSCALER_SAFETY_POLL_SECONDS: seconds(86_400).pipe(z.number().min(1)).default(300),
  AUTOSCALER_RATE_WINDOW_SECONDS: seconds(3_600).pipe(z.number().min(1)).default(60),
  AUTOSCALER_MIN_REPLICAS: seconds(RAILWAY_MAX_REPLICAS).default(DEFAULT_POLICY.minReplicas),
  AUTOSCALER_MAX_REPLICAS: seconds(RAILWAY_MAX_REPLICAS).pipe(z.number().min(1)).default(DEFAULT_POLICY.maxReplicas),
  AUTOSCALER_JOBS_PER_REPLICA: z.coerce.number().int().positive().default(DEFAULT_POLICY.jobsPerReplica),
  AUTOSCALER_ACTIVATION_BACKLOG: z.coerce.number().int().positive().default(DEFAULT_POLICY.activationBacklog),
  AUTOSCALER_STABILIZATION_SECONDS: seconds(3_600).default(DEFAULT_POLICY.stabilizationSeconds),
  AUTOSCALER_SCALE_DOWN_COOLDOWN_SECONDS: seconds(3_600).default(DEFAULT_POLICY.scaleDownCooldownSeconds),
  AUTOSCALER_IDLE_SECONDS: seconds(86_400).default(DEFAULT_POLICY.idleSeconds),
  /** Bearer token POST /wake must carry (the edge's AUTOSCALER_WAKE_TOKEN). */
  AUTOSCALER_WAKE_TOKEN: z.string().min(32, "at least 32 characters (e.g. openssl rand -hex 32)"),
  /** Railway project token (header Project-Access-Token), as the Railway CLI names it. */
  RAILWAY_TOKEN: optionalString,
  /** Railway account or workspace token (Authorization: Bearer), as the Railway CLI names it. */
  RAILWAY_API_TOKEN: optionalString,
  RAILWAY_GRAPHQL_URL: z.url({ protocol: /^https?$/ }).optional(),
  RAILWAY_API_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  /** Print decisions, call nothing (no Railway API call, reads or writes). */
  DRY_RUN: z.preprocess((v) => (typeof v === "string" && v.trim() === "" ? undefined : v), z.stringbool().default(false)),
  PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
});

export interface TargetConfig {
  name: string;
  serviceId: string;
  environmentId: string;
  region?: string;
  queues: QueueName[];
  settings: LoopSettings;
}

export interface AutoscalerConfig {
  redisUrl: string;
  redisCaCertPath?: string;
  queuePrefix: string;
  targets: TargetConfig[];
  wakeToken: string;
  /** Undefined only in a dry run. */
  railway?: RailwayAuth;
  railwayUrl?: string;
  railwayTimeoutMs: number;
  dryRun: boolean;
  port: number;
}

export class AutoscalerEnvError extends Error {
  readonly issues: string[];
  constructor(issues: string[]) {
    super(`invalid autoscaler configuration:\n  - ${issues.join("\n  - ")}`);
    this.name = "AutoscalerEnvError";
    this.issues = issues;
  }
}

export function parseAutoscalerEnv(source: Record<string, string | undefined>): AutoscalerConfig {
  const result = EnvSchema.safeParse(source);
  const issues = result.success ? [] : result.error.issues.map((i) => `${i.path.join(".") || "(env)"}: ${i.message}`);
  const env = result.data;

  let rawTargets: unknown;
  try {
    rawTargets = source.AUTOSCALER_TARGETS?.trim() ? JSON.parse(source.AUTOSCALER_TARGETS) : undefined;
  } catch {
    issues.push("AUTOSCALER_TARGETS: not valid JSON");
  }
  const targets: TargetConfig[] = [];
  if (rawTargets !== undefined) {
    const parsed = z.array(Target).min(1, "at least one target").safeParse(rawTargets);
    if (!parsed.success) {
      issues.push(...parsed.error.issues.map((i) => `AUTOSCALER_TARGETS${i.path.map((p) => `[${JSON.stringify(p)}]`).join("")}: ${i.message}`));
    } else if (env) {
      const seenQueues = new Map<QueueName, string>();
      const seenNames = new Set<string>();
      parsed.data.forEach((t, i) => {
        const name = t.name ?? (parsed.data.length === 1 ? "fleet" : `target-${i}`);
        const where = `AUTOSCALER_TARGETS[${i}] (${name})`;
        if (seenNames.has(name)) issues.push(`${where}: duplicate name`);
        seenNames.add(name);
        for (const q of t.queues) {
          const other = seenQueues.get(q);
          if (other !== undefined) issues.push(`${where}: queue ${q} is already scaled by target ${other}; one queue, one target`);
          seenQueues.set(q, name);
        }
        const environmentId = t.environmentId ?? (source.RAILWAY_ENVIRONMENT_ID?.trim() || undefined);
        if (!env.DRY_RUN && (!t.serviceId || !environmentId)) issues.push(`${where}: serviceId and environmentId are required (Railway service settings; the dashboard's URL shows both; environmentId defaults to RAILWAY_ENVIRONMENT_ID)`);
        const settings: LoopSettings = {
          minReplicas: t.minReplicas ?? env.AUTOSCALER_MIN_REPLICAS,
          maxReplicas: t.maxReplicas ?? env.AUTOSCALER_MAX_REPLICAS,
          jobsPerReplica: t.jobsPerReplica ?? env.AUTOSCALER_JOBS_PER_REPLICA,
          activationBacklog: t.activationBacklog ?? env.AUTOSCALER_ACTIVATION_BACKLOG,
          stabilizationSeconds: t.stabilizationSeconds ?? env.AUTOSCALER_STABILIZATION_SECONDS,
          scaleDownCooldownSeconds: t.scaleDownCooldownSeconds ?? env.AUTOSCALER_SCALE_DOWN_COOLDOWN_SECONDS,
          idleSeconds: t.idleSeconds ?? env.AUTOSCALER_IDLE_SECONDS,
          pollingIntervalSeconds: env.AUTOSCALER_POLLING_INTERVAL_SECONDS,
          safetyPollSeconds: env.AUTOSCALER_SAFETY_POLL_SECONDS,
          rateWindowSeconds: env.AUTOSCALER_RATE_WINDOW_SECONDS,
        };
        if (settings.minReplicas > settings.maxReplicas) issues.push(`${where}: minReplicas ${settings.minReplicas} is above maxReplicas ${settings.maxReplicas}`);
        targets.push({
          name,
          serviceId: t.serviceId ?? "",
          environmentId: environmentId ?? "",
          ...(t.region ? { region: t.region } : {}),
          queues: [...new Set(t.queues)],
          settings,
        });
      });
    }
  }

  // Read from the source, so these are listed even when other variables are wrong.
  let railway: RailwayAuth | undefined;
  const projectToken = source.RAILWAY_TOKEN?.trim() || undefined;
  const accountToken = source.RAILWAY_API_TOKEN?.trim() || undefined;
  const dryRun = env?.DRY_RUN ?? false;
  if (projectToken && accountToken) issues.push("RAILWAY_TOKEN / RAILWAY_API_TOKEN: set one, not both (project token or account token)");
  else if (projectToken) railway = { kind: "project", token: projectToken };
  else if (accountToken) railway = { kind: "account", token: accountToken };
  else if (!dryRun) issues.push("RAILWAY_TOKEN / RAILWAY_API_TOKEN: one is required (a project token scoped to the fleet's environment is enough), or DRY_RUN=1");

  if (issues.length > 0 || !env) throw new AutoscalerEnvError(issues);
  return {
    redisUrl: env.REDIS_URL,
    ...(env.REDIS_CA_CERT ? { redisCaCertPath: env.REDIS_CA_CERT } : {}),
    queuePrefix: env.QUEUE_PREFIX,
    targets,
    wakeToken: env.AUTOSCALER_WAKE_TOKEN,
    ...(railway ? { railway } : {}),
    ...(env.RAILWAY_GRAPHQL_URL ? { railwayUrl: env.RAILWAY_GRAPHQL_URL } : {}),
    railwayTimeoutMs: env.RAILWAY_API_TIMEOUT_MS,
    dryRun: env.DRY_RUN,
    port: env.PORT,
  };
}
