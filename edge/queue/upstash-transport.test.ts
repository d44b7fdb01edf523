/**
 * The Upstash REST transport inside workerd: the real app, fetch to the REST stand-in (which runs
 * the commands on the test Redis), same routes and contracts as the socket transport.
 */
import { describe, expect, inject, it } from "vitest";
import { testApp } from "../test-helpers.ts";
import { createUpstashTransport } from "./upstash-transport.ts";

const rest = () => createUpstashTransport(inject("upstashUrl"), inject("upstashToken"), { timeoutMs: 2000 });
const event = { id: "evt-rest", name: "user.signed_up", type: "domain", payload: { plan: "pro", note: "zoë 🚀" } };

describe("the app over Upstash REST", () => {
  it("answers 202 and the job lands in Redis as BullMQ stores it", async () => {
    const t = await testApp({ transport: rest });
    const res = await t.request("/v1/events", { method: "POST", json: event });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ jobs: [{ id: "evt-rest", queue: "audit" }] });
    const [data, opts] = (await t.redis(["HGET", `${t.prefix}:audit:evt-rest`, "data"], ["HGET", `${t.prefix}:audit:evt-rest`, "opts"])) as [string, string];
    expect(JSON.parse(data)).toMatchObject({ id: "evt-rest", payload: { plan: "pro", note: "zoë 🚀" } });
    // The msgpack options arrived intact through base64 + the Lua decoder: BullMQ stores them as
    // JSON, and they are the audit contract's defaults, byte for byte what the socket path stores.
    expect(JSON.parse(opts)).toEqual({
      jobId: "evt-rest", attempts: 5, backoff: { type: "exponential", delay: 500 }, removeOnComplete: 1000, removeOnFail: 5000,
    });
    const overSocket = await testApp();
    expect((await overSocket.request("/v1/events", { method: "POST", json: event })).status).toBe(202);
    expect(await overSocket.redis(["HGET", `${overSocket.prefix}:audit:evt-rest`, "opts"])).toEqual([opts]);
    expect((await t.redis(["LRANGE", `${t.prefix}:audit:wait`, "0", "-1"]))[0]).toEqual(["evt-rest"]);

    const status = await t.request("/v1/jobs/audit/evt-rest");
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ id: "evt-rest", state: "waiting" });
  });

  it("answers 503 with Retry-After when the REST endpoint is down, and enqueues nothing", async () => {
    const down = new URL(inject("upstashUrl"));
    down.port = "9"; // discard port: nothing listens (workerd logs its own "Network connection lost")
    const timeoutMs = 20_000;
    const t = await testApp({ transport: () => createUpstashTransport(down.href, inject("upstashToken"), { timeoutMs }) });
    const started = Date.now();
    const res = await t.request("/v1/events", { method: "POST", json: event });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("2");
    expect(await res.json()).toMatchObject({ error: { code: "queue_unavailable", message: expect.stringMatching(/may have been accepted/) } });
    // A refused connection is reported at once; only a wait for the timer could take this long.
    expect(Date.now() - started).toBeLessThan(timeoutMs / 2);
    expect(await t.keys()).toEqual([]);
  });

  it("answers 503 when the token is wrong, without saying it was maybe accepted", async () => {
    const t = await testApp({ transport: () => createUpstashTransport(inject("upstashUrl"), "not-the-token") });
    const res = await t.request("/v1/events", { method: "POST", json: event });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { code: "queue_unavailable", message: expect.stringMatching(/nothing was accepted/) } });
    expect(await t.keys()).toEqual([]);
  });
});
