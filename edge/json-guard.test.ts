// Values the pipeline cannot store faithfully are refused at the door, naming the field, before
// anything is enqueued: one such value in an audit batch used to fail every job of the batch.
import { describe, expect, it } from "vitest";
import { testApp } from "./test-helpers.ts";

const event = { name: "user.signed_up", type: "domain", payload: {} };
const email = { to: "ada@example.com", subject: "Hi", text: "Hello" };

/** `depth` nested objects: {"a":{"a":…{}}}, built as text (JSON.stringify recurses). */
function nested(depth: number): string {
  return `${'{"a":'.repeat(depth)}{}${"}".repeat(depth)}`;
}

interface Case {
  title: string;
  path: string;
  body: string;
  field: string;
  message: RegExp;
}

const json = (value: unknown) => JSON.stringify(value);
const cases: Case[] = [
  { title: "a NUL in an event name", path: "/v1/events", body: json({ ...event, name: "a\u0000b" }), field: "name", message: /U\+0000/ },
  { title: "a NUL deep in a payload", path: "/v1/events", body: json({ ...event, payload: { note: { text: "x\u0000" } } }), field: "payload.note.text", message: /U\+0000/ },
  {
    title: "a lone surrogate in one event of a batch",
    path: "/v1/events",
    body: json({ events: [event, { ...event, payload: { list: ["ok", "🚀", "\uD800"] } }] }),
    field: "events[1].payload.list[2]", message: /surrogate/,
  },
  { title: "a lone low surrogate", path: "/v1/events", body: json({ ...event, payload: { s: "a\uDC00b" } }), field: "payload.s", message: /surrogate/ },
  { title: "a NUL in a payload key", path: "/v1/events", body: json({ ...event, payload: { "k\u0000": 1 } }), field: "payload", message: /key .*U\+0000/ },
  { title: "a lone surrogate in a key", path: "/v1/events", body: json({ ...event, payload: { "\uDBFF": 1 } }), field: "payload", message: /key .*surrogate/ },
  { title: "a __proto__ key in a payload", path: "/v1/events", body: `{"name":"n","type":"domain","payload":{"__proto__":{"x":1}}}`, field: "payload.__proto__", message: /__proto__/ },
  { title: "a __proto__ key at the top", path: "/v1/events", body: `{"__proto__":{},"name":"n","type":"domain","payload":{}}`, field: "__proto__", message: /__proto__/ },
  { title: "payload nested 2000 deep", path: "/v1/events", body: `{"name":"n","type":"domain","payload":${nested(2000)}}`, field: `payload${".a".repeat(63)}`, message: /deeper than 64/ },
  { title: "a bare body nested 100000 deep", path: "/v1/events", body: `${"[".repeat(100_000)}${"]".repeat(100_000)}`, field: `body${"[0]".repeat(64)}`.replace(/^body/, ""), message: /deeper than 64/ },
  { title: "a NUL in an email subject", path: "/v1/emails", body: json({ ...email, subject: "Hi\u0000" }), field: "subject", message: /U\+0000/ },
  {
    title: "a lone surrogate in email template data",
    path: "/v1/emails",
    body: json({ to: "ada@example.com", subject: "Hi", template: { name: "welcome", data: { first: "\uD83D" } } }),
    field: "template.data.first", message: /surrogate/,
  },
  { title: "an email nested 2000 deep", path: "/v1/emails", body: `{"to":"a@b.co","subject":"s","template":{"name":"t","data":${nested(2000)}}}`, field: `template.data${".a".repeat(62)}`, message: /deeper than 64/ },
];

describe("poison values", () => {
  for (const c of cases) {
    it(`answers 400 validation_failed naming the field for ${c.title}, and enqueues nothing`, async () => {
      const t = await testApp();
      const res = await t.request(c.path, { method: "POST", body: c.body, headers: { "content-type": "application/json" } });
      const body = (await res.json()) as { error: { code: string; field?: string; message: string } };
      expect({ status: res.status, code: body.error.code, field: body.error.field }).toEqual({
        status: 400, code: "validation_failed", field: c.field,
      });
      expect(body.error.message).toMatch(c.message);
      expect(await t.keys()).toEqual([]);
    });
  }

  it("accepts and stores unchanged what is fine: surrogate pairs, 60 levels of nesting, odd but harmless keys", async () => {
    const t = await testApp();
    const payload = { emoji: "zoë 🚀 \u2028", deep: JSON.parse(nested(60)) as unknown, constructor: 1, "a.b": [null, true, 1.5] };
    const res = await t.request("/v1/events", { method: "POST", json: { ...event, id: "fine-values", payload } });
    try {
      expect(res.status).toBe(202);
      const [data] = await t.redis(["HGET", `${t.prefix}:audit:fine-values`, "data"]);
      expect((JSON.parse(String(data)) as { payload: unknown }).payload).toEqual(payload);
    } finally {
      const keys = await t.keys();
      if (keys.length > 0) await t.redis(["DEL", ...keys]);
    }
  });
});
