// A typed client for the edgefleet API. Its types come from the same zod schemas the edge
// validates with (type-only imports: at run time this is a thin `fetch` wrapper with no
// dependencies), so a contract change that breaks a caller is a compile error in the caller.
import type { z } from "zod";
import type { AuditEvent } from "../shared/jobs/audit.ts";
import type { JobInput } from "../shared/jobs/contract.ts";
import type { EmailRequest } from "../shared/jobs/email.ts";
import type { Contracts, ExposedQueue, QueueName } from "../shared/jobs/registry.ts";
import type { EnqueuedJob, ErrorBody, EventsAccepted, JobRemoved, JobStatus, Readiness } from "../edge/openapi.ts";

export type { ExposedQueue, QueueName };
export type Event = z.input<typeof AuditEvent>;
export type Email = z.input<typeof EmailRequest>;
export type Enqueued = z.output<typeof EnqueuedJob>;
export type Job = z.output<typeof JobStatus>;
export type Removed = z.output<typeof JobRemoved>;
export type Health = z.output<typeof Readiness>;
export type ErrorDetail = z.output<typeof ErrorBody>["error"];

export interface ClientOptions {
  /** The edge's origin, e.g. https://api.example.com (no trailing path). */
  baseUrl: string;
  /** A service API key or an end-user JWT; sent as `Authorization: Bearer <token>`. */
  token: string;
  /** Defaults to the global fetch; pass another to add retries, tracing, or to call an app in-process. */
  fetch?: (request: Request) => Promise<Response>;
}

export interface SendOptions {
  /** Becomes the job id; re-sending the same key enqueues nothing new. */
  idempotencyKey?: string;
}

/** Any non-2xx answer. `retryable` is true for 503s; retry with the same idempotency key. */
export class EdgefleetError extends Error {
  readonly status: number;
  readonly code: string;
  readonly requestId: string;
  readonly field: string | undefined;
  readonly body: ErrorDetail | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(status: number, body: ErrorDetail | undefined, retryAfter: string | null) {
    super(body ? `${body.code}: ${body.message}` : `HTTP ${status}`);
    this.name = "EdgefleetError";
    this.status = status;
    this.code = body?.code ?? "unknown";
    this.requestId = body?.requestId ?? "";
    this.field = body?.field;
    this.body = body;
    const seconds = retryAfter === null ? Number.NaN : Number(retryAfter);
    this.retryAfterSeconds = Number.isFinite(seconds) ? seconds : undefined;
  }

  get retryable(): boolean {
    return this.status === 503 || this.status === 429;
  }
}

export function createClient(options: ClientOptions) {
  const base = options.baseUrl.replace(/\/+$/, "");
  const send = options.fetch ?? ((request: Request) => fetch(request));

  async function call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const init: RequestInit = { method, headers: { authorization: `Bearer ${options.token}`, ...headers } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)["content-type"] = "application/json";
    }
    const res = await send(new Request(base + path, init));
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const detail = (parsed as { error?: ErrorDetail } | undefined)?.error;
      throw new EdgefleetError(res.status, detail, res.headers.get("retry-after"));
    }
    return parsed as T;
  }
  const keyHeader = (o?: SendOptions): Record<string, string> => (o?.idempotencyKey ? { "idempotency-key": o.idempotencyKey } : {});
  const segment = encodeURIComponent;

  return {
    /** `GET /v1/health`: Redis reachable, and whether a worker fleet drains this prefix. */
    health: () => call<Health>("GET", "/v1/health"),
    events: {
      /** `POST /v1/events` with one event or up to 100 (validated all-or-nothing). */
      record: (events: Event | readonly Event[], o?: SendOptions) =>
        call<{ jobs: Enqueued[] }>("POST", "/v1/events", Array.isArray(events) ? { events } : events, keyHeader(o)),
    },
    emails: {
      /** `POST /v1/emails`; the job id is also Resend's idempotency key. */
      send: (email: Email, o?: SendOptions) => call<Enqueued>("POST", "/v1/emails", email, keyHeader(o)),
    },
    jobs: {
      /** `POST /v1/jobs/{queue}`: `data` is typed by the queue's contract in shared/jobs/. */
      enqueue: <Q extends ExposedQueue>(queue: Q, data: JobInput<Contracts[Q]>, o?: SendOptions & { delay?: number; priority?: number }) =>
        call<Enqueued>("POST", `/v1/jobs/${segment(queue)}`, {
          data,
          ...(o?.delay !== undefined ? { delay: o.delay } : {}),
          ...(o?.priority !== undefined ? { priority: o.priority } : {}),
        }, keyHeader(o)),
      /** `GET /v1/jobs/{queue}/{id}` on any queue. */
      get: (queue: QueueName, id: string) => call<Job>("GET", `/v1/jobs/${segment(queue)}/${segment(id)}`),
      /** `DELETE /v1/jobs/{queue}/{id}`: only while waiting, delayed or prioritized (else 409). */
      cancel: (queue: ExposedQueue, id: string) => call<Removed>("DELETE", `/v1/jobs/${segment(queue)}/${segment(id)}`),
    },
  };
}

export type EdgefleetClient = ReturnType<typeof createClient>;

// The compile-time shape check: EventsAccepted's output is what `events.record` promises.
type _EventsShape = z.output<typeof EventsAccepted> extends { jobs: Enqueued[] } ? true : never;
const _eventsShape: _EventsShape = true;
void _eventsShape;
