import { describe, expect, it } from "vitest";
import { testApp } from "./test-helpers.ts";

interface Case {
  title: string;
  path: string;
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  status: number;
  code: string;
  field?: string;
}

const event = { name: "user.signed_up", type: "domain", payload: {} };
const email = { to: "ada@example.com", subject: "Hi", text: "Hello" };

const cases: Case[] = [
  { title: "malformed JSON", path: "/v1/events", raw: "{\"name\":", headers: { "content-type": "application/json" }, status: 400, code: "invalid_json", field: "body" },
  { title: "an empty body", path: "/v1/emails", raw: "", headers: { "content-type": "application/json" }, status: 400, code: "invalid_json", field: "body" },
  { title: "a wrong type", path: "/v1/events", body: { ...event, type: "other" }, status: 400, code: "validation_failed", field: "type" },
  { title: "a missing field", path: "/v1/events", body: { type: "domain", payload: {} }, status: 400, code: "validation_failed", field: "name" },
  { title: "an unknown field", path: "/v1/events", body: { ...event, colour: "red" }, status: 400, code: "validation_failed", field: "colour" },
  { title: "a payload that is not an object", path: "/v1/events", body: { ...event, payload: [1] }, status: 400, code: "validation_failed", field: "payload" },
  { title: "a bad occurredAt", path: "/v1/events", body: { ...event, occurredAt: "yesterday" }, status: 400, code: "validation_failed", field: "occurredAt" },
  { title: "an event id with a colon", path: "/v1/events", body: { ...event, id: "a:b" }, status: 400, code: "validation_failed", field: "id" },
  { title: "an all-digit event id", path: "/v1/events", body: { ...event, id: "12345" }, status: 400, code: "validation_failed", field: "id" },
  {
    title: "one bad event in a batch (nothing of the batch is enqueued)",
    path: "/v1/events",
    body: { events: [event, event, { ...event, type: 3 }] },
    status: 400, code: "validation_failed", field: "events[2].type",
  },
  { title: "an empty batch", path: "/v1/events", body: { events: [] }, status: 400, code: "validation_failed", field: "events" },
  {
    title: "a batch over 100 events",
    path: "/v1/events",
    body: { events: Array.from({ length: 101 }, () => event) },
    status: 400, code: "validation_failed", field: "events",
  },
  {
    title: "duplicate ids in one batch",
    path: "/v1/events",
    body: { events: [{ ...event, id: "x1" }, { ...event, id: "x1" }] },
    status: 400, code: "validation_failed", field: "events[1].id",
  },
  {
    title: "an event body over 1 MiB",
    path: "/v1/events",
    body: { ...event, payload: { blob: "x".repeat(1024 * 1024) } },
    status: 413, code: "payload_too_large", field: "body",
  },
  {
    title: "an email body over 1 MiB",
    path: "/v1/emails",
    body: { ...email, text: undefined, html: `<p>${"x".repeat(1024 * 1024)}</p>` },
    status: 413, code: "payload_too_large", field: "body",
  },
  { title: "a bad recipient", path: "/v1/emails", body: { ...email, to: "not-an-email" }, status: 400, code: "validation_failed", field: "to" },
  { title: "a bad cc in a list", path: "/v1/emails", body: { ...email, cc: ["a@b.co", "nope"] }, status: 400, code: "validation_failed", field: "cc[1]" },
  { title: "both html and text", path: "/v1/emails", body: { ...email, html: "<p>x</p>" }, status: 400, code: "validation_failed", field: "html" },
  { title: "no body part", path: "/v1/emails", body: { to: "a@b.co", subject: "s" }, status: 400, code: "validation_failed", field: "html" },
  {
    title: "an Idempotency-Key with a colon",
    path: "/v1/emails",
    body: email,
    headers: { "Idempotency-Key": "a:b" },
    status: 400, code: "invalid_idempotency_key", field: "Idempotency-Key",
  },
  { title: "no Authorization header", path: "/v1/events", body: event, headers: { authorization: "" }, status: 401, code: "unauthorized", field: "Authorization" },
  { title: "a wrong API key", path: "/v1/emails", body: email, headers: { authorization: "Bearer wrong" }, status: 401, code: "unauthorized", field: "Authorization" },
  { title: "Basic instead of Bearer", path: "/v1/events", body: event, headers: { authorization: "Basic abc" }, status: 401, code: "unauthorized", field: "Authorization" },
];

describe("bad input", () => {
  for (const c of cases) {
    it(`answers ${c.status} ${c.code} for ${c.title} and enqueues nothing`, async () => {
      const t = await testApp();
      const res = await t.request(c.path, {
        method: "POST",
        headers: c.headers,
        ...(c.raw !== undefined ? { body: c.raw } : { json: c.body }),
      });
      expect(res.status).toBe(c.status);
      const body = (await res.json()) as { error: { code: string; message: string; requestId: string; field?: string } };
      expect(body.error.code).toBe(c.code);
      expect(body.error.message).toBeTruthy();
      expect(body.error.requestId).toBe(res.headers.get("x-request-id"));
      // A case without a field asserts there is none: an error must not blame a field that is fine.
      if (c.field) expect(body.error.field).toBe(c.field);
      else expect(body.error).not.toHaveProperty("field");
      expect(await t.keys()).toEqual([]);
    });
  }

  it("answers 404 with the error body for an unknown route", async () => {
    const t = await testApp();
    const res = await t.request("/v1/nothing", { method: "POST", json: {} });
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: { code: string } };
    expect(body.error.code).toBe("not_found");
    expect(body.error).not.toHaveProperty("field");
  });
});
