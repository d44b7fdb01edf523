// npm run image:check — builds Dockerfile.worker unchanged (buildah) and runs the image (podman)
// against a Redis and a Postgres of its own, the way Railway runs it: the migration step, then the
// worker, then SIGTERM. Fails (exit 1) when any check fails. Needs root (podman, apt-get).
// Not part of `npm test`: a cold run assembles a base image and installs packages (minutes).
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import pg from "pg";
import { auditContract } from "../../shared/jobs/audit.ts";
import { freePort, ROOT, startPostgres, startRedis, type LocalRedis, type LocalService } from "../dev/local-services.ts";
import { BASE_IMAGE, buildImage, ensureBase, ensureTools, inspectImage, run, RUN_FLAGS, RUNTIME, tail } from "./podman.ts";

const IMAGE = "localhost/edgefleet-worker:check";
/** npm can hang without failing; a cold build (npm install of the production tree) takes ~30 s here. */
const BUILD_TIMEOUT_MS = 15 * 60_000;
const READY_DEADLINE_MS = 90_000;
const JOB_DEADLINE_MS = 30_000;

/** Railway SIGKILLs `drainingSeconds` after SIGTERM: the value `.railway/railway.ts` declares. */
async function drainWindowSeconds(): Promise<number> {
  const { DRAINING_SECONDS } = await import("../../.railway/railway.ts");
  return DRAINING_SECONDS;
}

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

const checks: Check[] = [];
const say = (line: string) => console.error(`image:check: ${line}`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function record(name: string, ok: boolean, detail: string): boolean {
  checks.push({ name, ok, detail });
  console.log(`${ok ? "  ok  " : "  FAIL"} ${name.padEnd(12)} ${detail}`);
  return ok;
}

/** What the image holds, listed from inside it (as root, to read every folder). */
const LIST_CONTENTS = `
const fs = require("node:fs"), path = require("node:path");
const files = [];
const walk = (dir) => { for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
  const p = path.join(dir, e.name);
  if (p === "/app/node_modules") continue;
  e.isDirectory() ? walk(p) : files.push(p);
} };
walk("/app");
const packages = fs.readdirSync("/app/node_modules").flatMap((n) => n.startsWith("@")
  ? fs.readdirSync(path.join("/app/node_modules", n)).map((s) => n + "/" + s) : [n]);
const leftovers = ["/usr/local/etc", "/root"].flatMap((d) => fs.readdirSync(d).map((n) => path.join(d, n)));
console.log(JSON.stringify({ files, packages, leftovers }));
`;

function checkContents(listing: string): void {
  const { files, packages, leftovers } = JSON.parse(listing) as { files: string[]; packages: string[]; leftovers: string[] };
  // Packages the lockfile marks dev-only; a production package's own dependencies (even @types/*
  // ones, which @neondatabase/serverless declares) are not.
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { dev?: boolean }> };
  const devOnly = new Set(Object.entries(lock.packages).filter(([, p]) => p.dev === true).map(([key]) => key.slice("node_modules/".length)));
  const testFiles = files.filter((f) => /\.test\.ts$|\.test-helper\.ts$|\/test-helpers\.ts$/.test(f));
  const allowedTop = new Set(["drizzle", "edge", "shared", "worker", "package.json", "package-lock.json"]);
  const strays = [...new Set(files.map((f) => f.split("/")[2] ?? ""))].filter((top) => !allowedTop.has(top));
  const devDeps = packages.filter((name) => devOnly.has(name));
  // The build's npmrc and CA bundle are mounted, never copied: only the base's dotfiles and npm's
  // emptied cache folder may remain.
  const baked = leftovers.filter((p) => !["/root/.bashrc", "/root/.profile", "/root/.npm"].includes(p));
  const problems = [
    ...(testFiles.length > 0 ? [`test files: ${testFiles.slice(0, 5).join(", ")}`] : []),
    ...(strays.length > 0 ? [`not production code: /app/${strays.join(", /app/")}`] : []),
    ...(devDeps.length > 0 ? [`devDependencies installed: ${devDeps.join(", ")}`] : []),
    ...(baked.length > 0 ? [`left by the build: ${baked.join(", ")}`] : []),
  ];
  record(
    "contents",
    problems.length === 0,
    problems.length === 0
      ? `${files.length} files in /app/{${[...new Set(files.map((f) => f.split("/")[2] ?? ""))].filter((t) => !t.includes(".")).sort().join(",")}}, ${packages.length} production packages; no tests, tools/ or devDependencies; nothing left from the build's CA mount`
      : problems.join("; "),
  );
}

async function podman(args: string[], timeoutMs = 120_000, env?: NodeJS.ProcessEnv) {
  return run("podman", [...RUNTIME, ...args], { timeoutMs, ...(env ? { env } : {}) });
}

async function readyz(port: number): Promise<number | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return undefined;
  }
}

async function containerRunning(name: string): Promise<boolean> {
  const state = await podman(["inspect", "--format", "{{.State.Running}}", name], 30_000);
  return state.stdout.trim() === "true";
}

async function main(): Promise<void> {
  const started = performance.now();
  if (process.getuid?.() !== 0) throw new Error("run as root: rootful podman and apt-get need it");
  await ensureTools(say);

  const base = await ensureBase(say);
  console.log(`image:check  base: ${base}`);

  const workDir = join(ROOT, ".data/image-check", String(process.pid));
  mkdirSync(workDir, { recursive: true });
  const buildLog = join(workDir, "build.log");
  say(`building ${IMAGE} from Dockerfile.worker (log: ${buildLog}) ...`);
  const build = await buildImage(IMAGE, buildLog, BUILD_TIMEOUT_MS);
  record("build", true, `${seconds(build.ms)}, ${build.cachedSteps} of ${build.steps} steps from the layer cache`);

  const listing = await podman(["run", "--rm", ...RUN_FLAGS, "--no-healthcheck", "--user", "root", IMAGE, "node", "-e", LIST_CONTENTS]);
  if (listing.code !== 0) record("contents", false, `listing failed: ${tail(listing.stderr, 5)}`);
  else checkContents(listing.stdout);

  let redis: LocalRedis | undefined;
  let postgres: LocalService | undefined;
  const container = `edgefleet-image-check-${process.pid}`;
  try {
    say("starting a private Redis and Postgres ...");
    [redis, postgres] = await Promise.all([
      startRedis({ dataDir: join(workDir, "redis") }),
      startPostgres({ dataDir: join(workDir, "postgres") }),
    ]);
    // Secrets reach podman through its environment (`-e NAME` copies it), never its command line.
    const env = { ...process.env, REDIS_URL: redis.url, DATABASE_URL: postgres.url };

    const migrate = await podman(["run", "--rm", ...RUN_FLAGS, "--no-healthcheck", "-e", "DATABASE_URL", IMAGE, "node", "worker/migrate.ts"], 120_000, env);
    const journal = JSON.parse(readFileSync(join(ROOT, "drizzle/meta/_journal.json"), "utf8")) as { entries: unknown[] };
    const db = new pg.Client({ connectionString: postgres.url });
    await db.connect();
    try {
      const applied = migrate.code === 0
        ? Number((await db.query<{ n: string }>("select count(*) as n from drizzle.__drizzle_migrations")).rows[0]?.n ?? 0)
        : 0;
      record(
        "migrations",
        migrate.code === 0 && applied === journal.entries.length,
        migrate.code === 0
          ? `node worker/migrate.ts exit 0 in ${seconds(migrate.ms)}; ${applied} of ${journal.entries.length} migrations recorded in Postgres`
          : `node worker/migrate.ts exit ${migrate.code}: ${tail(migrate.stderr || migrate.stdout, 5)}`,
      );

      const port = await freePort();
      const startedAt = performance.now();
      const start = await podman(
        ["run", "--detach", "--name", container, ...RUN_FLAGS, "-e", "REDIS_URL", "-e", "DATABASE_URL",
          "-e", `PORT=${port}`, "-e", "EMAIL_CAPTURE=1", IMAGE],
        120_000,
        env,
      );
      if (start.code !== 0) throw new Error(`podman run failed: ${tail(start.stderr, 5)}`);
      let status: number | undefined;
      let lastStateCheck = 0;
      while (performance.now() - startedAt < READY_DEADLINE_MS) {
        status = await readyz(port);
        if (status === 200) break;
        if (performance.now() - lastStateCheck > 1_000) {
          lastStateCheck = performance.now();
          if (!(await containerRunning(container))) break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      const readyMs = performance.now() - startedAt;
      const readyAt = Date.now();
      // From the container's own start too, which leaves out podman's set-up (about half a second here).
      const containerStart = await podman(["inspect", "--format", "{{.State.StartedAt.UnixMilli}}", container], 30_000);
      const sinceStart = Number(containerStart.stdout.trim());
      const fromStart = Number.isFinite(sinceStart) && sinceStart > 0 ? `, ${seconds(readyAt - sinceStart)} after the container started` : "";
      if (!record("readiness", status === 200, status === 200
        ? `/readyz 200 ${seconds(readyMs)} after podman run${fromStart}`
        : `/readyz ${status ?? "no answer"} after ${seconds(readyMs)}`)) {
        const logs = await podman(["logs", container], 30_000);
        throw new Error(`the worker did not become ready; its log:\n${tail(logs.stdout + logs.stderr, 20)}`);
      }

      // A job added on the host is drained by the containerised worker into Postgres.
      const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
      const queue = new Queue(auditContract.queue, { connection });
      const eventId = `image-check-${process.pid}`;
      const enqueuedAt = performance.now();
      try {
        // (A failed migration surfaces here as a missing table: recorded, and the run goes on.)
        await queue.add(
          auditContract.name,
          auditContract.schema.parse({ id: eventId, name: "image.checked", type: "integration", occurredAt: new Date().toISOString(), payload: { pid: process.pid } }),
          { ...auditContract.defaults, jobId: eventId },
        );
        let found = false;
        while (!found && performance.now() - enqueuedAt < JOB_DEADLINE_MS) {
          found = (await db.query("select 1 from audit_logs where event_id = $1", [eventId])).rowCount === 1;
          if (!found) await new Promise((r) => setTimeout(r, 50));
        }
        record("job", found, found
          ? `an audit job added on the host became an audit_logs row in ${seconds(performance.now() - enqueuedAt)}`
          : `no audit_logs row for ${eventId} after ${seconds(JOB_DEADLINE_MS)}`);
      } catch (err) {
        record("job", false, err instanceof Error ? err.message : String(err));
      } finally {
        await queue.close();
        connection.disconnect();
      }
    } finally {
      await db.end();
    }

    const uid = await podman(["exec", container, "id", "-u"], 30_000);
    const top = await podman(["top", container, "pid", "user", "args"], 30_000);
    const pid1 = top.stdout.split("\n").map((l) => l.trim().split(/\s+/)).find((cols) => cols[0] === "1");
    const pid1User = pid1?.[1];
    const pid1Args = pid1?.slice(2).join(" ");
    record(
      "user",
      uid.code === 0 && uid.stdout.trim() !== "0" && pid1User !== "root" && pid1Args === "node worker/main.ts",
      `id -u in the container: ${uid.stdout.trim() || uid.stderr.trim()}; PID 1: ${pid1User ?? "?"} running ${pid1Args ?? "?"}`,
    );

    const health = await podman(["healthcheck", "run", container], 60_000);
    record("healthcheck", health.code === 0, health.code === 0
      ? "the image's HEALTHCHECK (node -e fetch /readyz) reports healthy"
      : `podman healthcheck run: exit ${health.code} ${(health.stdout + health.stderr).trim()}`);

    const window = await drainWindowSeconds();
    const stop = await podman(["stop", "--time", String(window), container], (window + 30) * 1000);
    const exit = await podman(["inspect", "--format", "{{.State.ExitCode}}", container], 30_000);
    const logs = await podman(["logs", container], 30_000);
    const drained = /"msg":"worker stopped"/.test(logs.stdout + logs.stderr);
    const exitCode = exit.stdout.trim();
    record(
      "stop",
      stop.code === 0 && exitCode === "0" && drained && stop.ms < window * 1000,
      `podman stop (SIGTERM): container exit ${exitCode} after ${seconds(stop.ms)} (drain window ${window} s)${drained ? "" : "; no \"worker stopped\" line in its log"}`,
    );
  } finally {
    await podman(["rm", "--force", "--ignore", container], 60_000);
    await Promise.allSettled([redis?.stop(), postgres?.stop()]);
    rmSync(workDir, { recursive: true, force: true });
  }

  const image = await inspectImage(IMAGE);
  const baseImage = await inspectImage(BASE_IMAGE);
  const mb = (bytes: number | undefined) => (bytes === undefined ? "?" : `${Math.round(bytes / 1e6)} MB`);
  console.log(`image:check  image ${IMAGE}: ${mb(image?.Size)} (base ${mb(baseImage?.Size)}); whole check ${seconds(performance.now() - started)}`);
}

try {
  await main();
} catch (err) {
  record("run", false, err instanceof Error ? err.message : String(err));
}
const failed = checks.filter((c) => !c.ok).length;
console.log(`image:check: ${checks.length - failed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
