import { expect, it } from "vitest";
import { createClient, EdgefleetError } from "../client/edgefleet.ts";
import { example } from "../client/example.ts";
import { API_KEY, testApp } from "./test-helpers.ts";

it("runs the README's client example against the app: the event and the report job are in Redis", async () => {
  const t = await testApp();
  const client = createClient({ baseUrl: "https://edge.test", token: API_KEY, fetch: (req) => t.app.request(req.url.replace("https://edge.test", ""), req) });
  const id = await example(client);
  expect(id).toBe("report-acct_42-2026-11");
  expect((await t.redis(["LRANGE", `${t.prefix}:report:wait`, "0", "-1"]))[0]).toEqual([id]);
  expect((await t.redis(["LLEN", `${t.prefix}:audit:wait`]))[0]).toBe(1);
  expect(await client.jobs.cancel("report", id)).toEqual({ id, queue: "report", removedFrom: "waiting" });
});

it("raises the API's error code, field and request id as an EdgefleetError", async () => {
  const t = await testApp();
  const client = createClient({ baseUrl: "https://edge.test/", token: "wrong", fetch: (req) => t.app.request(req.url.replace("https://edge.test", ""), req) });
  const err = await client.jobs.get("report", "x").catch((e: unknown) => e);
  expect(err).toBeInstanceOf(EdgefleetError);
  expect(err).toMatchObject({ status: 401, code: "unauthorized", field: "Authorization", retryable: false });
  expect((err as EdgefleetError).requestId).not.toBe("");
});
