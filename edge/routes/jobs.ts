import { Hono } from "hono";
import { z } from "zod";
import { RESERVED_JOB_IDS, type JobContract } from "../../shared/jobs/contract.ts";
import { EXPOSED_CONTRACTS, QUEUE_NAMES } from "../../shared/jobs/registry.ts";
import { idempotencyKey, parseWith, readJson } from "../body.ts";
import { ApiError } from "../errors.ts";
import type { QueueVariables } from "../queue-middleware.ts";

const queues = new Set<string>(QUEUE_NAMES);
const exposed = EXPOSED_CONTRACTS.map((c) => c.queue);

/** Default ceiling on `delay`: a job parked longer than this is more likely a unit mistake (s vs ms). */
export const DEFAULT_MAX_DELAY_MS = 30 * 24 * 60 * 60 * 1000;
/** BullMQ's PRIORITY_LIMIT (2^21 − 1); 1 is the highest priority. */
export const MAX_PRIORITY = 2 ** 21 - 1;

/** `{ data, delay?, priority? }` for one contract; `data` is validated by the contract's own schema. */
export function enqueueBody(contract: JobContract) {
  const edge = contract.edge ?? {};
  return z.strictObject({
    data: contract.schema,
    /** Milliseconds before the job may run; the job is `delayed` until then. */
    delay: z.int().min(0).max(edge.maxDelayMs ?? DEFAULT_MAX_DELAY_MS).optional(),
    /** 1 (highest) … 2 097 151; jobs without a priority run before prioritized ones (BullMQ). */
    priority: edge.priority === false ? z.undefined({ error: "this queue takes no priority" }) : z.int().min(1).max(MAX_PRIORITY).optional(),
  });
}

/**
 * Ids that may name a job in a status read or a removal: the id alphabet (numeric ids are BullMQ's
 * own and valid here), and none of the queue's own key names ("meta" would read the queue's
 * settings as a job). Anything else cannot name a job and must not reach a Redis key.
 */
function namesJob(id: string): boolean {
  return /^[\w\-.~]{1,200}$/.test(id) && !RESERVED_JOB_IDS.has(id);
}

function notExposed(queue: string): ApiError {
  const known = queues.has(queue) ? `queue "${queue}" does not take jobs through /v1/jobs` : `unknown queue "${queue}"`;
  return new ApiError("not_found", `${known}; it does: ${exposed.join(", ") || "none"}`, { field: "queue" });
}

export const jobs = new Hono<{ Variables: QueueVariables }>();

// One route pair per exposed contract, from the registry: a new contract with `edge` is served
// without touching this file.
for (const contract of EXPOSED_CONTRACTS) {
  const body = enqueueBody(contract);

  jobs.post(`/${contract.queue}`, async (c) => {
    const { data, delay, priority } = parseWith(body, await readJson(c));
    // Generated when absent, and returned by a 503, so the caller's retry reuses it.
    const jobId = idempotencyKey(c) ?? crypto.randomUUID();
    const [added] = await c.var.queue.add(
      [{ contract, data, opts: { jobId, ...(delay ? { delay } : {}), ...(priority ? { priority } : {}) } }],
      { retryKey: jobId },
    );
    if (!added) throw new Error("enqueue answered no job");
    // Another id than the one asked for: the contract's deduplication matched a job already queued.
    const deduplicated = added.id !== jobId ? { deduplicated: true } : {};
    c.header("Location", `/v1/jobs/${contract.queue}/${added.id}`);
    return c.json({ ...added, ...deduplicated }, 202);
  });

  jobs.delete(`/${contract.queue}/:id`, async (c) => {
    const id = c.req.param("id");
    const queue = contract.queue;
    const result = namesJob(id) ? await c.var.queue.remove(queue, id) : ({ removed: false, reason: "not_found" } as const);
    if (result.removed) return c.json({ id, queue, removedFrom: result.state });
    if (result.reason === "active") {
      throw new ApiError("job_active", `job "${id}" on queue "${queue}" is running and can no longer be cancelled`, { field: "id" });
    }
    if (result.reason === "scheduler") {
      throw new ApiError("job_scheduled", `job "${id}" on queue "${queue}" belongs to a job scheduler; remove the scheduler instead`, { field: "id" });
    }
    throw new ApiError("not_found", `no job "${id}" on queue "${queue}"`, { field: "id" });
  });
}

jobs.post("/:queue", (c) => {
  throw notExposed(c.req.param("queue"));
});
jobs.delete("/:queue/:id", (c) => {
  throw notExposed(c.req.param("queue"));
});

jobs.get("/:queue/:id", async (c) => {
  const { queue, id } = c.req.param();
  if (!queues.has(queue)) {
    throw new ApiError("not_found", `unknown queue "${queue}"; known: ${QUEUE_NAMES.join(", ")}`, { field: "queue" });
  }
  const status = namesJob(id) ? await c.var.queue.getJob(queue, id) : null;
  if (!status) throw new ApiError("not_found", `no job "${id}" on queue "${queue}"`, { field: "id" });
  return c.json(status);
});
