/**
 * Telling "a dependency is down" apart from "this job is wrong", and saying what went wrong without
 * saying what the job carried.
 *
 * An outage (Postgres unreachable or hung, a provider's network errors, 5xx or 429) is not the job's
 * fault: it must not spend the job's attempts. The runner hands such jobs back to BullMQ's wait list
 * (manual rate limit) and holds the queue off with a growing delay until the dependency answers.
 */

/** A dependency is down or refusing work for now; the job itself is fine. */
export class DependencyDownError extends Error {
  readonly dependency: string;
  /** The dependency's own hint (e.g. Retry-After), in ms; the runner never waits less than its minimum. */
  readonly retryAfterMs: number | undefined;
  constructor(dependency: string, message: string, options: { retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "DependencyDownError";
    this.dependency = dependency;
    this.retryAfterMs = options.retryAfterMs;
  }
}

export interface Outage {
  dependency: string;
  retryAfterMs?: number | undefined;
}

/** Socket-level failures: whatever was being talked to is unreachable, not wrong. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN",
  "ENOTFOUND", "EAI_AGAIN", "ECONNABORTED", "ESOCKETTIMEDOUT", "UND_ERR_SOCKET", "UND_ERR_CONNECT_TIMEOUT",
]);

/**
 * SQLSTATEs that describe the server, not the statement: connection exceptions (class 08), the server
 * shutting down or starting (57P01–57P03), a statement cancelled by `statement_timeout` (57014, a hung
 * or overloaded server), and insufficient resources (class 53: too many connections, disk full, OOM).
 */
function isServerStateCode(code: string): boolean {
  return code.startsWith("08") || code.startsWith("53") || /^57P0[123]$/.test(code) || code === "57014";
}

/**
 * node-postgres reports lost and timed-out connections as plain Errors without a code; these are its
 * own fixed messages (no query text or values in them).
 */
const PG_CONNECTION_MESSAGES = [
  "Connection terminated",
  "timeout exceeded when trying to connect",
  "Query read timeout",
  "Client has encountered a connection error and is not queryable",
  "Client was closed and is not queryable",
  "Cannot use a pool after calling end on the pool",
];

/** Every error in a cause chain, including the members of AggregateErrors (multi-address connects). */
function* chain(err: unknown, depth = 0): Generator<unknown> {
  if (depth > 8 || err === undefined || err === null) return;
  yield err;
  if (err instanceof AggregateError) for (const inner of err.errors) yield* chain(inner, depth + 1);
  if (err instanceof Error && err.cause !== undefined) yield* chain(err.cause, depth + 1);
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * The outage behind an error, if it is one: a `DependencyDownError` anywhere in the chain, or a
 * database/network failure that says nothing about the job. Anything else is the job's own failure.
 */
export function findOutage(err: unknown): Outage | undefined {
  let network = false;
  for (const e of chain(err)) {
    if (e instanceof DependencyDownError) return { dependency: e.dependency, retryAfterMs: e.retryAfterMs };
    const code = codeOf(e);
    if (code && NETWORK_CODES.has(code)) network = true;
    if (code && /^[0-9A-Z]{5}$/.test(code) && isServerStateCode(code)) return { dependency: "postgres" };
    if (e instanceof Error && PG_CONNECTION_MESSAGES.some((m) => e.message.startsWith(m))) return { dependency: "postgres" };
  }
  // A bare socket error: handlers wrap their providers' failures (Resend, Stripe) in
  // DependencyDownError themselves, so the one peer left talking raw sockets is the database
  // (node-postgres reports a reset or refused connect without wrapping it).
  if (network) return { dependency: "postgres" };
  return undefined;
}

/**
 * What may leave the process (logs, BullMQ's failedReason, the API) about an error: our own
 * messages, written not to carry payload values, and for anything else its name and code only.
 * Drizzle's messages embed the SQL parameters and a driver's can quote the offending value, so
 * database errors are reduced to SQLSTATE plus the schema names involved.
 */
export function publicMessage(err: unknown): string {
  if (err instanceof DependencyDownError || (err instanceof Error && TRUSTED_NAMES.has(err.name))) {
    return err.message.slice(0, 500);
  }
  for (const e of chain(err)) {
    const code = codeOf(e);
    if (code && /^[0-9A-Z]{5}$/.test(code)) {
      const where = ["table", "column", "constraint"]
        .map((k) => [k, (e as Record<string, unknown>)[k]] as const)
        .filter((kv): kv is readonly [string, string] => typeof kv[1] === "string")
        .map(([k, v]) => `${k} ${v}`);
      return `database error ${code}${where.length ? ` (${where.join(", ")})` : ""}`;
    }
  }
  const codes = [...chain(err)].map(codeOf).filter((c): c is string => c !== undefined);
  const name = err instanceof Error ? err.name : typeof err;
  return codes.length ? `${name} ${codes[0]}` : name;
}

/** Errors whose messages this codebase writes itself, never interpolating payload values. */
const TRUSTED_NAMES = new Set(["PermanentError", "UnrecoverableError", "OutageError"]);

export interface OutageState {
  dependency: string;
  /** ISO time the current outage was first seen. */
  since: string;
  /** The hold-off applied to the queue last, ms. */
  backoffMs: number;
  /** Jobs handed back to wait during this outage. */
  jobsReturned: number;
}

export interface OutageBackoff {
  /** First hold-off, ms. */
  minMs: number;
  /** Longest hold-off, ms. */
  maxMs: number;
}

/**
 * One queue's outage bookkeeping. The hold-off grows with how long the outage has lasted (≈ doubling
 * from one probe to the next, between `minMs` and `maxMs`) rather than with how many jobs failed, so
 * a hundred concurrent jobs failing at once count as one observation.
 */
export function createOutageGate(backoff: OutageBackoff, now: () => number = Date.now) {
  let state: (OutageState & { sinceMs: number }) | undefined;
  return {
    /** Records a failure; returns how long to hold the queue off. */
    down(outage: Outage): number {
      const t = now();
      state ??= { dependency: outage.dependency, since: new Date(t).toISOString(), sinceMs: t, backoffMs: 0, jobsReturned: 0 };
      state.dependency = outage.dependency;
      state.jobsReturned++;
      const grown = Math.min(backoff.maxMs, Math.max(backoff.minMs, t - state.sinceMs));
      // A provider's own hint (Retry-After, a daily quota) wins when longer, up to an hour.
      state.backoffMs = Math.max(grown, Math.min(outage.retryAfterMs ?? 0, 3_600_000));
      return state.backoffMs;
    },
    /** A job got through: the outage, if any, is over. Returns the state that ended. */
    up(): OutageState | undefined {
      const ended = state;
      state = undefined;
      return ended ? publicState(ended) : undefined;
    },
    current(): OutageState | undefined {
      return state ? publicState(state) : undefined;
    },
  };
}

export type OutageGate = ReturnType<typeof createOutageGate>;

function publicState({ sinceMs: _, ...rest }: OutageState & { sinceMs: number }): OutageState {
  return rest;
}
