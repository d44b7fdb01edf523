import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { sampleEvent, signedDelivery } from "../tools/testing/stripe-fixtures.ts";
import { createApp } from "./app.ts";
import {
  EnqueuedJob, ErrorBody, EventsAccepted, JobRemoved, JobStatus, Liveness, Readiness, requestBodies, SCALAR_URL, StripeReceived,
} from "./openapi.ts";
import { testApp } from "./test-helpers.ts";

type Json = Record<string, unknown>;
type Operation = { requestBody?: { content: Record<string, { examples?: Record<string, { value: unknown }> }> }; responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }> };

const STRIPE_SECRET = "whsec_test_openapi_0123456789";

/** The response components, by name, as the zod schemas they are generated from. */
const RESPONSES: Record<string, z.ZodType> = { EnqueuedJob, ErrorBody, EventsAccepted, JobRemoved, JobStatus, Liveness, Readiness, StripeReceived };

/**
 * Registered routes the document leaves out on purpose: the catch-alls behind which a queue that
 * is not exposed answers 404 (asserted below, so the exception cannot hide a real route).
 */
const UNDOCUMENTED = new Set(["POST /v1/jobs/:queue", "DELETE /v1/jobs/:queue/:id"]);

async function spec(t: Awaited<ReturnType<typeof testApp>>): Promise<Json & { paths: Record<string, Record<string, Operation>> }> {
  // No Authorization header: the document is public.
  const res = await t.app.request("/openapi.json");
  expect(res.status).toBe(200);
  return (await res.json()) as Json & { paths: Record<string, Record<string, Operation>> };
}

describe("GET /openapi.json", () => {
  it("is OpenAPI 3.1 and documents every route the app registers", async () => {
    const t = await testApp();
    const doc = await spec(t);
    expect(doc.openapi).toBe("3.1.0");
    const app = createApp({ apiKeyHashes: [], openQueue: () => { throw new Error("no Redis for a route listing"); } });
    const registered = new Set(app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`));
    expect(registered.size).toBeGreaterThan(5);
    const missing: string[] = [];
    for (const route of registered) {
      if (UNDOCUMENTED.has(route)) continue;
      const [method = "", path = ""] = route.split(" ");
      const templated = path.replace(/:(\w+)/g, "{$1}");
      if (!doc.paths[templated]?.[method.toLowerCase()]) missing.push(route);
    }
    expect(missing).toEqual([]);
    // And nothing documented that the app does not serve.
    const served = [...registered].map((r) => r.replace(/:(\w+)/g, "{$1}").toLowerCase());
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) expect(served).toContain(`${method} ${path}`.toLowerCase());
    }
    for (const route of UNDOCUMENTED) {
      const [method = "", path = ""] = route.split(" ");
      const res = await t.request(path.replace(":queue", "audit").replace(":id", "x1"), { method, json: { data: {} } });
      expect(res.status).toBe(404);
    }
  });

  it("resolves every $ref, and declares the security schemes and the standard error body", async () => {
    const t = await testApp();
    const doc = await spec(t);
    const components = doc.components as { schemas: Json; securitySchemes: Json };
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1] ?? "");
    expect(refs.length).toBeGreaterThan(10);
    for (const ref of refs) {
      expect(ref).toMatch(/^#\/components\/schemas\/\w+$/);
      expect(components.schemas).toHaveProperty(ref.split("/").pop() ?? "");
    }
    expect(Object.keys(components.securitySchemes).sort()).toEqual(["apiKey", "jwt"]);
    expect(components.schemas.ErrorBody).toMatchObject({ properties: { error: { required: ["code", "message", "requestId"] } } });
  });

  it("serves examples that validate against the route's schema, are accepted by the app, and whose answers match the documented responses", async () => {
    const t = await testApp({ stripeWebhookSecrets: [STRIPE_SECRET] });
    const doc = await spec(t);
    const bodies = requestBodies();
    let examples = 0;
    let n = 0;
    const check = async (method: string, path: string, op: Operation, res: Response) => {
      const status = String(res.status);
      expect(status, `${method} ${path}: ${status}`).toMatch(/^2/);
      const ref = op.responses[status]?.content?.["application/json"]?.schema.$ref;
      expect(ref, `${method} ${path} documents ${status}`).toBeDefined();
      const schema = RESPONSES[ref?.split("/").pop() ?? ""];
      expect(schema, ref).toBeDefined();
      const parsed = schema?.safeParse(await res.json());
      expect(parsed?.error?.issues ?? [], `${method} ${path} answer vs ${ref}`).toEqual([]);
    };
    const enqueued: Array<{ queue: string; id: string }> = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      const op = ops.post;
      if (!op?.requestBody || path === "/webhooks/stripe") continue;
      const key = `POST ${path}`;
      const documented = op.requestBody.content["application/json"]?.examples ?? {};
      // What is served is exactly what the test validates.
      expect(Object.fromEntries(Object.entries(documented).map(([k, v]) => [k, v.value]))).toEqual(bodies[key]?.examples);
      for (const [name, { value }] of Object.entries(documented)) {
        examples++;
        const parsed = bodies[key]?.schema.safeParse(value);
        expect(parsed?.error?.issues ?? [], `${key} example ${name}`).toEqual([]);
        // Distinct keys; a fresh account per example so the report contract does not deduplicate.
        const body = JSON.parse(JSON.stringify(value).replaceAll("acct_42", `acct_${n}`)) as unknown;
        const res = await t.request(path, { method: "POST", headers: { "Idempotency-Key": `ex-${n++}` }, json: body });
        const clone = res.clone();
        await check("POST", path, op, res);
        const answer = (await clone.json()) as { id?: string; queue?: string };
        if (answer.id && answer.queue) enqueued.push({ id: answer.id, queue: answer.queue });
      }
    }
    expect(examples).toBeGreaterThanOrEqual(6);

    // The read and cancel operations, on jobs the examples created.
    const report = enqueued.find((j) => j.queue === "report");
    expect(report).toBeDefined();
    const get = doc.paths["/v1/jobs/{queue}/{id}"]?.get as Operation;
    await check("GET", "/v1/jobs/{queue}/{id}", get, await t.request(`/v1/jobs/report/${report?.id}`));
    await check("DELETE", "/v1/jobs/report/{id}", doc.paths["/v1/jobs/report/{id}"]?.delete as Operation, await t.request(`/v1/jobs/report/${report?.id}`, { method: "DELETE" }));
    await check("GET", "/v1/health", doc.paths["/v1/health"]?.get as Operation, await t.request("/v1/health"));
    await check("GET", "/health", doc.paths["/health"]?.get as Operation, await t.app.request("/health"));
    const event = sampleEvent("invoice.paid");
    const { body, signature } = await signedDelivery(event, STRIPE_SECRET);
    const stripe = await t.app.request("/webhooks/stripe", { method: "POST", headers: { "content-type": "application/json", "stripe-signature": signature }, body });
    await check("POST", "/webhooks/stripe", doc.paths["/webhooks/stripe"]?.post as Operation, stripe);
  });

  it("documents errors in the body the app answers with", async () => {
    const t = await testApp();
    for (const [path, init] of [
      ["/v1/jobs/report", { method: "POST", json: { data: { accountId: "a", month: "2026-13" } } }],
      ["/v1/events", { method: "POST", body: "{" }],
      ["/v1/jobs/report", { method: "POST", headers: { authorization: "Bearer nope" }, json: {} }],
      ["/v1/jobs/nope/x", {}],
    ] as const) {
      const res = await t.request(path, init);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(ErrorBody.safeParse(await res.json()).error?.issues ?? []).toEqual([]);
    }
    expect(await t.keys()).toEqual([]);
  });
});

describe("GET /docs", () => {
  it("serves the reference page, public, pointed at /openapi.json, with a CSP that admits only the pinned CDN and its nonce", async () => {
    const t = await testApp();
    const res = await t.app.request("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const csp = res.headers.get("content-security-policy") ?? "";
    const nonce = /'nonce-([0-9a-f]+)'/.exec(csp)?.[1];
    expect(nonce).toBeDefined();
    expect(csp).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).toContain(`<script nonce="${nonce}" src="${SCALAR_URL}"></script>`);
    expect(html).toContain('url: "/openapi.json"');
    // A new nonce per response.
    const again = (await t.app.request("/docs")).headers.get("content-security-policy");
    expect(again).not.toBe(csp);
  });
});
