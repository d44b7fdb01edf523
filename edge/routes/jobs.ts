import { Hono } from "hono";
import { RESERVED_JOB_IDS } from "../../shared/jobs/contract.ts";
import { QUEUE_NAMES } from "../../shared/jobs/registry.ts";
import { ApiError } from "../errors.ts";
import type { QueueVariables } from "../queue-middleware.ts";

const queues = new Set<string>(QUEUE_NAMES);

export const jobs = new Hono<{ Variables: QueueVariables }>().get("/:queue/:id", async (c) => {
  const { queue, id } = c.req.param();
  if (!queues.has(queue)) {
    throw new ApiError("not_found", `unknown queue "${queue}"; known: ${QUEUE_NAMES.join(", ")}`, { field: "queue" });
  }
  // Numeric ids are BullMQ's own and valid here; anything else outside the id alphabet (':' above
  // all, the key separator) cannot name a job and must not reach a Redis key, and neither may the
  // queue's own key names ("meta" would read the queue's settings as a job).
  const named = /^[\w\-.~]{1,200}$/.test(id) && !RESERVED_JOB_IDS.has(id);
  const status = named ? await c.var.queue.getJob(queue, id) : null;
  if (!status) throw new ApiError("not_found", `no job "${id}" on queue "${queue}"`, { field: "id" });
  return c.json(status);
});
