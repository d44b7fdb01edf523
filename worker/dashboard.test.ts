// The dashboard in a real browser: Debian's Chromium driven by playwright-core, against a real fleet
// and Redis. Chromium must be installed (`apt-get install chromium`; .ci/run does it): without it
// this test fails, it never skips.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { reportContract } from "../shared/jobs/report.ts";
import { QUEUE_NAMES } from "../shared/jobs/registry.ts";
import { createDashboard, DASHBOARD_PATH, type Dashboard } from "./dashboard.ts";
import { redisOptions } from "./fleet.ts";
import { startHealthServer, type HealthServer } from "./health.ts";
import { PermanentError } from "./runner.ts";
import { deleteKeys, eventually, settled, startTestFleet, uniqueId, type TestFleet } from "../tools/testing/fixtures.ts";
import { runMain } from "../tools/testing/main-process.ts";

/** Where the screenshot lands (git-ignored), relative to the repository. */
export const SCREENSHOT = join(".data", "artifacts", "dashboard-failed-job.png");
const CHROMIUM = "/usr/bin/chromium";
const auth = { user: "ops", password: uniqueId("dashboard-password") };

let t: TestFleet;
let dashboard: Dashboard;
let server: HealthServer;
let browser: Browser;
let redis: Redis;
let refuse = true;
let base: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium`);
  // The report handler refuses while `refuse` is set, so the job fails once and succeeds on retry.
  t = await startTestFleet(
    {
      handlers: {
        report: async () => {
          if (refuse) throw new PermanentError("refused for the dashboard test");
        },
      },
      scripts: [],
      log: () => {},
    },
    { queues: ["report"] },
  );
  dashboard = createDashboard({ config: { ...t.config, queues: [...QUEUE_NAMES] }, auth });
  server = await startHealthServer({ port: 0, checks: {}, dashboard: dashboard.app });
  base = `http://127.0.0.1:${server.port}${DASHBOARD_PATH}`;
  redis = new Redis(redisOptions(t.config.redisUrl));
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await dashboard?.close();
  redis?.disconnect();
  await t?.stop();
});

// Seconds on an idle machine; the bound only keeps a loaded shared runner from failing it.
describe("queue dashboard in Chromium", { timeout: 60_000 }, () => {
  it("refuses a wrong password and no credentials", async () => {
    const wrong = await browser.newContext({ httpCredentials: { username: auth.user, password: "wrong-password-123" } });
    try {
      // Chromium may answer a refused password by failing the navigation itself
      // (ERR_INVALID_AUTH_CREDENTIALS) or by showing the 401; either way the board never renders.
      const page = await wrong.newPage();
      const response = await page.goto(base).catch(() => null);
      expect(response?.status() ?? 401).toBe(401);
      expect(await page.content()).not.toContain("QUEUES");
      const refused = await wrong.request.get(base);
      expect(refused.status()).toBe(401);
      expect(await refused.text()).not.toContain("bull");
    } finally {
      await wrong.close();
    }
    const anonymous = await browser.newContext();
    try {
      const response = await anonymous.request.get(base);
      expect(response.status()).toBe(401);
      expect(response.headers()["www-authenticate"]).toMatch(/^Basic realm="edgefleet dashboard"/);
    } finally {
      await anonymous.close();
    }
    // The board's JSON API is behind the same check.
    expect((await fetch(`${base}/api/queues`)).status).toBe(401);
  });

  it("logs in, shows the queues and a failed job, and retries it", async () => {
    const jobId = uniqueId("dash-job");
    await t.add(reportContract, { accountId: "acct-dashboard", month: "2026-11" }, { jobId });
    expect((await settled(t.queue("report"), jobId)).failedReason).toBe("refused for the dashboard test");
    const failedKey = `${t.config.queuePrefix}:report:failed`;
    expect(await redis.zscore(failedKey, jobId)).not.toBeNull();

    const context = await browser.newContext({ httpCredentials: { username: auth.user, password: auth.password }, viewport: { width: 1280, height: 900 } });
    try {
      const page = await context.newPage();
      const response = await page.goto(base);
      expect(response?.status()).toBe(200);
      for (const queue of QUEUE_NAMES) await page.getByText(queue, { exact: true }).first().waitFor();

      await page.goto(`${base}/queue/report?status=failed`);
      await page.getByText(jobId).first().waitFor();
      await page.getByText("refused for the dashboard test").first().waitFor();
      mkdirSync(join(".data", "artifacts"), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });

      refuse = false;
      // The job card's retry button is an icon (lucide refresh-cw); the queue's "Retry all" has text.
      await page.locator("button:has(svg.lucide-refresh-cw)").filter({ hasNotText: "Retry all" }).first().click();
      // bull-board asks first: "Are you sure that you want to retry this job?"
      const confirm = page.getByRole("alertdialog");
      await confirm.getByText("retry this job").waitFor();
      await confirm.getByRole("button", { name: "Confirm" }).click();

      await eventually("the job out of the failed set", async () => ((await redis.zscore(failedKey, jobId)) === null ? true : undefined), 10_000);
      const done = await settled(t.queue("report"), jobId);
      expect(done.finishedOn).toBeTypeOf("number");
      expect(await redis.zscore(`${t.config.queuePrefix}:report:completed`, jobId)).not.toBeNull();
    } finally {
      await context.close();
    }
  });

  it("is served by node worker/main.ts when configured, beside /metrics behind its token", async () => {
    const prefix = uniqueId("dash-main");
    const token = "metrics-token-0123456789";
    const main = runMain({
      REDIS_URL: inject("redisUrl"), DATABASE_URL: inject("databaseUrl"), EMAIL_CAPTURE: "1", PORT: "0", QUEUE_PREFIX: prefix,
      DASHBOARD_USER: auth.user, DASHBOARD_PASSWORD: auth.password, METRICS_TOKEN: token,
    });
    try {
      const ready = await main.waitForLine("worker ready", 50_000);
      expect(ready).toMatchObject({ dashboard: "/dashboard", metrics: "/metrics (bearer token)" });
      const url = `http://127.0.0.1:${String(ready.port)}`;
      expect((await fetch(`${url}/dashboard`)).status).toBe(401);
      const basic = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString("base64")}`;
      const listed = await fetch(`${url}/dashboard/api/queues`, { headers: { authorization: basic } });
      expect(listed.status).toBe(200);
      const { queues } = (await listed.json()) as { queues: Array<{ name: string }> };
      expect(queues.map((q) => q.name).sort()).toEqual([...QUEUE_NAMES].sort());
      expect((await fetch(`${url}/metrics`)).status).toBe(401);
      const metrics = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toMatch(/^edgefleet_queue_backlog\{queue="audit"\} 0$/m);
    } finally {
      main.child.kill("SIGTERM");
      await main.exitedWithin(30_000);
      await deleteKeys(inject("redisUrl"), prefix);
    }
  });
});
