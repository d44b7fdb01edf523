import { describe, expect, it } from "vitest";
import { EnvError, parseEnv } from "./env.ts";

const minimal = { REDIS_URL: "redis://:pw@127.0.0.1:6380", DATABASE_URL: "postgres://u:p@127.0.0.1:5433/app", RESEND_API_KEY: "re_live_x" };

function issuesOf(env: Record<string, string | undefined>): string {
  try {
    parseEnv(env);
  } catch (err) {
    if (err instanceof EnvError) return err.issues.join("\n");
    throw err;
  }
  return "";
}

describe("parseEnv", () => {
  it("applies the documented defaults", () => {
    expect(parseEnv(minimal)).toEqual({
      redisUrl: "redis://:pw@127.0.0.1:6380",
      redisCaCertPath: undefined,
      queuePrefix: "bull",
      databaseUrl: "postgres://u:p@127.0.0.1:5433/app",
      databaseDriver: undefined,
      queues: ["audit", "email", "stripe-webhook", "report"],
      concurrency: { audit: 10, email: 10, "stripe-webhook": 10, report: 10 },
      drainDelaySeconds: 15,
      stalledIntervalMs: 60_000,
      lockDurationMs: 30_000,
      auditBatchMax: 500,
      auditWritesInFlight: 3,
      jobLog: { perSecond: 10, slowMs: 1_000 },
      outageBackoffMinMs: 1_000,
      outageBackoffMaxMs: 30_000,
      databaseConnectTimeoutMs: 5_000,
      databaseQueryTimeoutMs: 15_000,
      port: 8080,
      resendApiKey: "re_live_x",
      resendBaseUrl: undefined,
      emailCapture: false,
      emailFrom: "edgefleet <onboarding@resend.dev>",
      emailRatePerSecond: 2,
      stripeSecretKey: undefined,
      stripeApiBaseUrl: undefined,
      shutdownTimeoutMs: 25_000,
      metricsToken: undefined,
      dashboard: undefined,
    });
  });

  describe("metrics token and dashboard credentials", () => {
    it("reads a metrics token, and refuses a short one", () => {
      expect(parseEnv({ ...minimal, METRICS_TOKEN: "0123456789abcdef" }).metricsToken).toBe("0123456789abcdef");
      expect(issuesOf({ ...minimal, METRICS_TOKEN: "short" })).toContain("METRICS_TOKEN");
    });

    it("turns the dashboard on with both credentials", () => {
      const config = parseEnv({ ...minimal, DASHBOARD_USER: "ops", DASHBOARD_PASSWORD: "correct horse battery" });
      expect(config.dashboard).toEqual({ user: "ops", password: "correct horse battery" });
    });

    it("refuses half a dashboard configuration, naming the missing variable", () => {
      expect(issuesOf({ ...minimal, DASHBOARD_USER: "ops" })).toMatch(/^DASHBOARD_PASSWORD: .*both/m);
      expect(issuesOf({ ...minimal, DASHBOARD_PASSWORD: "correct horse battery" })).toMatch(/^DASHBOARD_USER: .*both/m);
    });

    it("refuses a short password and a user name with a colon (basic auth's separator)", () => {
      expect(issuesOf({ ...minimal, DASHBOARD_USER: "ops", DASHBOARD_PASSWORD: "short" })).toContain("DASHBOARD_PASSWORD");
      expect(issuesOf({ ...minimal, DASHBOARD_USER: "o:ps", DASHBOARD_PASSWORD: "correct horse battery" })).toContain("DASHBOARD_USER");
    });
  });

  it("reads the queue list and per-queue concurrency overrides", () => {
    const config = parseEnv({
      ...minimal,
      WORKER_QUEUES: "email, stripe-webhook",
      WORKER_CONCURRENCY: "4",
      WORKER_CONCURRENCY_STRIPE_WEBHOOK: "1",
    });
    expect(config.queues).toEqual(["email", "stripe-webhook"]);
    expect(config.concurrency).toEqual({ audit: 4, email: 4, "stripe-webhook": 1, report: 4 });
  });

  describe("email: sending or capture is an explicit choice", () => {
    const noKey = { ...minimal, RESEND_API_KEY: undefined };

    it("refuses a worker that drains email with neither RESEND_API_KEY nor EMAIL_CAPTURE, naming both", () => {
      for (const env of [noKey, { ...noKey, RESEND_API_KEY: "  " }, { ...noKey, EMAIL_CAPTURE: "" }, { ...noKey, EMAIL_CAPTURE: "0" }, { ...noKey, WORKER_QUEUES: "audit,email" }]) {
        const issues = issuesOf(env);
        expect(issues).toMatch(/^RESEND_API_KEY: required/);
        expect(issues).toContain("EMAIL_CAPTURE=1");
      }
    });

    it("EMAIL_CAPTURE=1 without a key: capture", () => {
      for (const flag of ["1", "true", "yes"]) {
        expect(parseEnv({ ...noKey, EMAIL_CAPTURE: flag })).toMatchObject({ emailCapture: true, resendApiKey: undefined });
      }
    });

    it("refuses EMAIL_CAPTURE=1 together with a key, and a flag that isn't a boolean", () => {
      expect(issuesOf({ ...minimal, EMAIL_CAPTURE: "1" })).toMatch(/^EMAIL_CAPTURE: .*both set/);
      expect(issuesOf({ ...noKey, EMAIL_CAPTURE: "maybe" })).toMatch(/^EMAIL_CAPTURE: /);
    });

    it("needs neither for a worker that doesn't drain email", () => {
      expect(parseEnv({ ...noKey, WORKER_QUEUES: "audit,stripe-webhook" })).toMatchObject({ emailCapture: false, resendApiKey: undefined });
    });
  });

  it("reads the Stripe key and API base URL", () => {
    const config = parseEnv({ ...minimal, STRIPE_SECRET_KEY: "sk_test_123", STRIPE_API_BASE_URL: "http://127.0.0.1:12111" });
    expect(config).toMatchObject({ stripeSecretKey: "sk_test_123", stripeApiBaseUrl: "http://127.0.0.1:12111" });
  });

  it("reads the job log rate (a number or all) and slow threshold, and refuses anything else", () => {
    expect(parseEnv({ ...minimal, JOB_LOG_RATE: "all", JOB_LOG_SLOW_MS: "250" }).jobLog).toEqual({ perSecond: "all", slowMs: 250 });
    expect(parseEnv({ ...minimal, JOB_LOG_RATE: "0" }).jobLog).toEqual({ perSecond: 0, slowMs: 1_000 });
    expect(issuesOf({ ...minimal, JOB_LOG_RATE: "some" })).toContain("JOB_LOG_RATE");
    expect(issuesOf({ ...minimal, JOB_LOG_RATE: "-1" })).toContain("JOB_LOG_RATE");
  });

  it("lists every problem at once", () => {
    let error: unknown;
    try {
      parseEnv({
        REDIS_URL: "http://x",
        WORKER_QUEUES: "audit,bogus",
        PORT: "-1",
        EMAIL_RATE_PER_SECOND: "0",
        STRIPE_API_BASE_URL: "http://127.0.0.1:12111/v1",
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(EnvError);
    const issues = (error as EnvError).issues.join("\n");
    for (const name of ["REDIS_URL", "DATABASE_URL", "WORKER_QUEUES", "PORT", "EMAIL_RATE_PER_SECOND", "STRIPE_API_BASE_URL"]) {
      expect(issues).toContain(name);
    }
    expect(issues).toContain("bogus");
  });
});
