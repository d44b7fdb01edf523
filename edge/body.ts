import type { Context } from "hono";
import type { z } from "zod";
import { JOB_ID_PATTERN } from "../shared/jobs/contract.ts";
import { ApiError, validationError } from "./errors.ts";

/** Parses the raw body as JSON (whatever the Content-Type claims) or answers 400 invalid_json. */
export async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") throw new ApiError("invalid_json", "request body is empty; expected JSON", { field: "body" });
  try {
    return JSON.parse(text);
  } catch (err) {
    const detail = err instanceof SyntaxError ? `: ${err.message}` : "";
    throw new ApiError("invalid_json", `request body is not valid JSON${detail}`, { field: "body" });
  }
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, prefix: PropertyKey[] = []): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw validationError(result.error, prefix);
  return result.data;
}

/**
 * The `Idempotency-Key` header, if sent. It becomes (part of) a BullMQ job id, so it must be
 * usable as one: no ':' and not all digits (see JOB_ID_PATTERN).
 */
export function idempotencyKey(c: Context): string | undefined {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return undefined;
  if (!JOB_ID_PATTERN.test(key)) {
    throw new ApiError(
      "invalid_idempotency_key",
      "Idempotency-Key must be 1–200 characters of A-Z a-z 0-9 _ - . ~ and not all digits",
      { field: "Idempotency-Key" },
    );
  }
  return key;
}
