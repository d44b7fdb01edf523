/**
 * The wake call (edge/wake.ts) through the deployed entry point inside workerd: after Redis
 * accepted a job, the edge calls the autoscaler in `waitUntil`. The 202 never waits for it, never
 * depends on it, and never shows its token. The autoscaler is the wake stand-in from the test
 * setup (tools/testing/wake-recorder.ts), reached over real HTTP.
 */
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import { sha256Hex } from "./auth.ts";
import { parseEdgeEnv } from "./env.ts";
import { createSocketTransport } from "./queue/socket-transport.ts";
import type { RecordedWake } from "../tools/testing/wake-recorder.ts";
import worker from "./worker.ts";

const API_KEY = "wake-test-key-0123456789";
const TOKEN = "wake-token-3f9c2a7d51e84b60";

/** Calls the Worker as the runtime does; `background` settles what it handed to waitUntil. */
async function call(bindings: Record<string, unknown>, path: string, init: RequestInit) {
  const pending: Promise<unknown>[] = [];
  const ctx = { waitUntil: (p: Promise<unknown>) => void pending.push(p), passThroughOnException: () => {}, props: {} } as unknown as ExecutionContext;
  const response = await worker.fetch(new Request(`https://edge.example${path}`, init) as Parameters<typeof worker.fetch>[0], bindings, ctx);
  return { response, background: () => Promise.allSettled(pending) };
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

/** Bindings for one test: its own queue prefix and wake path (the throttle is keyed by URL). */
async function setup(kind: "wake" | "hang" | "down") {
  const prefix = `tk${crypto.randomUUID().slice(0, 8)}`;
  prefixes.push(prefix);
  const key = crypto.randomUUID();
  const url = kind === "down" ? inject("wakeDownUrl") : `${inject("wakeRecorderUrl")}/${kind}/${key}`;
  const bindings = {
    API_KEY_HASHES: await sha256Hex(API_KEY),
    QUEUE_PREFIX: prefix,
    REDIS_URL: inject("redisUrl"),
    AUTOSCALER_WAKE_URL: url,
    AUTOSCALER_WAKE_TOKEN: TOKEN,
  };
  const recorded = async (): Promise<RecordedWake[]> =>
    (await (await fetch(`${inject("wakeRecorderUrl")}/recorded/${key}`)).json()) as RecordedWake[];
  return { prefix, bindings, recorded };
}

const post = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
  body: JSON.stringify(body),
});
const event = (id: string) => post({ id, name: "user.signed_up", type: "domain", payload: {} });

async function waiting(prefix: string, queue: string): Promise<unknown> {
  const redis = createSocketTransport(inject("redisUrl"));
  try {
    return (await redis.pipeline([["LRANGE", `${prefix}:${queue}:wait`, "0", "-1"]]))[0];
  } finally {
    await redis.close();
  }
}

/** Polls until `check` returns a value (workerd cannot import the Node fixtures' `eventually`). */
async function eventually<T>(check: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("condition not met");
}

describe("the wake call after an accepted enqueue", () => {
  it("answers 202 while the autoscaler never answers, and the wake gives up on its own", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const { prefix, bindings, recorded } = await setup("hang");
    const { response, background } = await call(bindings, "/v1/events", event("evt-hang"));
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ jobs: [{ id: "evt-hang", queue: "audit" }] });
    expect(await waiting(prefix, "audit")).toEqual(["evt-hang"]);
    // The autoscaler received the call and is still holding it unanswered, yet the 202 is here.
    const calls = await eventually(async () => ((await recorded()).length > 0 ? recorded() : undefined));
    expect(calls).toHaveLength(1);
    // The timeout ends the hung call; the promise handed to waitUntil does not reject.
    expect((await background()).map((r) => r.status)).toEqual(["fulfilled", "fulfilled"]);
  });

  it("carries the bearer token and the queue, and never shows the token to the caller", async () => {
    const { bindings, recorded } = await setup("wake");
    const { response, background } = await call(bindings, "/v1/events", event("evt-token"));
    const text = await response.text();
    await background();
    expect(response.status).toBe(202);
    expect(text).not.toContain(TOKEN);
    expect(await recorded()).toEqual([{ method: "POST", authorization: `Bearer ${TOKEN}`, body: JSON.stringify({ queues: ["audit"] }) }]);
  });

  it("wakes once per queue for two quick enqueues, and separately for another queue", async () => {
    const { prefix, bindings, recorded } = await setup("wake");
    const first = await call(bindings, "/v1/events", event("evt-1"));
    const second = await call(bindings, "/v1/events", event("evt-2"));
    const email = await call(bindings, "/v1/emails", post({ to: "ada@example.com", subject: "Hi", text: "Hello" }));
    await Promise.all([first.background(), second.background(), email.background()]);
    expect([first.response.status, second.response.status, email.response.status]).toEqual([202, 202, 202]);
    expect(await waiting(prefix, "audit")).toEqual(["evt-2", "evt-1"]);
    expect((await recorded()).map((r) => JSON.parse(r.body))).toEqual([{ queues: ["audit"] }, { queues: ["email"] }]);
  });

  it("changes nothing for the caller when the autoscaler is down", async () => {
    const warnings: string[] = [];
    vi.spyOn(console, "warn").mockImplementation((...args: unknown[]) => void warnings.push(args.map(String).join(" ")));
    const { prefix, bindings } = await setup("down");
    const { response, background } = await call(bindings, "/v1/events", event("evt-down"));
    expect(response.status).toBe(202);
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({ jobs: [{ id: "evt-down", queue: "audit" }] });
    expect(text).not.toContain(TOKEN);
    expect(await waiting(prefix, "audit")).toEqual(["evt-down"]);
    expect((await background()).every((r) => r.status === "fulfilled")).toBe(true);
    // The operator sees the failed wake, without the token.
    expect(warnings.join("\n")).toMatch(/autoscaler wake failed.*"audit"/);
    expect(warnings.join("\n")).not.toContain(TOKEN);
  });

  it("makes no wake call for a refused request", async () => {
    const { bindings, recorded } = await setup("wake");
    const { response, background } = await call(bindings, "/v1/events", post({ id: "evt-bad" }));
    await background();
    expect(response.status).toBe(400);
    expect(await recorded()).toEqual([]);
  });
});

describe("AUTOSCALER_WAKE_URL and AUTOSCALER_WAKE_TOKEN", () => {
  const base = { API_KEY_HASHES: "a".repeat(64), REDIS_URL: "redis://127.0.0.1:6379" };

  it("are both or neither", () => {
    expect(parseEdgeEnv(base).wake).toBeUndefined();
    expect(parseEdgeEnv({ ...base, AUTOSCALER_WAKE_URL: "https://scale.example/wake", AUTOSCALER_WAKE_TOKEN: TOKEN }).wake)
      .toEqual({ url: "https://scale.example/wake", token: TOKEN });
    expect(() => parseEdgeEnv({ ...base, AUTOSCALER_WAKE_URL: "https://scale.example/wake" })).toThrow(/AUTOSCALER_WAKE_TOKEN: required with AUTOSCALER_WAKE_URL/);
    expect(() => parseEdgeEnv({ ...base, AUTOSCALER_WAKE_TOKEN: TOKEN })).toThrow(/AUTOSCALER_WAKE_URL: required with AUTOSCALER_WAKE_TOKEN/);
  });

  it("refuse plain http beyond this machine and a short token, without echoing the token", () => {
    expect(() => parseEdgeEnv({ ...base, AUTOSCALER_WAKE_URL: "http://scale.example/wake", AUTOSCALER_WAKE_TOKEN: TOKEN })).toThrow(/AUTOSCALER_WAKE_URL: must be https/);
    expect(parseEdgeEnv({ ...base, AUTOSCALER_WAKE_URL: "http://127.0.0.1:8090/wake", AUTOSCALER_WAKE_TOKEN: TOKEN }).wake?.url).toBe("http://127.0.0.1:8090/wake");
    const error = (() => {
      try {
        parseEdgeEnv({ ...base, AUTOSCALER_WAKE_URL: "https://scale.example/wake", AUTOSCALER_WAKE_TOKEN: "short-token" });
      } catch (err) {
        return String(err);
      }
    })();
    expect(error).toMatch(/AUTOSCALER_WAKE_TOKEN: at least 16 characters/);
    expect(error).not.toContain("short-token");
  });

  it("misconfigured, the edge answers 500 without the token in the body", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const { bindings } = await setup("wake");
    const { response } = await call({ ...bindings, AUTOSCALER_WAKE_URL: undefined }, "/v1/events", event("evt-cfg"));
    expect(response.status).toBe(500);
    expect(await response.text()).not.toContain(TOKEN);
  });
});
