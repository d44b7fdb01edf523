/**
 * The option matrix both conformance tests run (RESP in conformance.node.test.ts, Upstash REST in
 * upstash-conformance.node.test.ts), and the reference side: the same job added by bullmq's own
 * `Queue.add` with a frozen clock.
 */
import { Queue, type JobsOptions } from "bullmq";
import type { Redis } from "ioredis";
import { expect, vi } from "vitest";
import { z } from "zod";
import { auditContract, type AuditJob } from "../../shared/jobs/audit.ts";
import { defineJob, type JobContract, type JobOptions } from "../../shared/jobs/contract.ts";
import { emailContract } from "../../shared/jobs/email.ts";

/** Fixed add time for both sides (2026-01-01T00:00:00.123Z). */
export const T = 1_767_225_600_123;

/** A contract without defaults, to cover BullMQ's own defaults (attempts 0, no backoff, no removal). */
export const bareContract = defineJob({ queue: "audit", name: "bare", schema: z.unknown(), defaults: {} });

export const auditData: AuditJob = {
  id: "evt-1", name: "user.signed_up", type: "domain", occurredAt: "2026-01-01T00:00:00Z", payload: { plan: "pro" },
};

export interface Case { title: string; contract: JobContract; data: unknown; opts?: JobOptions }
export const cases: Case[] = [
  { title: "contract defaults only", contract: auditContract, data: auditData },
  { title: "no defaults at all (attempts 0)", contract: bareContract, data: { a: 1 } },
  { title: "undefined data", contract: bareContract, data: undefined },
  { title: "custom jobId", contract: auditContract, data: auditData, opts: { jobId: "evt-1" } },
  { title: "attempts with number backoff", contract: bareContract, data: {}, opts: { attempts: 3, backoff: 1500 } },
  { title: "exponential backoff with jitter", contract: emailContract, data: {}, opts: { backoff: { type: "exponential", delay: 250, jitter: 0.5 } } },
  { title: "removal as booleans", contract: bareContract, data: {}, opts: { removeOnComplete: true, removeOnFail: false } },
  { title: "removal as counts", contract: bareContract, data: {}, opts: { removeOnComplete: 10, removeOnFail: 0 } },
  { title: "removal as {age,count}", contract: emailContract, data: {}, opts: { removeOnComplete: { age: 3600, count: 10 }, removeOnFail: { age: 86_400 } } },
  { title: "delay", contract: auditContract, data: auditData, opts: { delay: 60_000 } },
  { title: "priority", contract: auditContract, data: auditData, opts: { priority: 7 } },
  { title: "delay 0 with priority", contract: bareContract, data: {}, opts: { delay: 0, priority: 2 } },
  { title: "lifo", contract: auditContract, data: auditData, opts: { lifo: true } },
  { title: "per-call options override defaults", contract: auditContract, data: auditData, opts: { attempts: 1, removeOnComplete: false, jobId: "x.y~z" } },
  { title: "unicode payload", contract: bareContract, data: { s: "zoë — 日本語 🚀 \u0000 \u2028", n: [1.5, -0, 1e21] } },
  { title: "200 KB payload", contract: bareContract, data: { blob: "é".repeat(100_000) } },
  { title: "deduplication, simple mode", contract: bareContract, data: {}, opts: { deduplication: { id: "acct-1.2026-11" } } },
  { title: "deduplication, throttle mode (ttl)", contract: emailContract, data: {}, opts: { jobId: "j-throttle", deduplication: { id: "k:1", ttl: 60_000 } } },
  { title: "deduplication with delay", contract: auditContract, data: auditData, opts: { delay: 5_000, deduplication: { id: "d", ttl: 10_000 } } },
  { title: "deduplication with priority", contract: bareContract, data: {}, opts: { priority: 4, deduplication: { id: "p" } } },
];

/**
 * The contract's `KeepJobs` is looser than bullmq's (`{}` type-checks there, bullmq wants `age` or
 * `count`); the runtime values are identical, so only the type is bridged here.
 */
export function asBullmq(opts: Readonly<JobOptions>): JobsOptions {
  return { ...opts } as JobsOptions;
}

/**
 * Runs `Queue.add` at time `T` and returns the EVALSHA command it sent plus the job id. The queue
 * is handed to `onClose` so the caller closes it after the test.
 */
export async function addWithBullmq(
  client: Redis, prefix: string, c: Case, onClose: (close: () => Promise<unknown>) => void,
): Promise<{ args: unknown[]; id: string | undefined }> {
  const queue = new Queue(c.contract.queue, { connection: client, prefix, defaultJobOptions: asBullmq(c.contract.defaults) });
  onClose(() => queue.close());
  await queue.waitUntilReady();
  const sent: unknown[][] = [];
  const original = client.sendCommand.bind(client);
  vi.spyOn(client, "sendCommand").mockImplementation((command, stream) => {
    // Copy now: ioredis rewrites args[0] (sha → script body) when it falls back to EVAL.
    if (command.name === "evalsha") sent.push([...command.args]);
    return original(command, stream);
  });
  vi.spyOn(Date, "now").mockReturnValue(T);
  const job = await queue.add(c.contract.name, c.data, c.opts && asBullmq(c.opts));
  vi.restoreAllMocks();
  expect(sent).toHaveLength(1);
  return { args: sent[0] ?? [], id: job.id };
}

export async function deleteKeys(client: Redis, prefix: string): Promise<void> {
  const keys = await client.keys(`${prefix}:*`);
  if (keys.length > 0) await client.del(...keys);
}
