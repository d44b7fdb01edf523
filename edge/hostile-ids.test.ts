// Caller-chosen ids become BullMQ job ids, i.e. the key `<prefix>:<queue>:<id>`. A queue's own keys
// live beside them (`<prefix>:<queue>:wait`, `…:meta`, …): no route may let a caller address one.
import { describe, expect, it } from "vitest";
import { RESERVED_JOB_IDS } from "../shared/jobs/contract.ts";
import { QUEUE_NAMES } from "../shared/jobs/registry.ts";
import { testApp } from "./test-helpers.ts";

const event = { name: "user.signed_up", type: "domain", payload: {} };
const email = { to: "ada@example.com", subject: "Hi", text: "Hello" };
const names = [...RESERVED_JOB_IDS];

interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

describe("hostile ids", () => {
  it("knows every key type bullmq uses for a queue (the node test checks the list against bullmq)", () => {
    expect(names).toEqual(expect.arrayContaining(["active", "wait", "meta", "id", "events", "marker", "de", "pc"]));
  });

  for (const name of names) {
    it(`refuses "${name}" as an event id, a batch event id and an Idempotency-Key on events and emails, and writes nothing`, async () => {
      const t = await testApp();
      const refused = async (res: Response, status: number, code: string, field: string) => {
        const body = (await res.json()) as ErrorBody;
        expect({ status: res.status, code: body.error.code, field: body.error.field }).toEqual({ status, code, field });
        expect(body.error.message).toMatch(/reserved/);
      };
      await refused(await t.request("/v1/events", { method: "POST", json: { ...event, id: name } }), 400, "validation_failed", "id");
      await refused(
        await t.request("/v1/events", { method: "POST", json: { events: [{ ...event, id: "fine-1" }, { ...event, id: name }] } }),
        400, "validation_failed", "events[1].id",
      );
      const key = { "Idempotency-Key": name };
      await refused(await t.request("/v1/events", { method: "POST", headers: key, json: event }), 400, "invalid_idempotency_key", "Idempotency-Key");
      await refused(
        await t.request("/v1/events", { method: "POST", headers: key, json: { events: [event, event] } }),
        400, "invalid_idempotency_key", "Idempotency-Key",
      );
      await refused(await t.request("/v1/emails", { method: "POST", headers: key, json: email }), 400, "invalid_idempotency_key", "Idempotency-Key");
      expect(await t.keys()).toEqual([]);
    });

    it(`answers 404 for GET /v1/jobs/<queue>/${name} without reading the queue's own key`, async () => {
      const t = await testApp();
      // What a live queue holds under its own names: a job lookup must not read it as a job.
      const seeded = QUEUE_NAMES.map((queue) => `${t.prefix}:${queue}:${name}`);
      await t.redis(...seeded.map((key) => ["HSET", key, "name", "not-a-job", "timestamp", "1", "data", "{}"]));
      try {
        for (const queue of QUEUE_NAMES) {
          const res = await t.request(`/v1/jobs/${queue}/${name}`);
          const body = (await res.json()) as ErrorBody;
          expect({ queue, status: res.status, code: body.error.code }).toEqual({ queue, status: 404, code: "not_found" });
        }
        expect(await t.keys()).toEqual([...seeded].sort());
      } finally {
        await t.redis(["DEL", ...seeded]);
      }
    });
  }

  it("still accepts ids that merely contain a reserved name", async () => {
    const t = await testApp();
    try {
      const res = await t.request("/v1/events", { method: "POST", headers: { "Idempotency-Key": "wait" + "-1" }, json: event });
      expect(res.status).toBe(202);
      expect(await t.keys()).toContain(`${t.prefix}:audit:wait-1`);
    } finally {
      const keys = await t.keys();
      if (keys.length > 0) await t.redis(["DEL", ...keys]);
    }
  });
});
