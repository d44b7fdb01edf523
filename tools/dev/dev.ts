// `npm run dev`: the whole system on this machine — Redis, Postgres (migrated), the edge under
// `wrangler dev` on http://127.0.0.1:8787 and the worker fleet — then prints how to reach each.
// REDIS_URL / DATABASE_URL, when set, are used instead of starting local servers.
// Ctrl-C stops everything this script started, in reverse order.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../../edge/auth.ts";
import { migrate } from "../../worker/migrate.ts";
import { LOCAL_SECRET_FILE } from "./stripe-send.ts";
import { startEdge, stopChild, untilHealthy } from "./edge-process.ts";
import { freePort, ROOT, secret, startPostgres, startRedis } from "./local-services.ts";

const EDGE_PORT = Number(process.env.EDGE_PORT ?? 8787);
const dataDir = join(ROOT, ".data/dev");
const stops: Array<() => Promise<void>> = [];
const say = (line: string) => console.log(`edgefleet: ${line}`);

function startWorker(env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ["worker/main.ts"], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.on("data", (b: Buffer) => console.log(prefixed("worker", b)));
  child.stderr?.on("data", (b: Buffer) => console.error(prefixed("worker", b)));
  stops.push(() => stopChild(child));
  return child;
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
  const workerPort = await freePort();
  const sendsEmail = Boolean(process.env.RESEND_API_KEY?.trim());
  const worker = startWorker({
    REDIS_URL: redisUrl,
    DATABASE_URL: databaseUrl,
    PORT: String(workerPort),
    // Capture is an explicit choice (the worker refuses to start without a key otherwise).
    ...(sendsEmail ? {} : { EMAIL_CAPTURE: "1" }),
  });
  const healthUrl = `http://127.0.0.1:${workerPort}/readyz`;
  const [edge] = await Promise.all([
    startEdge({
      port: EDGE_PORT,
      logLevel: "info",
      vars: { REDIS_URL: redisUrl, API_KEY_HASHES: await sha256Hex(apiKey), STRIPE_WEBHOOK_SECRET: webhookSecret },
      log: (text) => {
        // Offline, wrangler cannot fetch the Request.cf sample and says so on every start; harmless.
        if (/Request\.cf|workers\.cloudflare\.com|GetAddrInfoReqWrap/.test(text)) return;
        process.stdout.write(prefixed("edge", Buffer.from(text)) + "\n");
      },
    }),
    untilHealthy(healthUrl, worker, "worker"),
  ]);
  stops.push(edge.stop);
  const edgeUrl = edge.url;

  const body = JSON.stringify({ name: "user.signed_up", type: "domain", payload: { plan: "pro" } });
  console.log(`
edgefleet is running. Ctrl-C stops everything.

  Edge API      ${edgeUrl}
  Worker health ${healthUrl}
  Redis         ${redisUrl}
  Postgres      ${databaseUrl}
  API key       ${apiKey}
  Stripe        webhook secret ${webhookSecret} (POST ${edgeUrl}/webhooks/stripe)
  Emails        ${sendsEmail ? "sent through Resend (RESEND_API_KEY is set)" : "captured locally (EMAIL_CAPTURE=1, no RESEND_API_KEY): never sent, stored in table email_messages"}

Try it:
  curl -s -X POST ${edgeUrl}/v1/events -H 'Authorization: Bearer ${apiKey}' -H 'Content-Type: application/json' -d '${body}'
  npm run stripe:send -- customer.subscription.created
`);
  // Until Ctrl-C — or until the edge or the worker dies on its own, which stops the rest too.
  const crashed = await new Promise<string | undefined>((done) => {
    for (const [name, child] of [["edge", edge.child], ["worker", worker]] as const) {
      child.once("exit", (code, signal) => done(`the ${name} exited (${signal ?? `code ${code}`})`));
    }
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
