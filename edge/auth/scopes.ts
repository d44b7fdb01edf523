import { QUEUE_NAMES } from "../../shared/jobs/registry.ts";

/**
 * Scopes a caller may hold. `jobs:write:<queue>` and `jobs:cancel:<queue>` name one queue, or every
 * queue with `*`. `events:write:any-account` lifts the account pinning of end-user tokens.
 */
export const FIXED_SCOPES = [
  "events:write",
  "events:write:any-account",
  "emails:send",
  "jobs:read",
  "health:read",
] as const;

const queues = new Set<string>(QUEUE_NAMES);

/** Why a configured scope is not one the edge knows (a typo would otherwise silently deny). */
export function scopeProblem(scope: string): string | undefined {
  if ((FIXED_SCOPES as readonly string[]).includes(scope)) return undefined;
  const perQueue = /^jobs:(write|cancel):(.+)$/.exec(scope);
  if (perQueue?.[2] === "*" || (perQueue?.[2] && queues.has(perQueue[2]))) return undefined;
  if (perQueue) return `unknown queue in scope "${scope}" (known: ${QUEUE_NAMES.join(", ")}, or *)`;
  return `unknown scope "${scope}" (known: ${FIXED_SCOPES.join(", ")}, jobs:write:<queue>, jobs:cancel:<queue>)`;
}

/**
 * The scope a `/v1/*` request needs, from its method and path alone, so it is checked before the
 * body is read. Every route under /v1 must appear here (a test walks the app's routes); a path no
 * route serves needs none and answers 404.
 */
export function scopeFor(method: string, path: string): string | undefined {
  const parts = path.split("/").filter(Boolean);
  if (parts[0] !== "v1") return undefined;
  const [, resource, queue] = parts;
  switch (`${method} ${resource}`) {
    case "POST events":
      return "events:write";
    case "POST emails":
      return "emails:send";
    case "GET health":
      return "health:read";
    case "GET jobs":
      return "jobs:read";
    case "POST jobs":
      return queue ? `jobs:write:${queue}` : undefined;
    case "DELETE jobs":
      return queue ? `jobs:cancel:${queue}` : undefined;
    default:
      return undefined;
  }
}

/** `held` covers `needed` exactly, or through a `<prefix>:*` scope for the last segment. */
export function grants(held: ReadonlySet<string>, needed: string): boolean {
  if (held.has(needed)) return true;
  const cut = needed.lastIndexOf(":");
  return cut > 0 && needed.startsWith("jobs:") && held.has(`${needed.slice(0, cut)}:*`);
}
