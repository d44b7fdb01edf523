import { Hono } from "hono";
import { EmailRequest, emailContract } from "../../shared/jobs/email.ts";
import { idempotencyKey, parseWith, readJson } from "../body.ts";
import type { QueueVariables } from "../queue-middleware.ts";

export const emails = new Hono<{ Variables: QueueVariables }>().post("/", async (c) => {
  const email = parseWith(EmailRequest, await readJson(c));
  // The job id doubles as Resend's Idempotency-Key in the worker, so a retried job never sends twice.
  // Generated when absent, and returned by a 503, so the caller's retry reuses it.
  const jobId = idempotencyKey(c) ?? crypto.randomUUID();
  const [added] = await c.var.queue.add([{ contract: emailContract, data: email, opts: { jobId } }], { retryKey: jobId });
  return c.json(added, 202);
});
