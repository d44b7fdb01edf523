// The edge's two Redis transports side by side, in Node against local services: each request
// enqueues one job through a fresh transport, as the Worker does per request. "resp" opens a TCP
// connection, AUTHs and sends EVALSHA (the workerd socket transport pipelines AUTH with the
// command; this Node stand-in for it does not, so it pays one extra loopback round trip).
// "rest" is one HTTP POST /pipeline to the Upstash stand-in over a keep-alive pool, the way
// Cloudflare reuses connections to Upstash. Loopback figures rank overheads (CPU, bytes, round
// trips); on the internet the round trips dominate, see the README.
// Run from bench.ts (`--skip-transports` to leave out).
import { Redis } from "ioredis";
import { auditContract } from "../../shared/jobs/audit.ts";
import { createNodeTransport } from "../../edge/queue/node-transport.test-helper.ts";
import { createProducer } from "../../edge/queue/producer.ts";
import { encodeCommands } from "../../edge/queue/resp.ts";
import type { RedisTransport } from "../../edge/queue/transport.ts";
import { startUpstashStandIn } from "../../edge/queue/upstash-stand-in.test-helper.ts";
import { createUpstashTransport } from "../../edge/queue/upstash-transport.ts";
import { closedLoop, type LoopResult } from "./load.ts";
import { secret } from "../dev/local-services.ts";
import { redisOptions } from "../../worker/fleet.ts";

export interface TransportBenchOptions {
  redisUrl: string;
  /** Key prefix for the jobs written; the caller deletes `${prefix}:*` afterwards. */
  prefix: string;
  requests?: number;
  concurrency?: number;
}

export interface TransportResult extends LoopResult {
  transport: "resp" | "rest";
  /** Enqueues answered OK, warm-up included, and the jobs found in the queue afterwards. */
  accepted: number;
  jobsInRedis: number;
  /** Bytes the edge sends per single-job enqueue (RESP frames / JSON body, HTTP headers excluded). */
  requestBytes: number;
}

export async function benchTransports(options: TransportBenchOptions): Promise<TransportResult[]> {
  const requests = options.requests ?? 2000;
  const concurrency = options.concurrency ?? 25;
  const rest = await startUpstashStandIn({ redisUrl: options.redisUrl, token: secret() });
  const admin = new Redis(redisOptions(options.redisUrl));
  try {
    let restBytes = 0;
    const countingFetch: typeof fetch = (input, init) => {
      restBytes = typeof init?.body === "string" ? Buffer.byteLength(init.body) : 0;
      return fetch(input, init);
    };
    let respBytes = 0;
    const counted = (transport: RedisTransport): RedisTransport => ({
      ...transport,
      pipeline: (commands) => {
        respBytes = encodeCommands(commands).byteLength;
        return transport.pipeline(commands);
      },
    });
    const makers: Record<TransportResult["transport"], () => RedisTransport> = {
      resp: () => counted(createNodeTransport(options.redisUrl)),
      rest: () => createUpstashTransport(rest.url, rest.token, { timeoutMs: 5000, fetch: countingFetch }),
    };
    const results: TransportResult[] = [];
    for (const name of ["resp", "rest"] as const) {
      const enqueue = async (i: number) => {
        const transport = makers[name]();
        try {
          const producer = createProducer(transport, { prefix: `${options.prefix}-${name}` });
          await producer.add({ contract: auditContract, data: { id: `e${i}`, name: "bench", type: "domain", occurredAt: "2026-01-01T00:00:00Z", payload: { i } } });
        } finally {
          await transport.close();
        }
      };
      const warm = await closedLoop({ concurrency, count: 50, deadlineMs: 10_000 }, enqueue); // warm-up: scripts cached, pools open
      const loop = await closedLoop({ concurrency, count: requests, deadlineMs: 60_000 }, enqueue);
      const jobsInRedis = await admin.llen(`${options.prefix}-${name}:${auditContract.queue}:wait`);
      // The RESP figure excludes the AUTH frame sent first (≈ 30 B + password); REST excludes headers.
      results.push({ transport: name, ...loop, accepted: warm.ok + loop.ok, jobsInRedis, requestBytes: name === "resp" ? respBytes : restBytes });
    }
    return results;
  } finally {
    admin.disconnect();
    await rest.stop();
  }
}
