// `.railway/railway.ts` is what `railway config plan|apply` reads. No Railway is reachable from CI,
// so these tests check the file the ways that can fail here: evaluated as the Railway CLI does
// (a separate `node` with type stripping), type-checked against the SDK, its variables parsed by
// the fleet's own configuration, and a deploy rehearsed with its own settings — the pre-deploy
// command, the image's command, the health check path within its timeout, SIGTERM answered
// within drainingSeconds — against real Redis and Postgres.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Redis } from "ioredis";
import type { ServiceNode } from "railway/iac";
import { afterEach, describe, expect, inject, it } from "vitest";
import { QUEUE_NAMES } from "../../shared/jobs/registry.ts";
import { parseEnv } from "../../worker/env.ts";
import { deleteKeys, uniqueId } from "../testing/fixtures.ts";
import { autoscaler, fleet, resources, type Layout } from "../../.railway/railway.ts";
import { parseAutoscalerEnv } from "../../worker/autoscaler/config.ts";

const ROOT = join(import.meta.dirname, "../..");
const IAC_FILE = join(ROOT, ".railway/railway.ts");
const LAYOUTS: Layout[] = ["single", "per-queue"];

/** What a shutdown needs after the drain bound: closing Redis and Postgres connections, exiting. */
const CLOSE_MARGIN_MS = 3_000;

/** Values the operator sets with `railway variable set` (preserve() in the file); never real ones. */
function operatorValues(): Record<string, string> {
  return {
    REDIS_URL: inject("redisUrl"),
    DATABASE_URL: inject("databaseUrl"),
    RESEND_API_KEY: "re_test_not_a_key",
    EMAIL_FROM: "edgefleet <ops@example.com>",
    STRIPE_SECRET_KEY: "sk_test_not_a_key",
    AUTOSCALER_TARGETS: JSON.stringify([{ serviceId: "svc-worker", environmentId: "env-test", queues: [...QUEUE_NAMES] }]),
    AUTOSCALER_WAKE_TOKEN: "a-wake-token-that-is-long-enough-0123",
    RAILWAY_TOKEN: "railway-project-token-not-real",
  };
}

type Variable = NonNullable<ServiceNode["variables"]>[string];

/** The environment Railway would give the service once the operator has set its preserved values. */
function serviceEnv(service: ServiceNode): Record<string, string> {
  const values = operatorValues();
  const env: Record<string, string> = {};
  for (const [name, variable] of Object.entries(service.variables ?? {})) {
    if (variable.type === "literal") {
      expect(variable.value, `${service.name}.${name}`).toBeTypeOf("string");
      env[name] = variable.value ?? "";
    } else if (variable.type === "preserve") {
      const value = values[name];
      if (value === undefined) throw new Error(`${service.name}.${name} is preserved but has no test value here`);
      env[name] = value;
    } else {
      throw new Error(`${service.name}.${name}: unexpected variable type ${variable.type}`);
    }
  }
  return env;
}

function isSecretName(name: string): boolean {
  return /URL|KEY|SECRET|TOKEN|PASSWORD/.test(name);
}

/** Dockerfile.worker's exec-form CMD: what runs when the service sets no start command. */
function imageCommand(): string[] {
  const dockerfile = readFileSync(join(ROOT, "Dockerfile.worker"), "utf8");
  const line = dockerfile.split("\n").findLast((l) => /^CMD\s/.test(l));
  if (!line) throw new Error("Dockerfile.worker has no CMD");
  const command: unknown = JSON.parse(line.replace(/^CMD\s+/, ""));
  if (!Array.isArray(command) || !command.every((part) => typeof part === "string")) {
    throw new Error(`Dockerfile.worker's CMD is not exec form: ${line}`);
  }
  return command;
}

interface Proc {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  exit: Promise<number | null>;
}

const children: ChildProcess[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

/** Runs a `node …` command line as Railway would in the image (WORKDIR = repository root here). */
function runNode(command: string[], env: Record<string, string>): Proc {
  expect(command[0], `"${command.join(" ")}" must start with node`).toBe("node");
  const child = spawn(process.execPath, command.slice(1), {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  const lines: Array<Record<string, unknown>> = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
    });
  }
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, lines, exit };
}

async function within<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what()} (after ${ms} ms)`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function poll<T>(probe: () => Promise<T | undefined>, deadlineMs: number, what: () => string): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const result = await probe().catch(() => undefined);
    if (result !== undefined) return result;
    if (Date.now() > deadline) throw new Error(`${what()} (after ${deadlineMs} ms)`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe(".railway/railway.ts as the Railway CLI evaluates it", () => {
  // The CLI runs `node --experimental-strip-types --input-type=module -e <loader> -- <file>` with the
  // node on PATH and calls the default export. CLI 5.43 passes `{}` as the context; the docs
  // describe a full one — the file must give the same answer for both.
  const loader = `
    import { pathToFileURL } from "node:url";
    import { createRailwayContext } from "railway/iac";
    const mod = await import(pathToFileURL(process.argv[1]).href);
    const bare = await mod.default({});
    const full = await mod.default(createRailwayContext({ command: "plan", environment: "production" }));
    process.stdout.write(JSON.stringify({ bare, full }));
  `;

  it("loads with Node's own type stripping and declares the fleet's services, whatever the context", async () => {
    const proc = runNode(
      ["node", "--experimental-strip-types", "--disable-warning=ExperimentalWarning", "--input-type=module", "-e", loader, "--", IAC_FILE],
      {},
    );
    let stdout = "";
    proc.child.stdout?.on("data", (b: Buffer) => (stdout += b.toString()));
    expect(await within(proc.exit, 30_000, () => "evaluation did not finish"), JSON.stringify(proc.lines)).toBe(0);
    const { bare, full } = JSON.parse(stdout) as { bare: unknown; full: unknown };
    expect(full).toEqual(bare);
    expect(bare).toMatchObject({
      name: "edgefleet",
      resources: [
        { address: "service.worker", type: "service", name: "worker" },
        { address: "service.autoscaler", type: "service", name: "autoscaler" },
      ],
    });
    // The evaluated project is the in-process one (same file, same layout), so the checks below hold for it.
    expect(JSON.parse(JSON.stringify(resources("single")))).toEqual((bare as { resources: unknown }).resources);
  });

  it("type-checks against the railway SDK's types", async () => {
    const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
    const proc = runNode(["node", tsc, "--noEmit", "--listFiles", "-p", join(ROOT, "tools/ci/railway.tsconfig.json")], {});
    let output = "";
    for (const s of [proc.child.stdout, proc.child.stderr]) s?.on("data", (b: Buffer) => (output += b.toString()));
    await within(proc.exit, 120_000, () => "tsc did not finish");
    // Not vacuous: the file and the SDK's declarations were both part of the program.
    expect(output).toContain("/.railway/railway.ts");
    expect(output).toContain("/node_modules/railway/dist/iac/index.d.ts");
    // Errors elsewhere (work in progress in files the IaC imports) are `npm run typecheck`'s to report.
    const own = output.split("\n").filter((l) => /^\.railway\/.*error TS/.test(l) || /\/\.railway\/.*error TS/.test(l));
    expect(own).toEqual([]);
  }, 240_000);
});

describe.each(LAYOUTS)("the %s layout", (layout) => {
  const services = fleet(layout);

  it("drains every queue exactly once, and each service's variables satisfy the fleet's configuration", () => {
    expect(new Set(services.map((s) => s.name)).size).toBe(services.length);
    const drained = services.flatMap((service) => parseEnv(serviceEnv(service)).queues);
    expect([...drained].sort()).toEqual([...QUEUE_NAMES].sort());
  });

  it("keeps secrets out of the file: every connection or key is preserved, set outside the code", () => {
    for (const service of services) {
      const variables = Object.entries(service.variables ?? {});
      expect(variables.map(([name]) => name)).toEqual(expect.arrayContaining(["REDIS_URL", "DATABASE_URL"]));
      for (const [name, variable] of variables) {
        if (isSecretName(name)) expect({ name, type: variable.type }).toEqual({ name, type: "preserve" });
      }
      for (const [name, variable] of variables as Array<[string, Variable]>) {
        if (variable.type === "literal") expect(variable.value ?? "", name).not.toMatch(/:\/\/|^(re|sk|rk|whsec)_/);
      }
    }
  });

  it("builds Dockerfile.worker, and every file the image copies triggers a redeploy", () => {
    const dockerfile = readFileSync(join(ROOT, "Dockerfile.worker"), "utf8");
    const copied = dockerfile
      .split("\n")
      .filter((l) => /^COPY\s/.test(l) && !l.includes("--from"))
      .flatMap((l) => l.trim().split(/\s+/).slice(1, -1))
      .filter((arg) => !arg.startsWith("--"));
    expect(copied.length).toBeGreaterThan(0);
    for (const service of services) {
      expect(service.build).toMatchObject({ builder: "DOCKERFILE", dockerfilePath: "Dockerfile.worker" });
      expect(existsSync(join(ROOT, service.build?.dockerfilePath ?? ""))).toBe(true);
      const patterns = service.build?.watchPatterns ?? [];
      for (const source of copied) {
        expect(patterns, `a change to ${source} must redeploy ${service.name}`).toSatisfy(
          (p: string[]) => p.includes(source) || p.includes(`${source.replace(/\/$/, "")}/**`),
        );
      }
    }
  });

  it("drains for longer than the fleet's shutdown bound, and keeps the image's own command", () => {
    for (const service of services) {
      const config = parseEnv(serviceEnv(service));
      const draining = service.deploy?.drainingSeconds;
      expect(draining, `${service.name}: drainingSeconds`).toBeTypeOf("number");
      expect((draining ?? 0) * 1000).toBeGreaterThanOrEqual(config.shutdownTimeoutMs + CLOSE_MARGIN_MS);
      // A start command would replace the exec-form CMD, and with it Node as PID 1 receiving SIGTERM.
      expect(service.deploy?.startCommand).toBeUndefined();
      expect(service.deploy).toMatchObject({
        preDeployCommand: ["node worker/migrate.ts"],
        healthcheckPath: "/readyz",
        restartPolicyType: "ON_FAILURE",
      });
      expect(service.deploy?.numReplicas).toBeGreaterThanOrEqual(1);
    }
  });

  it(
    "deploys as Railway would: pre-deploy command exits 0, the health check passes in time, SIGTERM exits 0 within drainingSeconds",
    async () => {
      for (const service of services) {
        const prefix = uniqueId(`railway-${service.name}`);
        cleanups.push(() => deleteKeys(inject("redisUrl"), prefix));
        // Railway injects PORT; 0 lets the test read the port back instead of racing for a free one.
        const env = { ...serviceEnv(service), QUEUE_PREFIX: prefix, PORT: "0" };
        const deploy = service.deploy ?? {};

        for (const line of deploy.preDeployCommand ?? []) {
          const pre = runNode(line.split(" "), env);
          const code = await within(pre.exit, 60_000, () => `${service.name}: "${line}" still running: ${JSON.stringify(pre.lines)}`);
          expect(code, `${service.name}: "${line}": ${JSON.stringify(pre.lines)}`).toBe(0);
        }

        const started = Date.now();
        const main = runNode(imageCommand(), env);
        const timeoutMs = (deploy.healthcheckTimeout ?? 300) * 1000;
        const ready = await poll(
          async () => main.lines.find((l) => l.msg === "worker ready"),
          timeoutMs,
          () => `${service.name}: no "worker ready": ${JSON.stringify(main.lines)}`,
        );
        const url = `http://127.0.0.1:${String(ready.port)}${deploy.healthcheckPath ?? "/"}`;
        const healthy = await poll(
          async () => {
            const res = await fetch(url);
            return res.status === 200 ? ((await res.json()) as Record<string, unknown>) : undefined;
          },
          Math.max(1_000, timeoutMs - (Date.now() - started)),
          () => `${service.name}: ${url} never answered 200 within healthcheckTimeout`,
        );
        expect(healthy).toMatchObject({ status: "ready" });
        // The service really is the fleet for its queues: it registered them under its prefix.
        const redis = new Redis(inject("redisUrl"), { maxRetriesPerRequest: 1 });
        cleanups.push(async () => void redis.disconnect());
        const registered = await redis.hgetall(`${prefix}:edgefleet:fleet`);
        expect(Object.keys(registered).sort()).toEqual([...parseEnv(env).queues].sort());

        main.child.kill("SIGTERM");
        const code = await within(
          main.exit,
          (deploy.drainingSeconds ?? 0) * 1000,
          () => `${service.name}: still running ${deploy.drainingSeconds} s after SIGTERM: ${JSON.stringify(main.lines)}`,
        );
        expect(code, JSON.stringify(main.lines)).toBe(0);
      }
    },
    300_000,
  );
});

describe("the autoscaler service", () => {
  const service = autoscaler();

  it("runs one replica of worker/autoscaler/main.ts from the fleet's image, its health check on /healthz", () => {
    expect(service.build).toMatchObject({ builder: "DOCKERFILE", dockerfilePath: "Dockerfile.worker" });
    expect(service.deploy).toMatchObject({ startCommand: "node worker/autoscaler/main.ts", healthcheckPath: "/healthz", numReplicas: 1, restartPolicyType: "ON_FAILURE" });
    expect(existsSync(join(ROOT, "worker/autoscaler/main.ts"))).toBe(true);
  });

  it("keeps its secrets out of the file, and its variables satisfy the autoscaler's configuration", () => {
    for (const [name, variable] of Object.entries(service.variables ?? {})) {
      if (isSecretName(name)) expect({ name, type: variable.type }).toEqual({ name, type: "preserve" });
    }
    const config = parseAutoscalerEnv(serviceEnv(service));
    expect(config).toMatchObject({ dryRun: false, railway: { kind: "project" } });
    // Every queue the fleet drains is scaled by some target (the test value mirrors the single layout).
    expect(config.targets.flatMap((t) => t.queues).sort()).toEqual([...QUEUE_NAMES].sort());
  });

  it(
    "deploys as Railway would: /healthz answers 200 within the timeout, SIGTERM exits 0 within drainingSeconds",
    async () => {
      const prefix = uniqueId("railway-autoscaler");
      cleanups.push(() => deleteKeys(inject("redisUrl"), prefix));
      const deploy = service.deploy ?? {};
      // Railway reaches the service through its domain on PORT; 0 lets the test read it back. No
      // Railway API here: a dry run reads the queues and answers HTTP the same way.
      const main = runNode((deploy.startCommand ?? "").split(" "), { ...serviceEnv(service), QUEUE_PREFIX: prefix, PORT: "0", DRY_RUN: "1" });
      const timeoutMs = (deploy.healthcheckTimeout ?? 300) * 1000;
      const ready = await poll(async () => main.lines.find((l) => l.msg === "autoscaler ready"), timeoutMs, () => `no "autoscaler ready": ${JSON.stringify(main.lines)}`);
      const res = await poll(
        async () => {
          const r = await fetch(`http://127.0.0.1:${String(ready.port)}${deploy.healthcheckPath ?? "/"}`);
          return r.status === 200 ? r : undefined;
        },
        timeoutMs,
        () => "/healthz never answered 200",
      );
      expect(await res.json()).toMatchObject({ status: "ok" });
      main.child.kill("SIGTERM");
      const code = await within(main.exit, (deploy.drainingSeconds ?? 0) * 1000, () => `still running after SIGTERM: ${JSON.stringify(main.lines)}`);
      expect(code, JSON.stringify(main.lines)).toBe(0);
    },
    120_000,
  );
});

describe("Config as Code", () => {
  it("is gone: Railway would read a railway.toml or railway.json on deploy and refuse to manage the service from .railway/railway.ts", () => {
    for (const name of ["railway.toml", "railway.json"]) expect(existsSync(join(ROOT, name)), name).toBe(false);
  });
});
