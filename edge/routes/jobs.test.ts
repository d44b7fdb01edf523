import { describe, expect, it } from "vitest";
import type { ExposedQueue } from "../../shared/jobs/registry.ts";
import { testApp } from "../test-helpers.ts";

// Compile-time (tsc runs in `npm test`): exposure follows from the contract's `edge` field.
const exposedQueue: ExposedQueue = "report";
// @ts-expect-error the audit contract has no `edge`: it is not served at /v1/jobs
const notExposed: ExposedQueue = "audit";
void [exposedQueue, notExposed];

interface ErrorBody {
  error: { code: string; message: string; requestId: string; field?: string };
}

const month = { accountId: "acct_1", month: "2026-11" };

describe("POST /v1/jobs/report", () => {
  it("enqueues the contract's job and answers 202 with its id, queue and Location", async () => {
    const t = await testApp();
    const res = await t.request("/v1/jobs/report", { method: "POST", headers: { "Idempotency-Key": "rep-1" }, json: { data: month } });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ id: "rep-1", queue: "report" });
    expect(res.headers.get("location")).toBe("/v1/jobs/report/rep-1");
    const [name, data, opts] = (await t.redis(["HMGET", `${t.prefix}:report:rep-1`, "name", "data", "opts"]))[0] as string[];
    expect(name).toBe("generate-report");
    expect(JSON.parse(data ?? "")).toEqual(month);
    // The contract's defaults and its deduplication key, as BullMQ stores them.
    expect(JSON.parse(opts ?? "")).toMatchObject({ attempts: 3, removeOnComplete: 100, de: { id: "acct_1.2026-11" } });
    expect((await t.redis(["LRANGE", `${t.prefix}:report:wait`, "0", "-1"]))[0]).toEqual(["rep-1"]);
    const status = await t.request("/v1/jobs/report/rep-1");
    expect(await status.json()).toMatchObject({ id: "rep-1", queue: "report", name: "generate-report", state: "waiting" });
  });

  it("generates an id when no Idempotency-Key is sent", async () => {
    const t = await testApp();
    const res = await t.request("/v1/jobs/report", { method: "POST", json: { data: month } });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await t.redis(["EXISTS", `${t.prefix}:report:${id}`]))[0]).toBe(1);
  });

  it("holds a delayed job in the delayed set and a prioritized one in the prioritized set", async () => {
    const t = await testApp();
    const delayed = await t.request("/v1/jobs/report", { method: "POST", headers: { "Idempotency-Key": "later" }, json: { data: month, delay: 60_000 } });
    expect(delayed.status).toBe(202);
    const urgent = await t.request("/v1/jobs/report", {
      method: "POST", headers: { "Idempotency-Key": "urgent" }, json: { data: { ...month, month: "2026-10" }, priority: 1 },
    });
    expect(urgent.status).toBe(202);
    expect(await (await t.request("/v1/jobs/report/later")).json()).toMatchObject({ state: "delayed" });
    expect(await (await t.request("/v1/jobs/report/urgent")).json()).toMatchObject({ state: "prioritized" });
    const [score] = (await t.redis(["ZSCORE", `${t.prefix}:report:delayed`, "later"])) as [string];
    const [timestamp] = (await t.redis(["HGET", `${t.prefix}:report:later`, "timestamp"])) as [string];
    // BullMQ's delayed score: (timestamp + delay) * 4096 + a per-job counter.
    expect(Math.floor(Number(score) / 4096)).toBe(Number(timestamp) + 60_000);
  });

  it("answers a second request for the same account and month with the job already queued (deduplication)", async () => {
    const t = await testApp();
    const first = await t.request("/v1/jobs/report", { method: "POST", headers: { "Idempotency-Key": "a1" }, json: { data: month } });
    const second = await t.request("/v1/jobs/report", { method: "POST", headers: { "Idempotency-Key": "a2" }, json: { data: month } });
    expect(await first.json()).toEqual({ id: "a1", queue: "report" });
    expect(second.status).toBe(202);
    expect(await second.json()).toEqual({ id: "a1", queue: "report", deduplicated: true });
    expect((await t.redis(["EXISTS", `${t.prefix}:report:a2`]))[0]).toBe(0);
    expect((await t.redis(["LLEN", `${t.prefix}:report:wait`]))[0]).toBe(1);
    // Another month is another report.
    const other = await t.request("/v1/jobs/report", { method: "POST", headers: { "Idempotency-Key": "a3" }, json: { data: { ...month, month: "2026-12" } } });
    expect(await other.json()).toEqual({ id: "a3", queue: "report" });
  });

  it.each([
    [{ data: { accountId: "acct_1", month: "2026-13" } }, "data.month"],
    [{ data: { accountId: "acct_1" } }, "data.month"],
    [{ data: { ...month, extra: 1 } }, "data.extra"],
    [{ data: month, delay: -1 }, "delay"],
    [{ data: month, delay: 1.5 }, "delay"],
    [{ data: month, delay: 31 * 24 * 3600 * 1000 }, "delay"],
    [{ data: month, priority: 0 }, "priority"],
    [{ data: month, priority: 2 ** 21 }, "priority"],
    [{ data: month, priority: "high" }, "priority"],
    [{ data: month, jobId: "mine" }, "jobId"],
    [month, "data"],
  ])("refuses %j with 400 validation_failed naming %s, and enqueues nothing", async (body, field) => {
    const t = await testApp();
    const res = await t.request("/v1/jobs/report", { method: "POST", json: body });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as ErrorBody;
    expect(error).toMatchObject({ code: "validation_failed", field });
    expect(await t.keys()).toEqual([]);
  });

  it("refuses a body that is not JSON, and an Idempotency-Key naming a queue key, with nothing enqueued", async () => {
    const t = await testApp();
    const bad = await t.request("/v1/jobs/report", { method: "POST", body: "{", headers: { "content-type": "application/json" } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as ErrorBody).error).toMatchObject({ code: "invalid_json", field: "body" });
    const reserved = await t.request("/v1/jobs/report", { method: "POST", headers: { "Idempotency-Key": "meta" }, json: { data: month } });
    expect(reserved.status).toBe(400);
    expect(((await reserved.json()) as ErrorBody).error).toMatchObject({ code: "invalid_idempotency_key", field: "Idempotency-Key" });
    expect(await t.keys()).toEqual([]);
  });

  it("serves only exposed queues: 404 for a built-in queue and for an unknown one", async () => {
    const t = await testApp();
    for (const queue of ["audit", "stripe-webhook", "nope"]) {
      const res = await t.request(`/v1/jobs/${queue}`, { method: "POST", json: { data: {} } });
      expect(res.status).toBe(404);
      expect(((await res.json()) as ErrorBody).error).toMatchObject({ code: "not_found", field: "queue" });
      const del = await t.request(`/v1/jobs/${queue}/x1`, { method: "DELETE" });
      expect(del.status).toBe(404);
    }
    expect(await t.keys()).toEqual([]);
  });

  it("needs the API key", async () => {
    const t = await testApp();
    const res = await t.request("/v1/jobs/report", { method: "POST", headers: { authorization: "Bearer wrong" }, json: { data: month } });
    expect(res.status).toBe(401);
    expect(await t.keys()).toEqual([]);
  });
});

describe("DELETE /v1/jobs/report/:id", () => {
  const post = (t: Awaited<ReturnType<typeof testApp>>, key: string, body: unknown) =>
    t.request("/v1/jobs/report", { method: "POST", headers: { "Idempotency-Key": key }, json: body });

  it("cancels a waiting job: it is gone, and the same report can be asked for again", async () => {
    const t = await testApp();
    await post(t, "c1", { data: month });
    const res = await t.request("/v1/jobs/report/c1", { method: "DELETE" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: "c1", queue: "report", removedFrom: "waiting" });
    expect(await t.keys()).not.toContain(`${t.prefix}:report:c1`);
    expect((await t.request("/v1/jobs/report/c1")).status).toBe(404);
    // removeJob also released the deduplication key: a new request queues a new job.
    expect(await (await post(t, "c2", { data: month })).json()).toEqual({ id: "c2", queue: "report" });
    // Cancelling again: the job is unknown now.
    const again = await t.request("/v1/jobs/report/c1", { method: "DELETE" });
    expect(again.status).toBe(404);
    expect(((await again.json()) as ErrorBody).error).toMatchObject({ code: "not_found", field: "id" });
  });

  it("cancels delayed and prioritized jobs", async () => {
    const t = await testApp();
    await post(t, "d1", { data: month, delay: 60_000 });
    await post(t, "p1", { data: { ...month, month: "2026-01" }, priority: 5 });
    expect(await (await t.request("/v1/jobs/report/d1", { method: "DELETE" })).json()).toMatchObject({ removedFrom: "delayed" });
    expect(await (await t.request("/v1/jobs/report/p1", { method: "DELETE" })).json()).toMatchObject({ removedFrom: "prioritized" });
    expect((await t.redis(["ZCARD", `${t.prefix}:report:delayed`], ["ZCARD", `${t.prefix}:report:prioritized`]))).toEqual([0, 0]);
  });

  it("answers 409 job_active for a job a worker holds the lock of, and leaves it in place", async () => {
    const t = await testApp();
    await post(t, "busy", { data: month });
    // What a BullMQ Worker holds while it runs the job (the node conformance test uses a real one).
    await t.redis(["SET", `${t.prefix}:report:busy:lock`, "worker-token", "PX", "60000"]);
    const res = await t.request("/v1/jobs/report/busy", { method: "DELETE" });
    expect(res.status).toBe(409);
    expect(((await res.json()) as ErrorBody).error).toMatchObject({ code: "job_active", field: "id" });
    expect((await t.redis(["EXISTS", `${t.prefix}:report:busy`]))[0]).toBe(1);
    expect((await t.redis(["LRANGE", `${t.prefix}:report:wait`, "0", "-1"]))[0]).toEqual(["busy"]);
    await t.redis(["DEL", `${t.prefix}:report:busy:lock`]);
  });

  it("answers 404 for unknown ids and ids that cannot name a job, touching nothing", async () => {
    const t = await testApp();
    await post(t, "keep", { data: month });
    const before = await t.keys();
    for (const id of ["missing", "meta", "wait", "a%3Ab"]) {
      const res = await t.request(`/v1/jobs/report/${id}`, { method: "DELETE" });
      expect(res.status).toBe(404);
    }
    expect(await t.keys()).toEqual(before);
  });
});
