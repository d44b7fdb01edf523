// A smoke run of `npm run bench`: every section with tiny counts, so a change that breaks the
// benchmark (or its own checks) shows up in the suite rather than on the next measuring day.
// No figure is asserted: they mean nothing at these counts on a shared machine.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../dev/local-services.ts";

const SMOKE_FLAGS = [
  "--quick", "--concurrency", "5", "--requests", "20", "--warmup", "5", "--rounds", "1", "--latency-requests", "10",
  "--drain-jobs", "200", "--drain-rounds", "1", "--transport-requests", "20", "--stripe-lifecycles", "2",
  "--commands-jobs", "3", "--idle-seconds", "2", "--fsync-jobs", "50", "--scale-rounds", "1", "--scale-idle-seconds", "2",
  "--rtt-requests", "2",
];

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // PATH as the suite got it from tools/dev/with-node.sh: wrangler needs its Node first on PATH.
  const child = spawn(process.execPath, [join(ROOT, "tools/bench/bench.ts"), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

describe("npm run bench", () => {
  it("runs every section end to end with tiny counts, its checks pass, and it exits 0", async () => {
    const { code, stdout, stderr } = await runBench(SMOKE_FLAGS);
    expect(code, stderr).toBe(0);
    for (const heading of [
      "### Enqueue: 5 concurrent",
      "### Enqueue latency, one request at a time",
      "### The edge/empty gap, step by step",
      "### Redis cost per enqueued job",
      "### Worker drain: 200 pre-loaded audit jobs",
      "### Edge transports in Node: 20 single-job enqueues each",
      "### Stripe webhooks end to end: 2 customer lifecycles",
      "### Redis commands per job",
      "### Idle worker process",
      "### AOF fsync policy",
      "### Protection: rate limits off vs on",
      "### Round trips on the wire (injected latency)",
      "### Scale to zero: pickup latency from zero, idle cost at zero",
    ]) {
      expect(stdout).toContain(heading);
    }
    expect(stdout).not.toContain("Verification failed");
    expect(stderr).not.toContain("verification failed");
    // The Stripe and drain checks saw their rows (the figures behind verify.ts).
    expect(stdout).toMatch(/\| 28 \| \d+ \| \d+ \| 14 \/ 14 \| 0 \|/);
    expect(stdout).toContain("200 rows");
  }, 240_000);

  it("refuses bad flags with exit 1 and the usage", async () => {
    const { code, stderr } = await runBench(["--requests", "0"]);
    expect(code).toBe(1);
    expect(stderr).toContain("--requests");
    expect(stderr).toContain("npm run bench -- [flags]");
  });
});
