import { describe, expect, it } from "vitest";
import { testApp } from "./test-helpers.ts";

interface ErrorBody {
  error: { code: string; message: string; requestId: string; field?: string };
}

describe("POST /v1/events", () => {
  it("enqueues one event and answers 202 with its job id", async () => {
    const t = await testApp();
    const res = await t.request("/v1/events", {
      method: "POST",
      json: { id: "evt-1", name: "user.signed_up", type: "domain", accountId: "acc_1", payload: { plan: "pro" } },
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ jobs: [{ id: "evt-1", queue: "audit" }] });
    const [job] = (await t.redis(["HGET", `${t.prefix}:audit:evt-1`, "data"])) as [string];
    expect(JSON.parse(job)).toMatchObject({ id: "evt-1", name: "user.signed_up", payload: { plan: "pro" } });
    expect((await t.redis(["LRANGE", `${t.prefix}:audit:wait`, "0", "-1"]))[0]).toEqual(["evt-1"]);
  });

  it("enqueues a batch in request order and gives ids to events that have none", async () => {
    const t = await testApp();
    const events = Array.from({ length: 100 }, (_, i) => ({ name: `e${i}`, type: "integration", payload: { i } }));
    const res = await t.request("/v1/events", { method: "POST", json: { events } });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { jobs: { id: string; queue: string }[] };
    expect(body.jobs).toHaveLength(100);
    const ids = body.jobs.map((j) => j.id);
    expect(new Set(ids).size).toBe(100);
    // The k-th job answered is the k-th event sent ...
    const stored = (await t.redis(...ids.map((id) => ["HGET", `${t.prefix}:audit:${id}`, "data"]))) as string[];
    expect(stored.map((data) => JSON.parse(data) as { name: string; payload: { i: number } })
      .map((job) => [job.name, job.payload.i])).toEqual(events.map((e) => [e.name, e.payload.i]));
    // ... and workers take them in that order: BullMQ pushes on the left and takes from the right.
    const [waiting] = (await t.redis(["LRANGE", `${t.prefix}:audit:wait`, "0", "-1"])) as [string[]];
    expect(waiting.toReversed()).toEqual(ids);
  });

  it("returns the same job for a re-sent event id and creates no second job", async () => {
    const t = await testApp();
    const event = { id: "evt-dup", name: "x", type: "domain", payload: {} };
    const first = await (await t.request("/v1/events", { method: "POST", json: event })).json();
    const second = await t.request("/v1/events", { method: "POST", json: event });
    expect(second.status).toBe(202);
    expect(await second.json()).toEqual(first);
    expect((await t.redis(["LLEN", `${t.prefix}:audit:wait`]))[0]).toBe(1);
  });

  it("derives job ids from the Idempotency-Key so a retried batch is not enqueued twice", async () => {
    const t = await testApp();
    const send = () =>
      t.request("/v1/events", {
        method: "POST",
        headers: { "Idempotency-Key": "batch-42" },
        json: { events: [{ name: "a", type: "domain", payload: {} }, { name: "b", type: "domain", payload: {} }] },
      });
    const first = await (await send()).json();
    expect(first).toEqual({ jobs: [{ id: "batch-42.0", queue: "audit" }, { id: "batch-42.1", queue: "audit" }] });
    expect(await (await send()).json()).toEqual(first);
    expect((await t.redis(["LLEN", `${t.prefix}:audit:wait`]))[0]).toBe(2);
  });
});

describe("POST /v1/emails", () => {
  it("enqueues an email with the Idempotency-Key as job id", async () => {
    const t = await testApp();
    const email = { to: "ada@example.com", subject: "Hi", text: "Hello" };
    const res = await t.request("/v1/emails", { method: "POST", headers: { "Idempotency-Key": "mail-1" }, json: email });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ id: "mail-1", queue: "email" });
    const again = await t.request("/v1/emails", { method: "POST", headers: { "Idempotency-Key": "mail-1" }, json: email });
    expect(await again.json()).toEqual({ id: "mail-1", queue: "email" });
    expect((await t.redis(["LRANGE", `${t.prefix}:email:wait`, "0", "-1"]))[0]).toEqual(["mail-1"]);
  });
});

describe("GET /v1/jobs/:queue/:id", () => {
  it("reports a waiting job's state from Redis", async () => {
    const t = await testApp();
    await t.request("/v1/events", { method: "POST", json: { id: "evt-s", name: "n", type: "domain", payload: {} } });
    const res = await t.request("/v1/jobs/audit/evt-s");
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ id: "evt-s", queue: "audit", name: "record-event", state: "waiting", attemptsMade: 0 });
    expect(Date.parse(body.createdAt as string)).toBeGreaterThan(Date.now() - 60_000);
  });

  it("answers 404 with the error body for an unknown job or queue", async () => {
    const t = await testApp();
    for (const path of ["/v1/jobs/audit/nope", "/v1/jobs/nosuchqueue/x", "/v1/jobs/audit/a:b"]) {
      const res = await t.request(path);
      expect(res.status, path).toBe(404);
      const body = (await res.json()) as ErrorBody;
      expect(body.error.code).toBe("not_found");
      expect(body.error.requestId).toBeTruthy();
    }
  });
});

describe("GET /v1/health", () => {
  it("is ok when Redis answers and 503 with Retry-After when it does not", async () => {
    expect((await (await testApp()).request("/v1/health")).status).toBe(200);
    const down = await testApp({ redisUrl: "redis://:x@127.0.0.1:1" });
    const res = await down.request("/v1/health");
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("2");
    expect(((await res.json()) as ErrorBody).error.code).toBe("queue_unavailable");
  });
});

describe("when Redis is unreachable", () => {
  it("answers 503 without waiting for the connect timeout, and never 2xx", async () => {
    const connectTimeoutMs = 20_000;
    const t = await testApp({ redisUrl: "redis://:x@127.0.0.1:1", socket: { connectTimeoutMs } });
    const started = Date.now();
    const res = await t.request("/v1/events", { method: "POST", json: { name: "n", type: "domain", payload: {} } });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("2");
    const body = (await res.json()) as ErrorBody;
    expect(body.error.code).toBe("queue_unavailable");
    // A refused connection is reported at once; only a wait for the timer could take this long.
    expect(Date.now() - started).toBeLessThan(connectTimeoutMs / 2);
  });
});
