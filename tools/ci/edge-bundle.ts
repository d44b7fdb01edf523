// The edge bundle exactly as `wrangler deploy` would upload it (`--dry-run --outdir`), measured the
// way wrangler reports it ("Total Upload: … / gzip: …": the modules' bytes, and one gzip of them
// all), and the budget it must stay within. tools/ci/edge-deploy.test.ts fails CI past the budget;
// `bash tools/dev/with-node.sh node tools/ci/edge-bundle.ts` prints each environment's figures.
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

export const ROOT = resolve(import.meta.dirname, "../..");
export const WRANGLER_CONFIG = join(ROOT, "wrangler.toml");

/** The environments in wrangler.toml that are deployed (the top level is local only). */
export const DEPLOY_ENVIRONMENTS = ["staging", "production"] as const;
export type DeployEnvironment = (typeof DEPLOY_ENVIRONMENTS)[number];

/**
 * Measured 2026-12-01 (wrangler 4.164.0, minified, at commit 5b17b26): 960 390 B raw, 196 484 B gzip —
 * mostly the Stripe SDK and BullMQ's Lua sources. The budget is that plus about 10 %. (Raised once
 * from 1 004 000 / 197 500, set at 16283cb's 912 816 / 179 434, for end-user JWTs: jose, the
 * OpenAPI document built from the zod schemas, and the rate limiter.) Raise it on purpose, with
 * the reason in the commit (a new dependency worth its weight), never just to turn CI green. For scale, Cloudflare's limit is 3 MB (Free) / 10 MB (Paid) after
 * compression, and a bigger script also takes longer to start.
 */
export const BUNDLE_BUDGET = { rawBytes: 1_056_000, gzipBytes: 216_000 } as const;

export interface BundleSize {
  /** Module files wrangler would upload (source maps and its README excluded). */
  files: string[];
  rawBytes: number;
  gzipBytes: number;
}

export interface CommandResult {
  code: number;
  output: string;
}

/** Runs the project's wrangler; never throws, so a failure reaches the caller with its output. */
export function runWrangler(args: string[], timeoutMs = 120_000): Promise<CommandResult> {
  return new Promise((done) => {
    const child = spawn(join(ROOT, "node_modules/.bin/wrangler"), args, {
      cwd: ROOT,
      // Offline and unattended: no metrics upload, no prompts, no update check.
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_UPDATE_NOTIFIER: "1" },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
    });
    let output = "";
    child.stdout.on("data", (b: Buffer) => (output += b.toString()));
    child.stderr.on("data", (b: Buffer) => (output += b.toString()));
    child.on("error", (err) => done({ code: 1, output: `${output}\nwrangler: ${err.message}` }));
    child.on("close", (code, signal) => done({ code: code ?? 1, output: signal ? `${output}\nwrangler: killed by ${signal}` : output }));
  });
}

export async function measureBundle(outDir: string): Promise<BundleSize> {
  const files = (await readdir(outDir)).filter((name) => !name.endsWith(".map") && name !== "README.md").sort();
  const contents = await Promise.all(files.map((name) => readFile(join(outDir, name))));
  return {
    files,
    rawBytes: contents.reduce((sum, c) => sum + c.byteLength, 0),
    gzipBytes: gzipSync(Buffer.concat(contents)).byteLength,
  };
}

/** `wrangler deploy --dry-run --env <env>` into a temporary folder; the bundle's size if it built. */
export async function dryRunDeploy(env: DeployEnvironment): Promise<CommandResult & { size?: BundleSize }> {
  const outDir = await mkdtemp(join(tmpdir(), `edgefleet-edge-${env}-`));
  try {
    const result = await runWrangler(["deploy", "--dry-run", "--outdir", outDir, "--env", env, "--config", WRANGLER_CONFIG]);
    return result.code === 0 ? { ...result, size: await measureBundle(outDir) } : result;
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

export function overBudget(size: BundleSize): string[] {
  const problems: string[] = [];
  if (size.rawBytes > BUNDLE_BUDGET.rawBytes) problems.push(`raw ${size.rawBytes} B > budget ${BUNDLE_BUDGET.rawBytes} B`);
  if (size.gzipBytes > BUNDLE_BUDGET.gzipBytes) problems.push(`gzip ${size.gzipBytes} B > budget ${BUNDLE_BUDGET.gzipBytes} B`);
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
  let failed = false;
  for (const env of DEPLOY_ENVIRONMENTS) {
    const result = await dryRunDeploy(env);
    if (!result.size) {
      process.stderr.write(result.output);
      console.log(`${env}: wrangler deploy --dry-run exited ${result.code}`);
      failed = true;
      continue;
    }
    const problems = overBudget(result.size);
    failed ||= problems.length > 0;
    console.log(
      `${env}: ${result.size.rawBytes} B (${kib(result.size.rawBytes)}) raw, ${result.size.gzipBytes} B (${kib(result.size.gzipBytes)}) gzip` +
        ` — budget ${BUNDLE_BUDGET.rawBytes} / ${BUNDLE_BUDGET.gzipBytes} B${problems.length ? `: OVER (${problems.join("; ")})` : ""}`,
    );
  }
  process.exit(failed ? 1 : 0);
}
