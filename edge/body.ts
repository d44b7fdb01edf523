import type { Context } from "hono";
import type { z } from "zod";
import { jobIdProblem } from "../shared/jobs/contract.ts";
import { ApiError, validationError } from "./errors.ts";
import { checkJsonValues } from "./json-guard.ts";

/**
 * Parses the raw body as JSON (whatever the Content-Type claims) or answers 400 invalid_json, then
 * refuses values that cannot be stored faithfully (see checkJsonValues) with 400 validation_failed.
 */
export async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") throw new ApiError("invalid_json", "request body is empty; expected JSON", { field: "body" });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const detail = err instanceof SyntaxError ? `: ${err.message}` : "";
    throw new ApiError("invalid_json", `request body is not valid JSON${detail}`, { field: "body" });
  }
  checkJsonValues(value);
  return value;
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, prefix: PropertyKey[] = []): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw validationError(result.error, prefix);
  return result.data;
}

/**
 * The `Idempotency-Key` header, if sent. It becomes (part of) a BullMQ job id, so it must be
 * usable as one: the id alphabet, not all digits, and not one of a queue's own key names.
 */
export function idempotencyKey(c: Context): string | undefined {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return undefined;
  const problem = jobIdProblem(key);
  if (problem) throw new ApiError("invalid_idempotency_key", `Idempotency-Key ${problem}`, { field: "Idempotency-Key" });
  return key;
}
