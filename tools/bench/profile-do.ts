// `node tools/bench/profile-do.ts [target] [requests]`: a V8 CPU profile of workerd under enqueue load
// (`wrangler dev --no-minify`, its inspector), printed as self time per function. Target "edge-do"
// (default) is the edge with REDIS_TRANSPORT=durable-object, "do-ping" the probe; the Worker and the
// RedisConnection object run in one isolate, so the profile shows both sides of the RPC.
// A diagnostic, not part of `npm run bench`: run it through `flock /tmp/bench.lock` like the bench.
import { spawn } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
// @ts-expect-error ws ships no types and @types/ws is not installed; used as on/once/send/close only.
import { WebSocket } from "ws";
import { sha256Hex } from "../../edge/auth.ts";
import { EDGE_SCRIPTS } from "../../shared/jobs/bullmq-scripts.ts";
import { redisOptions } from "../../worker/fleet.ts";
import { stopChild, untilHealthy } from "../dev/edge-process.ts";
import { freePort, ROOT, secret, startRedis } from "../dev/local-services.ts";
import { auditEvent } from "./enqueue.ts";
import { closedLoop, httpClient } from "./load.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; scriptId: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const target = process.argv[2] ?? "edge-do";
const requests = Number(process.argv[3] ?? 3000);
const concurrency = 25;
const dir = join(ROOT, ".data/bench", `profile-${process.pid}`);
let bundleLines: string[] = [];

const redisServer = await startRedis({ dataDir: join(dir, "redis") });
const redis = new Redis(redisOptions(redisServer.url));
for (const script of EDGE_SCRIPTS) await redis.script("LOAD", script.content);
const apiKey = `ef_bench_${secret()}`;
const [port, inspectorPort] = [await freePort(), await freePort()];
const vars: Record<string, string> = {
  REDIS_URL: redisServer.url, API_KEY_HASHES: await sha256Hex(apiKey), QUEUE_PREFIX: "profile", RATE_LIMITS: "off",
  REDIS_TRANSPORT: "durable-object",
};
const child = spawn(
  join(ROOT, "node_modules/.bin/wrangler"),
  [
    "dev", ...(target === "do-ping" ? ["tools/bench/do-ping-worker.ts"] : []), "--config", join(ROOT, "wrangler.toml"),
    "--no-minify", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspectorPort),
    "--show-interactive-dev-session=false", "--log-level", "warn",
    ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ],
  { cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: "false" }, stdio: ["ignore", "inherit", "inherit"] },
);
try {
  const url = `http://127.0.0.1:${port}`;
  await untilHealthy(`${url}${target === "do-ping" ? "/" : "/health"}`, child, "wrangler dev");
  const client = httpClient(
    { url: `${url}/v1/events`, headers: { authorization: `Bearer ${apiKey}` }, expectStatus: 202, timeoutMs: 10_000 },
    concurrency,
  );
  const run = (n: number, tag: string) =>
    closedLoop({ concurrency, count: n, deadlineMs: 120_000 }, (i) => client.sendBody(JSON.stringify(auditEvent(`${tag}-${i}`))));
  await run(500, "warm");

  const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as Array<{ webSocketDebuggerUrl: string; title?: string }>;
  // wrangler's inspector proxy only accepts its own DevTools origin (or localhost).
  const ws = new WebSocket(targets[0]?.webSocketDebuggerUrl as string, { headers: { Origin: "https://devtools.devprod.cloudflare.dev" } });
  await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
  let nextId = 1;
  const pending = new Map<number, (result: unknown) => void>();
  ws.on("message", (data: unknown) => {
    const msg = JSON.parse(String(data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
  });
  const send = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 100 });
  await send("Profiler.start");
  const loop = await run(requests, "p");
  const { profile } = (await send("Profiler.stop")) as { profile: Profile };
  // The bundle's source, so each function's line can be shown (wrangler deletes its build folder).
  const scriptId = profile.nodes.find((n) => n.callFrame.url === "worker.js")?.callFrame.scriptId;
  if (scriptId) {
    await send("Debugger.enable");
    const { scriptSource } = (await send("Debugger.getScriptSource", { scriptId })) as { scriptSource: string };
    bundleLines = scriptSource.split("\n");
  }
  ws.close();
  client.close();
  console.log(`${target}: ${requests} requests, ${loop.perSecond.toFixed(0)} req/s, errors ${loop.errors}`);
  if (process.env.PROFILE_OUT) writeFileSync(process.env.PROFILE_OUT, JSON.stringify(profile));
  summarize(profile, requests);
} finally {
  await stopChild(child);
  await redis.quit();
  await redisServer.stop();
  rmSync(dir, { recursive: true, force: true });
}

/** Self time per function (µs per request), and inclusive time for the edge's own sources. */
function summarize(profile: Profile, perRequests: number): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const key = (n: ProfileNode) =>
    `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.replace(/^.*\//, "")}:${n.callFrame.lineNumber + 1}` +
    (n.callFrame.url === "worker.js" ? `  | ${bundleLines[n.callFrame.lineNumber]?.trim().slice(0, 90) ?? ""}` : "");
  let all = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const node = byId.get(id) as ProfileNode;
    all += dt;
    self.set(key(node), (self.get(key(node)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = key(byId.get(at) as ProfileNode);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + dt);
    }
  });
  const top = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${(v / perRequests).toFixed(1).padStart(8)} µs  ${k}`);
  console.log(`sampled ${(all / perRequests).toFixed(1)} µs per request (idle included)`);
  console.log("--- self time per request ---");
  console.log(top(self, 45).join("\n"));
  console.log("--- inclusive time per request ---");
  console.log(top(total, 60).join("\n"));
}
