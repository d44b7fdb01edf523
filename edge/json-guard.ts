import { ApiError, fieldPath } from "./errors.ts";

/** Deepest nesting of arrays/objects a request body may have; real payloads stay far below. */
export const MAX_JSON_DEPTH = 64;

// A UTF-16 high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why a string cannot be stored (Postgres text/jsonb reject both), or undefined. */
function stringProblem(text: string): string | undefined {
  if (text.includes("\u0000")) return "contains U+0000 (NUL), which cannot be stored";
  if (LONE_SURROGATE.test(text)) return "contains a lone UTF-16 surrogate (not valid Unicode), which cannot be stored";
  return undefined;
}

function refuse(path: ReadonlyArray<PropertyKey>, problem: string): never {
  const field = fieldPath(path);
  throw new ApiError("validation_failed", `${field}: ${problem}`, { field });
}

/**
 * One pass over a parsed JSON body, before any schema sees it, refusing what would otherwise be
 * lost or fail later: strings and keys Postgres cannot store (they would fail a whole audit batch
 * in the worker), `__proto__` keys (JS objects and zod drop them silently, so the stored payload
 * would differ from what the caller sent), and nesting deeper than MAX_JSON_DEPTH (zod recurses
 * and overflows the stack on ~2000 levels). Iterative, so the walk itself cannot overflow.
 */
export function checkJsonValues(root: unknown): void {
  const stack: Array<{ value: unknown; path: PropertyKey[] }> = [{ value: root, path: [] }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { value, path } = item;
    if (typeof value === "string") {
      const problem = stringProblem(value);
      if (problem) refuse(path, problem);
      continue;
    }
    if (typeof value !== "object" || value === null) continue;
    // `path` holds one segment per enclosing container, so its length is this value's depth.
    if (path.length >= MAX_JSON_DEPTH) refuse(path, `nested deeper than ${MAX_JSON_DEPTH} levels`);
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) visit(value[i], path, i);
      continue;
    }
    const keys = Object.keys(value);
    for (const key of keys) {
      if (key === "__proto__") refuse([...path, key], "the key __proto__ is not accepted");
      const problem = stringProblem(key);
      // The key itself is not echoed: it is what cannot be shown faithfully.
      if (problem) refuse(path, `a key ${problem}`);
    }
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i] as string;
      visit((value as Record<string, unknown>)[key], path, key);
    }
  }

  // Numbers, booleans and null need no check: only strings and containers are queued.
  function visit(child: unknown, parent: PropertyKey[], segment: PropertyKey): void {
    if (typeof child === "string" || (typeof child === "object" && child !== null)) stack.push({ value: child, path: [...parent, segment] });
  }
}
