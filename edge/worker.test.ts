/**
 * The deployed entry point (edge/worker.ts) inside workerd, called the way the runtime calls it:
 * `fetch(request, bindings, ctx)`. Bindings alone choose the transport; a bad configuration
 * answers 500 without echoing any value.
 */
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import { sha256Hex } from "./auth.ts";
import { createSocketTransport } from "./queue/socket-transport.ts";
import worker from "./worker.ts";

const API_KEY = "entry-test-key-0123456789";

/** An ExecutionContext that keeps what the Worker hands to waitUntil, so the test can await it. */
function executionContext() {
  const pending: Promise<unknown>[] = [];
  const ctx = {
    waitUntil: (promise: Promise<unknown>) => void pending.push(promise),
    passThroughOnException: () => {},
    props: {},
  } as unknown as ExecutionContext;
  return { ctx, settled: () => Promise.allSettled(pending) };
}

async function call(bindings: Record<string, unknown>, path: string, init: RequestInit = {}): Promise<Response> {
  const { ctx, settled } = executionContext();
  const request = new Request(`https://edge.example${path}`, init);
  const response = await worker.fetch(request as Parameters<typeof worker.fetch>[0], bindings, ctx);
  await settled();
  return response;
}

const prefixes: string[] = [];
afterEach(async () => {
  const redis = createSocketTransport(inject("redisUrl"));
  for (const prefix of prefixes.splice(0)) {
    const [keys] = await redis.pipeline([["KEYS", `${prefix}:*`]]);
    if (Array.isArray(keys) && keys.length > 0) await redis.pipeline([["DEL", ...keys.map(String)]]);
  }
  await redis.close();
  vi.restoreAllMocks();
});

async function baseBindings() {
  const prefix = `tw${crypto.randomUUID().slice(0, 8)}`;
  prefixes.push(prefix);
  return { prefix, bindings: { API_KEY_HASHES: await sha256Hex(API_KEY), QUEUE_PREFIX: prefix } };
}

function postEvent(id: string): RequestInit {
  return {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ id, name: "user.signed_up", type: "domain", payload: {} }),
  };
}

async function waiting(prefix: string): Promise<unknown> {
  const redis = createSocketTransport(inject("redisUrl"));
  try {
    return (await redis.pipeline([["LRANGE", `${prefix}:audit:wait`, "0", "-1"]]))[0];
  } finally {
    await redis.close();
  }
}

describe("the Worker entry", () => {
  it.each([
    ["REDIS_URL redis:// (RESP over a socket)", () => inject("redisUrl")],
    ["REDIS_URL rediss:// (RESP over TLS, the production form)", () => inject("redisTlsUrl")],
  ])("enqueues through %s under QUEUE_PREFIX", async (_, url) => {
    const { prefix, bindings } = await baseBindings();
    const res = await call({ ...bindings, REDIS_URL: url() }, "/v1/events", postEvent("evt-entry"));
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ jobs: [{ id: "evt-entry", queue: "audit" }] });
    expect(await waiting(prefix)).toEqual(["evt-entry"]);
  });

  it("enqueues through Upstash REST when only UPSTASH_REDIS_REST_URL + token are bound", async () => {
    const { prefix, bindings } = await baseBindings();
    const upstash = { UPSTASH_REDIS_REST_URL: inject("upstashUrl"), UPSTASH_REDIS_REST_TOKEN: inject("upstashToken") };
    const res = await call({ ...bindings, ...upstash }, "/v1/events", postEvent("evt-rest-entry"));
    expect(res.status).toBe(202);
    expect(await waiting(prefix)).toEqual(["evt-rest-entry"]);

    // The token binding is what authenticates: a wrong one is refused by the REST endpoint.
    const wrong = await call({ ...bindings, ...upstash, UPSTASH_REDIS_REST_TOKEN: "not-the-token" }, "/v1/events", postEvent("evt-rest-2"));
    expect(wrong.status).toBe(503);
    expect(await wrong.json()).toMatchObject({ error: { code: "queue_unavailable", message: expect.stringMatching(/nothing was accepted/) } });
    expect(await waiting(prefix)).toEqual(["evt-rest-entry"]);
  });

  it("answers 500 internal_error to a misconfigured deployment, logging the names of the problems but no value", async () => {
    const logged: string[] = [];
    vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => void logged.push(args.map(String).join(" ")));
    const secretLooking = "hunter2-not-a-digest";
    const res = await call({ API_KEY_HASHES: secretLooking, REDIS_URL: "http://not-redis.example" }, "/v1/events", postEvent("evt-x"));
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: { code: string; message: string; requestId: string } };
    expect(body.error.code).toBe("internal_error");
    expect(body.error.requestId).toBeTruthy();
    expect(JSON.stringify(body)).not.toContain(secretLooking);
    expect(JSON.stringify(body)).not.toContain("API_KEY_HASHES");
    const log = logged.join("\n");
    expect(log).toMatch(/API_KEY_HASHES/);
    expect(log).toMatch(/REDIS_URL/);
    expect(log).not.toContain(secretLooking);
    expect(log).not.toContain("not-redis.example");
    // The log line and the response carry the same request id.
    expect(log).toContain(body.error.requestId);
    expect(res.headers.get("x-request-id")).toBe(body.error.requestId);
  });

  it("answers 500 when no Redis transport is bound at all", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const { bindings } = await baseBindings();
    const res = await call(bindings, "/v1/events", postEvent("evt-y"));
    expect(res.status).toBe(500);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("internal_error");
  });
});
