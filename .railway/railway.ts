// The worker fleet on Railway, as Infrastructure as Code (the `railway` SDK's `railway/iac`).
// `railway config plan` shows what would change in the linked environment; `railway config apply`
// makes it so. This file is the only Railway configuration: there is no railway.toml (Railway
// refuses to manage a service from both, and Config as Code is deprecated).
//
// The Railway CLI evaluates this file with the Node on your PATH (type stripping), so it uses only
// erasable TypeScript, and imports the job registry to follow the queues the fleet knows.
import { defineRailway, github, preserve, project, service } from "railway/iac";
import type { ServiceNode } from "railway/iac";
import { QUEUE_NAMES } from "../shared/jobs/registry.ts";

type Queue = (typeof QUEUE_NAMES)[number];

/**
 * "single": one service, `worker`, drains every queue (the default; the cheapest on an idle
 * Upstash, see the README's command budget). "per-queue": one service per queue from the same
 * image (`worker-audit`, `worker-email`, …), each with `WORKER_QUEUES=<queue>`, so a queue can be
 * scaled, restarted or given secrets on its own. Switching deletes the other layout's services
 * (`railway config apply` asks first).
 */
export type Layout = "single" | "per-queue";
export const LAYOUT: Layout = "single";

/**
 * "<owner>/<repo>" connects the services to GitHub (a push that touches `WATCH_PATTERNS` redeploys).
 * Left undefined, code goes up with `railway up --service <name>`. Once a repository is connected,
 * keep it named here: a plan without a source would disconnect it.
 */
export const GITHUB_REPO: string | undefined = undefined;

/** Replicas of each service. Railway has no horizontal autoscaling: raise this and apply. */
export const REPLICAS = 1;

/**
 * Railway sends SIGTERM, waits `drainingSeconds`, then SIGKILLs. The fleet stops taking jobs and
 * lets running ones finish for at most SHUTDOWN_TIMEOUT_MS, then closes its connections: the
 * difference is the time left for that.
 */
export const DRAINING_SECONDS = 30;
export const SHUTDOWN_TIMEOUT_MS = 25_000;

/** What the image is built from (Dockerfile.worker's COPY sources); other changes don't redeploy. */
export const WATCH_PATTERNS = [
  "Dockerfile.worker",
  "package.json",
  "package-lock.json",
  "worker/**",
  "shared/**",
  "edge/**",
  "drizzle/**",
];

/**
 * Secrets and per-deployment values are declared but never written here: `preserve()` keeps the
 * value set with `railway variable set NAME --stdin --service <service>`. A variable a managed
 * service has but this file does not declare is deleted by `apply`, so every one is listed.
 * Connections: REDIS_URL (Upstash or any Redis ≥ 6.2, `rediss://`), DATABASE_URL (Neon's direct,
 * non-pooled URL: migrations run on it before each deploy).
 */
const CONNECTIONS = ["REDIS_URL", "DATABASE_URL"];
const QUEUE_SETTINGS: Partial<Record<Queue, string[]>> = {
  email: ["RESEND_API_KEY", "EMAIL_FROM"],
  "stripe-webhook": ["STRIPE_SECRET_KEY"],
};

function worker(name: string, queues: readonly Queue[] | "all") {
  const drained = queues === "all" ? QUEUE_NAMES : queues;
  const kept = [...CONNECTIONS, ...drained.flatMap((q) => QUEUE_SETTINGS[q] ?? [])];
  return service(name, {
    ...(GITHUB_REPO === undefined ? {} : { source: github(GITHUB_REPO) }),
    build: { builder: "DOCKERFILE", dockerfilePath: "Dockerfile.worker", watchPatterns: WATCH_PATTERNS },
    // No start command: the image's exec-form CMD runs `node worker/main.ts` as PID 1, so SIGTERM
    // reaches Node (a start command here would replace it).
    // Before each deploy, in its own container: applies drizzle/ under an advisory lock, so
    // services deploying at once (per-queue layout) take turns instead of failing.
    preDeploy: "node worker/migrate.ts",
    // 200 once Redis and Postgres answer; Railway switches traffic and drains the old deployment then.
    healthcheck: "/readyz",
    healthcheckTimeout: 60,
    replicas: REPLICAS,
    deploy: {
      drainingSeconds: DRAINING_SECONDS,
      // Exit 1 (Redis or Postgres unreachable at start) is worth retrying; a clean exit 0 only
      // follows SIGTERM. A bad configuration (exit 2) stops after the retries instead of looping.
      restartPolicyType: "ON_FAILURE",
      restartPolicyMaxRetries: 10,
      // A BullMQ worker blocks on Redis and never idles, so it would never sleep anyway.
      sleepApplication: false,
    },
    env: {
      WORKER_QUEUES: queues === "all" ? "all" : queues.join(","),
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      ...Object.fromEntries(kept.map((variable) => [variable, preserve()])),
    },
  });
}

export function fleet(layout: Layout): ServiceNode[] {
  if (layout === "single") return [worker("worker", "all")];
  return QUEUE_NAMES.map((queue) => worker(`worker-${queue}`, [queue]));
}

/**
 * The autoscaler (worker/autoscaler/main.ts, same image): one replica that sets the fleet's replicas
 * through Railway's API from the queues' backlog, down to zero, and that the edge wakes with
 * POST /wake. It needs a public domain for that: name a custom one here, or generate a Railway one
 * once with `railway domain --service autoscaler` (generated domains are not part of this file).
 * Its secrets are preserved like the fleet's: REDIS_URL, AUTOSCALER_TARGETS (JSON: serviceId of each
 * worker service, its queues, min/max…), AUTOSCALER_WAKE_TOKEN (the edge's too) and RAILWAY_TOKEN
 * (a project token for this environment). Note: `railway config apply` also sets the workers'
 * `replicas` to REPLICAS above; the autoscaler corrects it on its next poll.
 */
export const AUTOSCALER = true;
export const AUTOSCALER_DOMAIN: string | undefined = undefined;

export function autoscaler(): ServiceNode {
  return service("autoscaler", {
    ...(GITHUB_REPO === undefined ? {} : { source: github(GITHUB_REPO) }),
    build: { builder: "DOCKERFILE", dockerfilePath: "Dockerfile.worker", watchPatterns: WATCH_PATTERNS },
    start: "node worker/autoscaler/main.ts",
    healthcheck: "/healthz",
    healthcheckTimeout: 60,
    // One: two autoscalers would both act on every decision.
    replicas: 1,
    ...(AUTOSCALER_DOMAIN === undefined ? {} : { domains: [AUTOSCALER_DOMAIN] }),
    deploy: {
      // It holds no jobs: stopping means finishing a poll and closing Redis.
      drainingSeconds: 10,
      restartPolicyType: "ON_FAILURE",
      restartPolicyMaxRetries: 10,
      // It only answers HTTP and sleeps at zero; Railway's sleeping would delay the wake call.
      sleepApplication: false,
    },
    env: Object.fromEntries(["REDIS_URL", "AUTOSCALER_TARGETS", "AUTOSCALER_WAKE_TOKEN", "RAILWAY_TOKEN"].map((v) => [v, preserve()])),
  });
}

export function resources(layout: Layout): ServiceNode[] {
  return [...fleet(layout), ...(AUTOSCALER ? [autoscaler()] : [])];
}

export default defineRailway(() => project("edgefleet", { resources: resources(LAYOUT) }));
