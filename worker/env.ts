import { z } from "zod";
import { DEFAULT_QUEUE_PREFIX, QUEUE_PREFIX_PATTERN, type QueueName } from "../shared/jobs/contract.ts";
import { QUEUE_NAMES } from "../shared/jobs/registry.ts";
import { DEFAULT_JOB_LOG, type JobLogSettings } from "./job-log.ts";

/**
 * The worker's whole configuration, parsed once at the entry point. Nothing else in worker/ reads
 * process.env: modules receive the parsed `WorkerConfig` (or the slice they need) as an argument.
 */

/** `WORKER_CONCURRENCY_<QUEUE>`: queue name upper-cased, `-` → `_` (e.g. WORKER_CONCURRENCY_STRIPE_WEBHOOK). */
export function concurrencyVar(queue: QueueName): string {
  return `WORKER_CONCURRENCY_${queue.toUpperCase().replaceAll("-", "_")}`;
}

const positiveInt = z.coerce.number().int().positive();
const optionalString = z
  .string()
  .trim()
  .transform((s) => (s === "" ? undefined : s))
  .optional();

const queueList = z
  .string()
  .trim()
  .optional()
  .transform((raw, ctx): QueueName[] => {
    if (raw === undefined || raw === "" || raw === "all") return [...QUEUE_NAMES];
    const names = [...new Set(raw.split(",").map((s) => s.trim()).filter((s) => s !== ""))];
    const unknown = names.filter((n) => !(QUEUE_NAMES as string[]).includes(n));
    if (unknown.length > 0) {
      ctx.addIssue({
        code: "custom",
        message: `unknown queue(s) ${unknown.join(", ")}; known: ${QUEUE_NAMES.join(", ")} or "all"`,
      });
      return z.NEVER;
    }
    return names as QueueName[];
  });

const redisUrl = z
  .url({ protocol: /^rediss?$/ })
  .describe("redis://[:password@]host:port[/db] or rediss:// for TLS");

const perQueueConcurrency = Object.fromEntries(
  QUEUE_NAMES.map((q) => [concurrencyVar(q), positiveInt.optional()]),
);

/** AUDIT_WRITES_IN_FLIGHT's default, and the audit handler's (worker/audit/handler.ts). */
export const DEFAULT_AUDIT_WRITES_IN_FLIGHT = 3;

const EnvSchema = z.object({
  REDIS_URL: redisUrl,
  /** PEM file with the CA that signed the Redis server's certificate (private CAs, tests). */
  REDIS_CA_CERT: optionalString,
  QUEUE_PREFIX: z.string().regex(QUEUE_PREFIX_PATTERN, "1–64 of A-Z a-z 0-9 _ . -").default(DEFAULT_QUEUE_PREFIX),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }),
  /** Default: "neon" for *.neon.tech hosts, else "pg". */
  DATABASE_DRIVER: z.enum(["pg", "neon"]).optional(),
  WORKER_QUEUES: queueList,
  WORKER_CONCURRENCY: positiveInt.default(10),
  ...perQueueConcurrency,
  /**
   * Seconds a worker's BZPOPMIN blocks while its queue is empty (BullMQ default 5). Each timeout
   * costs 2 commands (BZPOPMIN + moveToActive) per queue; a new job wakes the call at once, so this
   * does not delay pickup. It bounds how long a silently dead blocking connection goes unnoticed
   * (BullMQ's watchdog fires after drainDelay + 1 s) and must stay below any proxy idle timeout.
   * Budget: tools/bench/idle-budget.ts.
   */
  WORKER_DRAIN_DELAY_SECONDS: positiveInt.max(300).default(15),
  /**
   * How often each queue's worker runs the stalled-jobs check (BullMQ default 30 000 ms): 1
   * command per queue per interval. A crashed worker's job is retried after its lock lapses and
   * at most about two intervals — the cost of a higher value is slower crash recovery.
   */
  WORKER_STALLED_INTERVAL_MS: positiveInt.min(1_000).default(60_000),
  /**
   * How long a running job's lock lasts without renewal (BullMQ default 30 000 ms; renewed every
   * half of it). A crashed worker's jobs are retried only after it lapses: lower = faster recovery,
   * but it must outlast any event-loop stall, or a healthy job is taken over and runs twice.
   */
  WORKER_LOCK_DURATION_MS: positiveInt.min(1_000).default(30_000),
  /**
   * While a dependency (Postgres, Resend, Stripe) is down, its queue's jobs go back to wait without
   * spending attempts and the queue is held off: first for OUTAGE_BACKOFF_MIN_MS, growing with the
   * outage's length up to OUTAGE_BACKOFF_MAX_MS between probes (worker/outage.ts).
   */
  OUTAGE_BACKOFF_MIN_MS: positiveInt.min(10).default(1_000),
  OUTAGE_BACKOFF_MAX_MS: positiveInt.min(10).default(30_000),
  /**
   * Postgres client bounds, so a dropped or hung connection reads as an outage within seconds instead
   * of the kernel's TCP timeout. The query bound must stay below WORKER_LOCK_DURATION_MS, or a job
   * waiting on a hung database would lose its lock and run twice.
   */
  DATABASE_CONNECT_TIMEOUT_MS: positiveInt.default(5_000),
  DATABASE_QUERY_TIMEOUT_MS: positiveInt.default(15_000),
  /** Max rows one audit insert carries. */
  AUDIT_BATCH_MAX: positiveInt.max(5_000).default(500),
  /**
   * Audit inserts one process keeps in flight at once (worker/audit/batcher.ts): while one commit
   * waits on the database's fsync or the network, the next batch is already on its way. Each takes
   * a pooled connection for its duration.
   */
  AUDIT_WRITES_IN_FLIGHT: positiveInt.max(8).default(DEFAULT_AUDIT_WRITES_IN_FLIGHT),
  /**
   * Completed-job log lines per queue per second (worker/job-log.ts); completions above it are
   * counted into one summary line per queue per 10 s. `all` logs every job. Failures, retries and
   * jobs slower than JOB_LOG_SLOW_MS are always logged.
   */
  JOB_LOG_RATE: z.union([z.literal("all"), z.coerce.number().int().min(0)]).default(DEFAULT_JOB_LOG.perSecond),
  JOB_LOG_SLOW_MS: z.coerce.number().int().min(0).default(DEFAULT_JOB_LOG.slowMs),
  PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
  RESEND_API_KEY: optionalString,
  /**
   * Local development only: emails are stored in email_messages with provider "capture" and never
   * sent. Capture is an explicit choice so a missing key can't silently swallow production email:
   * a worker that drains the email queue needs exactly one of RESEND_API_KEY and EMAIL_CAPTURE=1.
   */
  EMAIL_CAPTURE: z.preprocess((v) => (typeof v === "string" && v.trim() === "" ? undefined : v), z.stringbool().default(false)),
  RESEND_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  EMAIL_FROM: z.string().min(3).default("edgefleet <onboarding@resend.dev>"),
  /** Resend's default team limit is 2 requests/s. */
  EMAIL_RATE_PER_SECOND: positiveInt.default(2),
  /**
   * Stripe secret API key, for handler side effects that call Stripe (fetching a subscription at
   * checkout). Optional: without it those calls are skipped with a log line. Worker only — the
   * edge holds just the webhook signing secret.
   */
  STRIPE_SECRET_KEY: optionalString,
  /**
   * Where the Stripe SDK sends API calls, as scheme://host[:port] (tests point it at a local
   * stand-in). Default: Stripe's (https://api.stripe.com). The SDK always adds the /v1/ path itself.
   */
  STRIPE_API_BASE_URL: z
    .url({ protocol: /^https?$/ })
    .refine((u) => /^https?:\/\/[^/?#]+\/?$/.test(u), "scheme://host[:port] only: no path, query or fragment")
    .optional(),
  /**
   * Bound on the graceful drain after SIGTERM. Keep it below Railway's `drainingSeconds` (the
   * platform SIGKILLs after that), leaving a few seconds for closing connections.
   */
  SHUTDOWN_TIMEOUT_MS: positiveInt.default(25_000),
  /**
   * When set, `/metrics` answers only `Authorization: Bearer <token>`. Default: open — it carries
   * counts and timings, never job ids or payloads, and a worker service has no public domain unless
   * one is added; set a token whenever the port is reachable from outside.
   */
  METRICS_TOKEN: optionalString.refine((t) => t === undefined || t.length >= 16, "at least 16 characters"),
  /**
   * The queue dashboard (`/dashboard`, worker/dashboard.ts) is served only when both are set, behind
   * HTTP basic auth with these credentials; one without the other stops start-up.
   */
  DASHBOARD_USER: optionalString.refine((u) => u === undefined || !u.includes(":"), "must not contain ':'"),
  DASHBOARD_PASSWORD: optionalString.refine((p) => p === undefined || p.length >= 12, "at least 12 characters"),
}).superRefine((env, ctx) => {
  if ((env.DASHBOARD_USER === undefined) !== (env.DASHBOARD_PASSWORD === undefined)) {
    const missing = env.DASHBOARD_USER === undefined ? "DASHBOARD_USER" : "DASHBOARD_PASSWORD";
    ctx.addIssue({ code: "custom", path: [missing], message: "the dashboard needs both DASHBOARD_USER and DASHBOARD_PASSWORD (or neither: no dashboard)" });
  }
  if (env.DATABASE_QUERY_TIMEOUT_MS >= env.WORKER_LOCK_DURATION_MS) {
    ctx.addIssue({ code: "custom", path: ["DATABASE_QUERY_TIMEOUT_MS"], message: "must be below WORKER_LOCK_DURATION_MS" });
  }
  if (env.EMAIL_CAPTURE && env.RESEND_API_KEY !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["EMAIL_CAPTURE"],
      message: "EMAIL_CAPTURE=1 and RESEND_API_KEY are both set; choose one (capture never sends)",
    });
  } else if (!env.EMAIL_CAPTURE && env.RESEND_API_KEY === undefined && env.WORKER_QUEUES.includes("email")) {
    ctx.addIssue({
      code: "custom",
      path: ["RESEND_API_KEY"],
      message: "required to send email (this worker drains the email queue); or set EMAIL_CAPTURE=1 to store emails without sending them (local development)",
    });
  }
});

export interface WorkerConfig {
  redisUrl: string;
  redisCaCertPath: string | undefined;
  queuePrefix: string;
  databaseUrl: string;
  databaseDriver: "pg" | "neon" | undefined;
  queues: QueueName[];
  concurrency: Record<QueueName, number>;
  drainDelaySeconds: number;
  stalledIntervalMs: number;
  lockDurationMs: number;
  auditBatchMax: number;
  auditWritesInFlight: number;
  jobLog: JobLogSettings;
  outageBackoffMinMs: number;
  outageBackoffMaxMs: number;
  databaseConnectTimeoutMs: number;
  databaseQueryTimeoutMs: number;
  port: number;
  /** Set unless `emailCapture`, whenever `queues` includes email. */
  resendApiKey: string | undefined;
  resendBaseUrl: string | undefined;
  /** EMAIL_CAPTURE=1: store emails, never send them; never together with a key. */
  emailCapture: boolean;
  emailFrom: string;
  emailRatePerSecond: number;
  stripeSecretKey: string | undefined;
  stripeApiBaseUrl: string | undefined;
  shutdownTimeoutMs: number;
  /** Bearer token `/metrics` requires; undefined = open. */
  metricsToken: string | undefined;
  /** Dashboard credentials; undefined = no dashboard. */
  dashboard: { user: string; password: string } | undefined;
}

export class EnvError extends Error {
  readonly issues: string[];
  constructor(issues: string[]) {
    super(`invalid worker configuration:\n  - ${issues.join("\n  - ")}`);
    this.name = "EnvError";
    this.issues = issues;
  }
}

/** Parses the environment; throws `EnvError` listing every problem at once. */
export function parseEnv(source: Record<string, string | undefined>): WorkerConfig {
  const result = EnvSchema.safeParse(source);
  if (!result.success) {
    throw new EnvError(
      result.error.issues.map((i) => `${i.path.join(".") || "(env)"}: ${i.message}`),
    );
  }
  const env = result.data;
  const overrides = env as Record<string, unknown>;
  const concurrency = Object.fromEntries(
    QUEUE_NAMES.map((q) => {
      const override = overrides[concurrencyVar(q)];
      return [q, typeof override === "number" ? override : env.WORKER_CONCURRENCY];
    }),
  ) as Record<QueueName, number>;

  return {
    redisUrl: env.REDIS_URL,
    redisCaCertPath: env.REDIS_CA_CERT,
    queuePrefix: env.QUEUE_PREFIX,
    databaseUrl: env.DATABASE_URL,
    databaseDriver: env.DATABASE_DRIVER,
    queues: env.WORKER_QUEUES,
    concurrency,
    drainDelaySeconds: env.WORKER_DRAIN_DELAY_SECONDS,
    stalledIntervalMs: env.WORKER_STALLED_INTERVAL_MS,
    lockDurationMs: env.WORKER_LOCK_DURATION_MS,
    auditBatchMax: env.AUDIT_BATCH_MAX,
    auditWritesInFlight: env.AUDIT_WRITES_IN_FLIGHT,
    jobLog: { perSecond: env.JOB_LOG_RATE, slowMs: env.JOB_LOG_SLOW_MS },
    outageBackoffMinMs: env.OUTAGE_BACKOFF_MIN_MS,
    outageBackoffMaxMs: Math.max(env.OUTAGE_BACKOFF_MAX_MS, env.OUTAGE_BACKOFF_MIN_MS),
    databaseConnectTimeoutMs: env.DATABASE_CONNECT_TIMEOUT_MS,
    databaseQueryTimeoutMs: env.DATABASE_QUERY_TIMEOUT_MS,
    port: env.PORT,
    resendApiKey: env.RESEND_API_KEY,
    resendBaseUrl: env.RESEND_BASE_URL,
    emailCapture: env.EMAIL_CAPTURE,
    emailFrom: env.EMAIL_FROM,
    emailRatePerSecond: env.EMAIL_RATE_PER_SECOND,
    stripeSecretKey: env.STRIPE_SECRET_KEY,
    stripeApiBaseUrl: env.STRIPE_API_BASE_URL,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
    metricsToken: env.METRICS_TOKEN,
    dashboard:
      env.DASHBOARD_USER !== undefined && env.DASHBOARD_PASSWORD !== undefined
        ? { user: env.DASHBOARD_USER, password: env.DASHBOARD_PASSWORD }
        : undefined,
  };
}

/**
 * What this process runs, from one image: `worker` (default) drains queues; `api` serves the HTTP
 * API on Node (self-host mode, worker/api/); `all` does both in one process.
 */
export const ROLES = ["worker", "api", "all"] as const;
export type Role = (typeof ROLES)[number];

export function parseRole(source: Record<string, string | undefined>): Role {
  const raw = source.EDGEFLEET_ROLE?.trim() || "worker";
  if ((ROLES as readonly string[]).includes(raw)) return raw as Role;
  throw new EnvError([`EDGEFLEET_ROLE: must be one of ${ROLES.join(", ")}`]);
}
