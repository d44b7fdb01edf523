// `npm run dev`: the whole system on this machine — Redis, Postgres (migrated), the edge under
// `wrangler dev` on http://127.0.0.1:8787 and the worker fleet, scaled from zero by the autoscaler
// (tools/dev/local-autoscaler.ts) — then prints how to reach each.
// REDIS_URL / DATABASE_URL, when set, are used instead of starting local servers.
// Ctrl-C stops everything this script started, in reverse order.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../../edge/auth.ts";
import { DEFAULT_QUEUE_PREFIX } from "../../shared/jobs/contract.ts";
import type { LogRecord } from "../../worker/runner.ts";
import { migrate } from "../../worker/migrate.ts";
import { LOCAL_SECRET_FILE } from "./stripe-send.ts";
import { startEdge } from "./edge-process.ts";
import { startLocalAutoscaler } from "./local-autoscaler.ts";
import { ROOT, secret, startPostgres, startRedis } from "./local-services.ts";

const EDGE_PORT = Number(process.env.EDGE_PORT ?? 8787);
const dataDir = join(ROOT, ".data/dev");
const stops: Array<() => Promise<void>> = [];
const say = (line: string) => console.log(`edgefleet: ${line}`);

/** Replica lines as `[worker N] …`; the autoscaler's decisions stand out as `[autoscaler] …`. */
function fleetLog(level: string, msg: string, fields: LogRecord = {}): void {
  const { replica, ...rest } = fields;
  const line = `${msg} ${JSON.stringify(rest)}`;
  const decision = msg === "autoscaler decision" ? `scale ${String(rest.from)} → ${String(rest.to)} (${String(rest.reason)}; backlog ${String(rest.backlog)})` : undefined;
  // Each replica has a port of its own (PORT=0): its metrics and dashboard URLs come with it.
  const ready = msg === "worker ready" && typeof rest.port === "number" ? `ready: metrics http://127.0.0.1:${rest.port}/metrics, dashboard http://127.0.0.1:${rest.port}/dashboard` : undefined;
  (level === "info" ? console.log : console.error)(`[${replica === undefined ? "autoscaler" : `worker ${String(replica)}`}] ${decision ?? ready ?? line}`);
}

function prefixed(name: string, b: Buffer): string {
  return b.toString().replace(/\n$/, "").split("\n").map((l) => `[${name}] ${l}`).join("\n");
}

/** The local API key, kept across runs so a pasted curl line keeps working. */
function localApiKey(): string {
  const file = join(dataDir, "api-key");
  if (!existsSync(file)) writeFileSync(file, `ef_local_${secret()}\n`, { mode: 0o600 });
  return readFileSync(file, "utf8").trim();
}

/** The local dashboard password (user "dev"), kept across runs like the API key. */
function localDashboardPassword(): string {
  const file = join(dataDir, "dashboard-password");
  if (!existsSync(file)) writeFileSync(file, `${secret()}\n`, { mode: 0o600 });
  return readFileSync(file, "utf8").trim();
}

/** The local Stripe webhook signing secret; `npm run stripe:send` signs with the same file. */
function localWebhookSecret(): string {
  if (!existsSync(LOCAL_SECRET_FILE)) writeFileSync(LOCAL_SECRET_FILE, `whsec_local_${secret()}\n`, { mode: 0o600 });
  return readFileSync(LOCAL_SECRET_FILE, "utf8").trim();
}

async function main(): Promise<void> {
  mkdirSync(dataDir, { recursive: true });
  let redisUrl = process.env.REDIS_URL;
  if (!redisUrl) {
    const redis = await startRedis({ dataDir: join(dataDir, "redis") });
    stops.push(redis.stop);
    redisUrl = redis.url;
  }
  let databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    say("starting embedded Postgres …");
    const pg = await startPostgres({ dataDir: join(dataDir, "postgres"), persistent: true });
    stops.push(pg.stop);
    databaseUrl = pg.url;
  }
  await migrate(databaseUrl);

  const apiKey = localApiKey();
  const webhookSecret = localWebhookSecret();
  const dashboardPassword = localDashboardPassword();
  const sendsEmail = Boolean(process.env.RESEND_API_KEY?.trim());
  // Minimum 0, as deployed: the fleet starts empty and the edge's wake call starts it when a job
  // arrives — the path production relies on is the one a newcomer runs. Each replica is a
  // `node worker/main.ts` with this shell's environment.
  const wakeToken = secret();
  const shell = Object.fromEntries(Object.entries(process.env).flatMap(([k, v]) => (v === undefined ? [] : [[k, v]])));
  const fleet = await startLocalAutoscaler({
    redisUrl,
    queuePrefix: process.env.QUEUE_PREFIX || DEFAULT_QUEUE_PREFIX,
    wakeToken,
    log: fleetLog,
    workerEnv: {
      ...shell,
      REDIS_URL: redisUrl,
      DATABASE_URL: databaseUrl,
      // Capture is an explicit choice (the worker refuses to start without a key otherwise).
      ...(sendsEmail ? {} : { EMAIL_CAPTURE: "1" }),
      DASHBOARD_USER: "dev",
      DASHBOARD_PASSWORD: dashboardPassword,
    },
  });
  stops.push(fleet.close);
  const { settings } = fleet;
  const edge = await startEdge({
    port: EDGE_PORT,
    logLevel: "info",
    vars: {
      REDIS_URL: redisUrl, API_KEY_HASHES: await sha256Hex(apiKey), STRIPE_WEBHOOK_SECRET: webhookSecret,
      AUTOSCALER_WAKE_URL: fleet.wakeUrl, AUTOSCALER_WAKE_TOKEN: wakeToken,
    },
    log: (text) => {
      // Offline, wrangler cannot fetch the Request.cf sample and says so on every start; harmless.
      if (/Request\.cf|workers\.cloudflare\.com|GetAddrInfoReqWrap/.test(text)) return;
      process.stdout.write(prefixed("edge", Buffer.from(text)) + "\n");
    },
  });
  stops.push(edge.stop);
  const edgeUrl = edge.url;

  const body = JSON.stringify({ name: "user.signed_up", type: "domain", payload: { plan: "pro" } });
  console.log(`
edgefleet is running. Ctrl-C stops everything.

  Edge API      ${edgeUrl}
  Fleet         ${settings.minReplicas}–${settings.maxReplicas} worker processes, ${settings.jobsPerReplica} waiting jobs per process; at ${settings.minReplicas} now —
                the edge wakes the autoscaler (${fleet.wakeUrl}) when a job arrives
  Redis         ${redisUrl}
  Postgres      ${databaseUrl}
  API key       ${apiKey}
  Metrics       http://127.0.0.1:<port>/metrics on each worker process (its "[worker N] ready" line names the URL)
  Dashboard     http://127.0.0.1:<port>/dashboard on each worker process — user dev, password ${dashboardPassword}
  Stripe        webhook secret ${webhookSecret} (POST ${edgeUrl}/webhooks/stripe)
  Emails        ${sendsEmail ? "sent through Resend (RESEND_API_KEY is set)" : "captured locally (EMAIL_CAPTURE=1, no RESEND_API_KEY): never sent, stored in table email_messages"}

Try it:
  curl -s -X POST ${edgeUrl}/v1/events -H 'Authorization: Bearer ${apiKey}' -H 'Content-Type: application/json' -d '${body}'
  npm run stripe:send -- customer.subscription.created
  npm run dev:burst -- 5000     (a burst: watch [autoscaler] scale up, then back down to ${settings.minReplicas} after ${settings.idleSeconds} s idle)
`);
  // Until Ctrl-C — or until the edge dies on its own, which stops the rest too (a worker process
  // that dies is replaced by the autoscaler as soon as there is work for it).
  const crashed = await new Promise<string | undefined>((done) => {
    edge.child.once("exit", (code, signal) => done(`the edge exited (${signal ?? `code ${code}`})`));
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => done(undefined));
  });
  if (crashed) throw new Error(crashed);
}

async function shutdown(code: number): Promise<never> {
  say("stopping …");
  for (const stop of stops.reverse()) await stop().catch((err: unknown) => console.error(err));
  process.exit(code);
}

main().then(
  () => shutdown(0),
  (err: unknown) => {
    console.error(`edgefleet: ${err instanceof Error ? err.message : String(err)}`);
    return shutdown(1);
  },
);
