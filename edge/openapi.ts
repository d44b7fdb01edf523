// The OpenAPI 3.1 document of the edge, built from the zod schemas the routes validate with (the
// contracts in shared/jobs/ and the routes' own bodies), so the document cannot drift from what is
// enforced. Response bodies have schemas here too; edge/openapi.test.ts checks real responses
// against them, and every registered route against the document.
import { Hono } from "hono";
import { z } from "zod";
import { AuditEvent } from "../shared/jobs/audit.ts";
import type { JobContract } from "../shared/jobs/contract.ts";
import { EmailRequest } from "../shared/jobs/email.ts";
import { EXPOSED_CONTRACTS, QUEUE_NAMES } from "../shared/jobs/registry.ts";
import { ERROR_STATUS, type ErrorCode } from "./errors.ts";
import { MAX_EVENTS_PER_REQUEST } from "./routes/events.ts";
import { enqueueBody } from "./routes/jobs.ts";

const JOB_STATES = ["waiting", "active", "delayed", "prioritized", "completed", "failed", "waiting-children", "unknown"] as const;

/** The standard error body; `code` is the closed list in errors.ts, so new codes appear here unasked. */
export const ErrorBody = z.strictObject({
  error: z.looseObject({
    code: z.enum(Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
    requestId: z.string().min(1),
    /** The request field at fault, in `events[2].payload` form. */
    field: z.string().optional(),
    issues: z.array(z.strictObject({ field: z.string(), message: z.string() })).optional(),
  }),
});

export const EnqueuedJob = z.strictObject({
  id: z.string(),
  queue: z.string(),
  /** The id named a failed job: it was moved back to wait instead of being added again. */
  requeued: z.literal(true).optional(),
  /** The contract's deduplication matched a job already queued; `id` is that job's. */
  deduplicated: z.literal(true).optional(),
});
export const EventsAccepted = z.strictObject({ jobs: z.array(EnqueuedJob) });
export const JobStatus = z.strictObject({
  id: z.string(),
  queue: z.string(),
  name: z.string(),
  state: z.enum(JOB_STATES),
  attemptsMade: z.int().min(0),
  failedReason: z.string().optional(),
  createdAt: z.iso.datetime(),
  processedAt: z.iso.datetime().optional(),
  finishedAt: z.iso.datetime().optional(),
});
export const JobRemoved = z.strictObject({ id: z.string(), queue: z.string(), removedFrom: z.enum(JOB_STATES) });
export const Liveness = z.strictObject({ status: z.literal("ok") });
export const Readiness = z.strictObject({
  status: z.literal("ok"),
  redis: z.literal("ok"),
  /** "seen", or "none on prefix <prefix>" when no worker fleet has announced itself. */
  fleet: z.string(),
  /** Queue → ISO start time of the latest fleet process draining it. */
  fleetQueues: z.record(z.string(), z.string()).optional(),
});
export const StripeReceived = z.strictObject({ received: z.literal(true), id: z.string() });
/** The batch form of `POST /v1/events`; each element is validated as an AuditEvent. */
export const EventBatch = z.strictObject({ events: z.array(AuditEvent).min(1).max(MAX_EVENTS_PER_REQUEST) });
/** What Stripe sends; the route verifies the signature and keeps the event whole. */
const StripeEvent = z.looseObject({ id: z.string(), type: z.string(), created: z.int(), livemode: z.boolean() });

function pascal(name: string): string {
  return name.replace(/(^|[^A-Za-z0-9])([a-z0-9])/g, (_m, _sep: string, ch: string) => ch.toUpperCase());
}

/** Request bodies by operation (`METHOD /path` in OpenAPI form), with their documented examples. */
export interface DocumentedBody {
  schema: z.ZodType;
  examples: Record<string, unknown>;
}

export function requestBodies(): Record<string, DocumentedBody> {
  const event = { name: "user.signed_in", type: "domain", accountId: "acct_42", payload: { ip: "203.0.113.7" } };
  const bodies: Record<string, DocumentedBody> = {
    "POST /v1/events": {
      schema: z.union([AuditEvent, EventBatch]),
      examples: {
        single: event,
        batch: { events: [{ ...event, id: "evt-2026-11-01-0001" }, { name: "invoice.sent", type: "integration", payload: { invoice: "in_1" } }] },
      },
    },
    "POST /v1/emails": {
      schema: EmailRequest,
      examples: {
        html: { to: "ada@example.com", subject: "Welcome", html: "<p>Hello Ada</p>" },
        template: { to: ["ada@example.com"], subject: "Your report", template: { name: "report-ready", data: { month: "2026-11" } } },
      },
    },
  };
  for (const contract of EXPOSED_CONTRACTS) {
    const example = JOB_EXAMPLES[contract.queue];
    bodies[`POST /v1/jobs/${contract.queue}`] = {
      schema: enqueueBody(contract),
      examples: example === undefined ? {} : { now: { data: example }, later: { data: example, delay: 60_000, priority: 10 } },
    };
  }
  return bodies;
}

/**
 * A `data` example per exposed queue, for the reference page. A contract without one is still
 * documented (schema only); one with an example that stops validating fails the spec test.
 */
const JOB_EXAMPLES: Record<string, unknown> = {
  report: { accountId: "acct_42", month: "2026-11" },
};

type Json = Record<string, unknown>;

/**
 * zod's registry export puts recursive parts (z.json()) under a `__shared` schema and refers to
 * them as `…/__shared#/$defs/x`; OpenAPI tools resolve plain component refs more reliably, so the
 * shared definitions become components of their own.
 */
function schemaComponents(schemas: Record<string, z.ZodType>): Record<string, Json> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const out = z.toJSONSchema(registry, {
    target: "draft-2020-12",
    io: "input",
    // `priority` on a queue that takes none is z.undefined(): "absent" has no JSON Schema form.
    unrepresentable: "any",
    uri: (id) => `#/components/schemas/${id}`,
  }).schemas as Record<string, Json>;
  const components: Record<string, Json> = {};
  const shared = (out.__shared?.$defs ?? {}) as Record<string, Json>;
  delete out.__shared;
  for (const [id, schema] of Object.entries(shared)) components[`Shared_${id}`] = schema;
  for (const [id, schema] of Object.entries(out)) {
    const { $schema: _s, $id: _i, ...rest } = schema;
    components[id] = rest;
  }
  return JSON.parse(
    JSON.stringify(components).replace(/#\/components\/schemas\/__shared#\/\$defs\/(\w+)/g, "#/components/schemas/Shared_$1"),
  ) as Record<string, Json>;
}

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const json = (schema: Json, examples?: Record<string, unknown>) => ({
  "application/json": {
    schema,
    ...(examples && Object.keys(examples).length > 0
      ? { examples: Object.fromEntries(Object.entries(examples).map(([k, value]) => [k, { value }])) }
      : {}),
  },
});
const ok = (description: string, id: string) => ({ description, content: json(ref(id)) });
const error = (description: string) => ({ description, content: json(ref("ErrorBody")) });

const idempotencyHeader = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  description:
    "Becomes the job id (events: per-event suffix in a batch). Re-sending it adds nothing new. 1–200 of A-Z a-z 0-9 _ - . ~, not all digits, not a BullMQ key name. Generated when absent and returned in a 503, so a retry can reuse it.",
  schema: { type: "string", pattern: "^(?!\\d+$)[A-Za-z0-9_\\-.~]{1,200}$" },
};

/** Errors every `/v1/*` operation can answer, besides its own. */
const v1Errors = {
  "401": error("Missing, malformed or invalid credentials (`unauthorized`)."),
  "503": error("Redis is unavailable (`queue_unavailable`); retry after `Retry-After` seconds, with the same Idempotency-Key."),
  default: error("Any other error, in the standard error body."),
};
const bodyErrors = {
  "400": error("`invalid_json`, `validation_failed` (with `field`) or `invalid_idempotency_key`; nothing was enqueued."),
  "413": error("Body larger than 1 MiB (`payload_too_large`)."),
};

let cached: Json | undefined;

/** The OpenAPI 3.1 document; built once per isolate. */
export function openApiDocument(): Json {
  if (cached) return cached;
  const bodies = requestBodies();
  const contractSchemas: Record<string, z.ZodType> = {};
  for (const contract of EXPOSED_CONTRACTS as ReadonlyArray<JobContract>) {
    contractSchemas[`${pascal(contract.queue)}JobRequest`] = (bodies[`POST /v1/jobs/${contract.queue}`] as DocumentedBody).schema;
  }
  const schemas = schemaComponents({
    ErrorBody, EnqueuedJob, EventsAccepted, JobStatus, JobRemoved, Liveness, Readiness, StripeReceived,
    AuditEvent, EventBatch, EmailRequest, StripeEvent, ...contractSchemas,
  });
  const body = (op: string, component: Json) => ({ required: true, content: json(component, bodies[op]?.examples) });
  const v1 = [{ apiKey: [] }, { jwt: [] }];

  const paths: Record<string, Json> = {
    "/health": { get: { operationId: "liveness", summary: "Liveness (no Redis, no auth)", tags: ["meta"], security: [], responses: { "200": ok("Alive.", "Liveness") } } },
    "/openapi.json": { get: { operationId: "openapi", summary: "This document", tags: ["meta"], security: [], responses: { "200": { description: "OpenAPI 3.1 document.", content: { "application/json": { schema: { type: "object" } } } } } } },
    "/docs": { get: { operationId: "docs", summary: "Interactive API reference (Scalar, loaded from jsDelivr)", tags: ["meta"], security: [], responses: { "200": { description: "HTML page.", content: { "text/html": { schema: { type: "string" } } } } } } },
    "/v1/health": {
      get: { operationId: "readiness", summary: "Readiness: Redis answers; whether a worker fleet drains this prefix", tags: ["meta"], security: v1, responses: { "200": ok("Redis reachable.", "Readiness"), ...v1Errors } },
    },
    "/v1/events": {
      post: {
        operationId: "recordEvents",
        summary: `Record one audit event, or a batch of 1–${MAX_EVENTS_PER_REQUEST}`,
        description: "Every event is validated before anything is enqueued. An event's `id` (else the Idempotency-Key, suffixed `.<index>` in a batch) becomes its job id.",
        tags: ["events"],
        security: v1,
        parameters: [idempotencyHeader],
        requestBody: body("POST /v1/events", { oneOf: [ref("AuditEvent"), ref("EventBatch")] }),
        responses: { "202": ok("Enqueued.", "EventsAccepted"), ...bodyErrors, ...v1Errors },
      },
    },
    "/v1/emails": {
      post: {
        operationId: "sendEmail",
        summary: "Send an email (exactly one of html, text, template)",
        tags: ["emails"],
        security: v1,
        parameters: [idempotencyHeader],
        requestBody: body("POST /v1/emails", ref("EmailRequest")),
        responses: { "202": ok("Enqueued; `id` is also Resend's idempotency key.", "EnqueuedJob"), ...bodyErrors, ...v1Errors },
      },
    },
    "/v1/jobs/{queue}/{id}": {
      get: {
        operationId: "getJob",
        summary: "A job's state, on any queue",
        tags: ["jobs"],
        security: v1,
        parameters: [
          { name: "queue", in: "path", required: true, schema: { type: "string", enum: QUEUE_NAMES } },
          { name: "id", in: "path", required: true, schema: { type: "string" } },
        ],
        responses: { "200": ok("The job.", "JobStatus"), "404": error("Unknown queue (`field: queue`) or job (`field: id`)."), ...v1Errors },
      },
    },
    "/webhooks/stripe": {
      post: {
        operationId: "stripeWebhook",
        summary: "Stripe webhook endpoint (authenticated by Stripe-Signature, not by API key)",
        tags: ["webhooks"],
        security: [],
        parameters: [{ name: "Stripe-Signature", in: "header", required: true, schema: { type: "string" } }],
        requestBody: { required: true, content: json(ref("StripeEvent")) },
        responses: {
          "200": ok("Verified and enqueued under the event id (redeliveries collapse into one job).", "StripeReceived"),
          "400": error("`invalid_signature`: missing, wrong, or outside the 5-minute tolerance."),
          "413": error("Body larger than 256 KiB (`payload_too_large`)."),
          "503": error("`webhooks_not_configured` or `queue_unavailable`; Stripe retries."),
          default: error("Any other error, in the standard error body."),
        },
      },
    },
  };
  for (const contract of EXPOSED_CONTRACTS as ReadonlyArray<JobContract>) {
    const q = contract.queue;
    const component = `${pascal(q)}JobRequest`;
    paths[`/v1/jobs/${q}`] = {
      post: {
        operationId: `enqueue${pascal(q)}`,
        summary: `Enqueue a "${contract.name}" job on queue "${q}"`,
        description: "`data` is the contract's input; `delay` (ms) makes the job `delayed`, `priority` (1 = highest) `prioritized`. Answers `Location: /v1/jobs/" + q + "/<id>`.",
        tags: ["jobs"],
        security: v1,
        parameters: [idempotencyHeader],
        requestBody: body(`POST /v1/jobs/${q}`, ref(component)),
        responses: { "202": ok("Enqueued (or deduplicated into the job already queued).", "EnqueuedJob"), ...bodyErrors, ...v1Errors },
      },
    };
    paths[`/v1/jobs/${q}/{id}`] = {
      delete: {
        operationId: `cancel${pascal(q)}`,
        summary: `Cancel a waiting, delayed or prioritized job on queue "${q}"`,
        tags: ["jobs"],
        security: v1,
        parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
        responses: {
          "200": ok("Removed; `removedFrom` is the state it was in.", "JobRemoved"),
          "404": error("No such job (`not_found`, `field: id`)."),
          "409": error("`job_active` (a worker is running it) or `job_scheduled` (a job scheduler owns it)."),
          ...v1Errors,
        },
      },
    };
  }

  cached = {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: {
      title: "edgefleet",
      version: "0.1.0",
      description: "Enqueue BullMQ jobs at the edge; a Node worker fleet drains them into Postgres. Errors always answer `{ error: { code, message, requestId, field? } }`.",
    },
    tags: [{ name: "events" }, { name: "emails" }, { name: "jobs" }, { name: "webhooks" }, { name: "meta" }],
    security: v1,
    paths,
    components: {
      schemas,
      securitySchemes: {
        apiKey: { type: "http", scheme: "bearer", description: "A service API key: `Authorization: Bearer <key>`. The edge holds only SHA-256 digests (API_KEY_HASHES)." },
        jwt: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "An end-user JWT, verified at the edge against the configured issuer, audience and algorithms." },
      },
    },
  };
  return cached;
}

/**
 * `/docs`: Scalar's API reference, loaded from jsDelivr (major version pinned) and pointed at
 * /openapi.json. The page's own CSP admits scripts only from that CDN and the one inline script
 * carrying the per-request nonce (styles the reference injects are allowed inline).
 */
function docsPage(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta property="csp-nonce" content="${nonce}">
<title>edgefleet API reference</title>
</head>
<body>
<div id="app"></div>
<script nonce="${nonce}" src="${SCALAR_URL}"></script>
<script nonce="${nonce}">Scalar.createApiReference("#app", { url: "/openapi.json" });</script>
</body>
</html>
`;
}

export const SCALAR_URL = "https://cdn.jsdelivr.net/npm/@scalar/api-reference@1";

/** `GET /openapi.json` and `GET /docs`, public: mounted before the `/v1/*` credentials check. */
export const apiDocs = new Hono()
  .get("/openapi.json", (c) => c.json(openApiDocument()))
  .get("/docs", (c) => {
    const nonce = crypto.randomUUID().replaceAll("-", "");
    c.header(
      "Content-Security-Policy",
      `default-src 'none'; script-src 'nonce-${nonce}' https://cdn.jsdelivr.net; style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; font-src https: data:; img-src 'self' https: data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'`,
    );
    return c.html(docsPage(nonce));
  });
