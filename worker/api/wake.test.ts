// Self-host mode: the same app on Node wakes the autoscaler after an accepted enqueue, fire and
// forget (no waitUntil on Node), from the same AUTOSCALER_WAKE_* variables as the edge.
import { createHash, randomUUID } from "node:crypto";
import { afterEach, describe, expect, inject, it } from "vitest";
import type { RecordedWake } from "../../tools/testing/wake-recorder.ts";
import { deleteKeys, eventually, uniqueId } from "../../tools/testing/fixtures.ts";
import { parseApiEnv } from "./env.ts";
import { createNodeApi } from "./server.ts";

const API_KEY = "selfhost-wake-key-0123456789";
const TOKEN = "selfhost-wake-token-8d1f4e2a";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

describe("the self-host API's wake call", () => {
  it("answers 202 and then wakes the autoscaler once per queue with its token", async () => {
    const prefix = uniqueId("sw");
    cleanups.push(() => deleteKeys(inject("redisUrl"), prefix));
    const key = randomUUID();
    const api = createNodeApi(parseApiEnv({
      REDIS_URL: inject("redisUrl"),
      API_KEY_HASHES: createHash("sha256").update(API_KEY).digest("hex"),
      QUEUE_PREFIX: prefix,
      AUTOSCALER_WAKE_URL: `${inject("wakeRecorderUrl")}/wake/${key}`,
      AUTOSCALER_WAKE_TOKEN: TOKEN,
    }));
    cleanups.push(() => api.close());
    const post = (id: string) =>
      api.app.request("/v1/events", {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ id, name: "user.signed_up", type: "domain", payload: {} }),
      });
    const first = await post("evt-a");
    const second = await post("evt-b");
    expect([first.status, second.status]).toEqual([202, 202]);
    expect(await first.text()).not.toContain(TOKEN);

    const recorded = async () => (await (await fetch(`${inject("wakeRecorderUrl")}/recorded/${key}`)).json()) as RecordedWake[];
    const calls = await eventually("the wake call", async () => ((await recorded()).length > 0 ? recorded() : undefined));
    expect(calls).toEqual([{ method: "POST", authorization: `Bearer ${TOKEN}`, body: JSON.stringify({ queues: ["audit"] }) }]);
  });
});
