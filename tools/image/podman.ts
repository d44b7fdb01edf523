// Building and running Dockerfile.worker on a machine without a Docker engine or an image registry:
// Debian's buildah and podman as root. The flags are the ones that work here (DESIGN §9): runc,
// because crun fails on this cgroup setup; explicit ulimits, because runc cannot raise the
// defaults podman asks for; the host network, because npm hangs behind podman's default bridge.
import { spawn } from "node:child_process";
import { copyFileSync, createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../dev/local-services.ts";

/** The name Dockerfile.worker's FROM resolves to; the stand-in is imported under the same name. */
export const BASE_IMAGE = "docker.io/library/node:24-bookworm-slim";
export const RUNTIME = ["--runtime", "runc"];
export const RUN_FLAGS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096", "--network", "host"];

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  /** Send output to this file instead of keeping it (long build logs). */
  logFile?: string;
  /** Pass stderr through to ours (progress of long steps). */
  showStderr?: boolean;
}

/**
 * Runs a command in its own process group and kills the whole group when it outlives `timeoutMs`:
 * npm and debootstrap can stall without failing, and their children must not outlive the check.
 */
export function run(command: string, args: string[], options: RunOptions): Promise<RunResult> {
  const started = performance.now();
  return new Promise((done) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const log = options.logFile ? createWriteStream(options.logFile) : undefined;
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (b: Buffer) => (log ? log.write(b) : (stdout += b.toString())));
    child.stderr.on("data", (b: Buffer) => {
      if (options.showStderr) process.stderr.write(b);
      if (log) log.write(b);
      else stderr += b.toString();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // the group is already gone
        }
      }
    }, options.timeoutMs);
    const finish = (code: number | null) => {
      clearTimeout(timer);
      const result = { code, stdout, stderr, ms: performance.now() - started, timedOut };
      if (log) log.end(() => done(result));
      else done(result);
    };
    child.once("error", (err) => {
      stderr += String(err);
      finish(null);
    });
    child.once("close", (code) => finish(code));
  });
}

export async function commandExists(name: string): Promise<boolean> {
  const found = await run("sh", ["-c", `command -v ${name}`], { timeoutMs: 10_000 });
  return found.code === 0;
}

/** buildah, podman and runc (and debootstrap for the stand-in base), from Debian's packages if missing. */
export async function ensureTools(say: (line: string) => void): Promise<void> {
  const needed = ["buildah", "podman", "runc", "debootstrap"];
  const missing: string[] = [];
  for (const name of needed) if (!(await commandExists(name))) missing.push(name);
  if (missing.length === 0) return;
  say(`installing ${missing.join(", ")} from Debian's packages (apt-get) ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const update = await run("apt-get", ["update", "-q"], { timeoutMs: 600_000, env });
  const install = update.code === 0
    ? await run("apt-get", ["install", "-y", "-q", ...needed], { timeoutMs: 900_000, env })
    : update;
  if (install.code !== 0) {
    throw new Error(`apt-get failed (exit ${install.code}):\n${tail(install.stderr || install.stdout, 20)}`);
  }
}

interface ImageInfo {
  Id: string;
  Size: number;
  Labels?: Record<string, string> | null;
}

export async function inspectImage(name: string): Promise<ImageInfo | undefined> {
  const result = await run("podman", ["image", "inspect", name], { timeoutMs: 60_000 });
  if (result.code !== 0) return undefined;
  const [info] = JSON.parse(result.stdout) as ImageInfo[];
  return info;
}

/**
 * Makes `node:24-bookworm-slim` available locally and says where it came from: an image pulled
 * earlier, a fresh pull, or the stand-in (already imported, re-imported from the cached root file
 * system, or assembled from Debian's packages and the npm registry). A real image always wins:
 * a pull is tried whenever only the stand-in is present.
 */
export async function ensureBase(say: (line: string) => void): Promise<string> {
  const present = await inspectImage(BASE_IMAGE);
  const standIn = present?.Labels?.["edgefleet.stand-in"] === "true";
  if (present && !standIn) return "node:24-bookworm-slim (pulled earlier)";
  const pull = await run("podman", ["pull", "--quiet", BASE_IMAGE], { timeoutMs: 300_000 });
  if (pull.code === 0) return "node:24-bookworm-slim (pulled)";
  const reason = tail(pull.stderr, 1).replace(/^Error: /, "");
  say(`cannot pull ${BASE_IMAGE} (${pull.timedOut ? "timed out" : reason}); using the stand-in`);
  let how = "already imported";
  if (!standIn) {
    const cache = join(ROOT, ".cache/image/base");
    how = existsSync(join(cache, "rootfs.tar")) ? "re-imported from .cache/image/base" : "assembled now, cached in .cache/image/base";
    const built = await run("bash", [join(ROOT, "tools/image/stand-in-base.sh"), BASE_IMAGE, cache], {
      timeoutMs: 1_200_000,
      showStderr: true,
    });
    if (built.code !== 0) throw new Error(`the stand-in base could not be built (exit ${built.code}${built.timedOut ? ", timed out" : ""})`);
  }
  const labels = (await inspectImage(BASE_IMAGE))?.Labels ?? {};
  return `stand-in for node:24-bookworm-slim: Debian bookworm minbase, node ${labels["edgefleet.stand-in.node"]}, npm ${labels["edgefleet.stand-in.npm"]} (${how})`;
}

/**
 * The CA bundle npm trusts on this machine (a TLS-inspecting proxy may sit in front of the
 * registry): npm's own `cafile` if set, else Debian's system bundle, else none (npm's built-in CAs).
 */
async function hostCaBundle(): Promise<string | undefined> {
  const configured = await run("npm", ["config", "get", "cafile"], { timeoutMs: 30_000 });
  const cafile = configured.stdout.trim();
  if (configured.code === 0 && cafile !== "" && cafile !== "null" && cafile !== "undefined" && existsSync(cafile)) return cafile;
  const system = "/etc/ssl/certs/ca-certificates.crt";
  return existsSync(system) ? system : undefined;
}

export interface BuildResult {
  ms: number;
  /** Steps buildah took from its layer cache. */
  cachedSteps: number;
  steps: number;
}

/**
 * `buildah bud` of Dockerfile.worker as it is. npm inside the build trusts the host's CA bundle
 * through a read-only mount over /usr/local/etc, npm's global config folder under the base's
 * /usr/local prefix: a private folder holding a copy of the bundle and an `npmrc` whose `cafile`
 * points at it. It is mounted for the RUN steps only, and since /usr/local/etc exists (empty) in
 * the base, no mount point is left behind in any layer (image:check's contents check looks).
 */
export async function buildImage(tag: string, logFile: string, timeoutMs: number): Promise<BuildResult> {
  const config = mkdtempSync(join(tmpdir(), "edgefleet-build-"));
  try {
    const ca = await hostCaBundle();
    const mount: string[] = [];
    if (ca) {
      copyFileSync(ca, join(config, "host-ca.crt"));
      writeFileSync(join(config, "npmrc"), "cafile=/usr/local/etc/host-ca.crt\n");
      mount.push("--volume", `${config}:/usr/local/etc:ro`);
    }
    const result = await run(
      "buildah",
      ["bud", ...RUNTIME, ...RUN_FLAGS, "--layers", "--format", "docker", "--pull=false", ...mount,
        "--file", "Dockerfile.worker", "--tag", tag, "."],
      { timeoutMs, logFile },
    );
    if (result.code !== 0) {
      const why = result.timedOut ? `timed out after ${Math.round(timeoutMs / 1000)} s` : `exit ${result.code}`;
      throw new Error(`buildah bud failed (${why}); last lines of ${logFile}:\n${tail(readFileSync(logFile, "utf8"), 25)}`);
    }
    const log = readFileSync(logFile, "utf8");
    return {
      ms: result.ms,
      steps: (log.match(/^STEP \d+\/\d+/gm) ?? []).length,
      cachedSteps: (log.match(/^--> Using cache/gm) ?? []).length,
    };
  } finally {
    rmSync(config, { recursive: true, force: true });
  }
}

export function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}
