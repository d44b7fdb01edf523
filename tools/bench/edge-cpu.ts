// The edge app's own CPU per request, without the network: `POST /v1/events` through the real
// createApp and producer, with a Redis transport that encodes the pipeline with the edge's RESP
// encoder and decodes a canned reply (so RESP work counts, socket and Redis time do not). Beside
// it, each step of the request alone, many times over, so the split says where the time goes.
//
//   bash tools/dev/with-node.sh node tools/bench/edge-cpu.ts [--iterations N] [--rounds N] [--json]
//
// Node runs the same V8 as workerd; absolute µs differ from workerd's, the split and the
// before/after difference are what this is for. Medians of interleaved rounds (the machine is shared).
import { parseArgs } from "node:util";
import { createApp } from "../../edge/app.ts";
import { authenticate, sha256Hex, stampEvent } from "../../edge/auth.ts";
import { checkJsonValues } from "../../edge/json-guard.ts";
import { apiSecureHeaders, requireJson } from "../../edge/protection.ts";
import { createProducer } from "../../edge/queue/producer.ts";
import { buildAddJob } from "../../edge/queue/job-args.ts";
import { encodeCommands, RespDecoder, type RedisCommand, type Reply } from "../../edge/queue/resp.ts";
import { runPipeline, type RedisTransport } from "../../edge/queue/transport.ts";
import { AuditEvent, auditContract } from "../../shared/jobs/audit.ts";
import { contractOptions } from "../../shared/jobs/contract.ts";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { auditEvent } from "./enqueue.ts";

const { values: flags } = parseArgs({
  options: {
    iterations: { type: "string", default: "20000" },
    rounds: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
    /** Run only the steps whose name contains this (e.g. "full", for --cpu-prof). */
    only: { type: "string" },
  },
});
const ITERATIONS = Number(flags.iterations);
const ROUNDS = Number(flags.rounds);

const API_KEY = "bench-key-0123456789abcdef";
const encoder = new TextEncoder();

/**
 * A transport that does the CPU side of a real one: encodes the pipeline into RESP bytes and
 * decodes a reply per command (the add answers the job id, ZSCORE answers nil, like a fresh job).
 */
function memoryTransport(): RedisTransport {
  return {
    async pipeline(commands: readonly RedisCommand[]): Promise<Reply[]> {
      const bytes = encodeCommands(commands);
      if (bytes.byteLength === 0) throw new Error("empty pipeline");
      const id = commands.find((c) => c[0] === "ZSCORE")?.[2] ?? "1";
      const text = commands.map((c) => (c[0] === "ZSCORE" ? "$-1\r\n" : `$${String(id).length}\r\n${String(id)}\r\n`)).join("");
      const decoder = new RespDecoder();
      decoder.push(encoder.encode(text));
      const replies: Reply[] = [];
      for (let r = decoder.next(); r !== undefined; r = decoder.next()) replies.push(r);
      return replies;
    },
    async close() {},
  };
}

const digest = await sha256Hex(API_KEY);
const app = createApp({
  apiKeyHashes: [digest],
  openQueue: () => ({ producer: createProducer(memoryTransport(), { prefix: "bench" }), close: async () => {} }),
});

let seq = 0;
// Like an HTTP request off the wire: with Content-Length (a Request built from a string has none,
// and hono's bodyLimit would then buffer the stream, which no real client request makes it do).
const request = () => {
  const body = JSON.stringify(auditEvent(`ev-${++seq}`));
  return new Request("http://edge.local/v1/events", {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", "content-length": String(encoder.encode(body).byteLength) },
    body,
  });
};

type Step = { name: string; run: () => Promise<unknown> | unknown; note?: string };

// The runtime's floor: what the empty Worker does (read the body, answer JSON).
async function floor() {
  const req = request();
  await req.arrayBuffer();
  const res = Response.json({ jobs: [{ id: "empty", queue: "audit" }] }, { status: 202 });
  await res.arrayBuffer();
}

// As in workerd: the session's close goes to waitUntil (without a context the middleware awaits it).
const executionCtx = { waitUntil() {}, passThroughOnException() {}, props: {} };

async function full() {
  const res = await app.fetch(request(), {}, executionCtx);
  if (res.status !== 202) throw new Error(`edge answered ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
}

// Each middleware alone, in a one-route Hono app whose handler answers like the empty Worker;
// minus "hono: one route" that is the middleware's own cost.
function honoWith(...mw: Parameters<Hono["use"]>[1][]) {
  const h = new Hono();
  for (const m of mw) h.use(m);
  h.post("/v1/events", async (c) => {
    await c.req.arrayBuffer();
    return c.json({ jobs: [{ id: "empty", queue: "audit" }] }, 202);
  });
  return async () => {
    const res = await h.fetch(request());
    await res.arrayBuffer();
  };
}

const parsedEvent = auditEvent("ev-fixed");
const textEvent = JSON.stringify(parsedEvent);
const validated = AuditEvent.parse(parsedEvent);
const caller = { actor: { type: "api_key" as const, id: digest.slice(0, 12) }, scopes: "all" as const };
const job = { ...validated, id: "ev-fixed", occurredAt: new Date().toISOString(), actor: caller.actor };
const producer = createProducer(memoryTransport(), { prefix: "bench" });
const call = () =>
  buildAddJob({ prefix: "bench", queue: "audit", name: auditContract.name, data: job, defaults: auditContract.defaults, opts: { jobId: job.id, ...contractOptions(auditContract, job) }, timestamp: Date.now() });

const steps: Step[] = [
  { name: "floor (empty Worker's work)", run: floor },
  { name: "edge POST /v1/events (full)", run: full },
  { name: "hono: one route", run: honoWith() },
  { name: "hono + requestId", run: honoWith(requestId({ headerName: "X-Request-Id" })) },
  { name: "hono + secure headers", run: honoWith(apiSecureHeaders()) },
  { name: "hono + authenticate", run: honoWith(authenticate({ apiKeys: [digest] })) },
  { name: "hono + requireJson", run: honoWith(requireJson()) },
  { name: "sha256Hex(key)", run: () => sha256Hex(API_KEY) },
  { name: "JSON.parse + json-guard", run: () => checkJsonValues(JSON.parse(textEvent)) },
  { name: "zod AuditEvent.safeParse", run: () => AuditEvent.safeParse(parsedEvent) },
  { name: "stampEvent", run: () => stampEvent(caller, { ...validated, id: "x", occurredAt: "y" }, "accountId") },
  { name: "buildAddJob (msgpack, JSON)", run: call },
  { name: "runPipeline (EVALSHA, RESP enc/dec)", run: () => runPipeline(memoryTransport(), [call(), ["ZSCORE", "bench:audit:failed", "ev-fixed"]]) },
  { name: "producer.addAll (all of the above)", run: () => producer.addAll([{ contract: auditContract, data: job, opts: { jobId: job.id } }]) },
];

// Process CPU time (user + system, all threads), not wall time: on a shared, loaded machine the
// wall clock also counts the time this process waited for a core.
async function time(step: Step, n: number): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) await step.run();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

if (flags.only) steps.splice(0, steps.length, ...steps.filter((s) => s.name.includes(flags.only as string) || s.name.startsWith("floor")));
// Warm every path up first (JIT), then interleaved rounds.
for (const s of steps) await time(s, Math.min(2000, ITERATIONS));
const samples = new Map<string, number[]>(steps.map((s) => [s.name, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const s of steps) samples.get(s.name)?.push(await time(s, ITERATIONS));
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};
const result = Object.fromEntries(steps.map((s) => [s.name, median(samples.get(s.name) ?? [])]));
if (flags.json) {
  console.log(JSON.stringify(result));
} else {
  const floorUs = result["floor (empty Worker's work)"] ?? 0;
  const oneRoute = result["hono: one route"] ?? 0;
  console.log(`node ${process.version}, ${ITERATIONS} iterations × ${ROUNDS} rounds, median CPU µs per call`);
  for (const s of steps) {
    const us = result[s.name] ?? 0;
    const extra = s.name.startsWith("hono +") ? `  (+${(us - oneRoute).toFixed(1)} over one route)` : "";
    console.log(`${s.name.padEnd(40)} ${us.toFixed(1).padStart(8)} µs${extra}`);
  }
  console.log(`app's own share (full − floor)          ${((result["edge POST /v1/events (full)"] ?? 0) - floorUs).toFixed(1).padStart(8)} µs`);
}
