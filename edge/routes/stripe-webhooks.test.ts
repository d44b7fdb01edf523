import { describe, expect, it } from "vitest";
import { sampleEvent, signedDelivery } from "../../tools/testing/stripe-fixtures.ts";
import { testApp } from "../test-helpers.ts";
import { MAX_STRIPE_BODY_BYTES } from "./stripe-webhooks.ts";

const SECRET = "whsec_test_current_0123456789";
const OLD_SECRET = "whsec_test_previous_abcdefghij";

interface ErrorBody {
  error: { code: string; message: string; requestId: string; field?: string };
}

async function setup(secrets: string[] = [SECRET]) {
  const t = await testApp({ stripeWebhookSecrets: secrets });
  const post = (body: string, signature?: string) =>
    t.app.request("/webhooks/stripe", {
      method: "POST",
      // No Authorization header: the route must not need an API key.
      headers: { "content-type": "application/json", ...(signature ? { "stripe-signature": signature } : {}) },
      body,
    });
  const waiting = async () => (await t.redis(["LRANGE", `${t.prefix}:stripe-webhook:wait`, "0", "-1"]))[0];
  return { ...t, post, waiting };
}

async function expectRejected(res: Response, code: string, status = 400): Promise<ErrorBody> {
  expect(res.status).toBe(status);
  const body = (await res.json()) as ErrorBody;
  expect(body.error.code).toBe(code);
  expect(body.error.requestId).toBeTruthy();
  return body;
}

describe("POST /webhooks/stripe", () => {
  it("enqueues a correctly signed event under its event id and answers 200", async () => {
    const t = await setup();
    const event = sampleEvent("customer.subscription.created");
    const { body, signature } = await signedDelivery(event, SECRET);
    const res = await t.post(body, signature);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ received: true, id: event.id });
    expect(await t.waiting()).toEqual([event.id]);
    const [data] = (await t.redis(["HGET", `${t.prefix}:stripe-webhook:${event.id}`, "data"])) as [string];
    expect(JSON.parse(data)).toEqual({ id: event.id, type: event.type, created: event.created, livemode: false, event });
  });

  it("collapses a redelivered event into the job already queued", async () => {
    const t = await setup();
    const event = sampleEvent("invoice.paid");
    for (let i = 0; i < 3; i++) {
      const { body, signature } = await signedDelivery(event, SECRET);
      expect(await (await t.post(body, signature)).json()).toEqual({ received: true, id: event.id });
    }
    expect(await t.waiting()).toEqual([event.id]);
  });

  it("rejects a signature made with another secret and enqueues nothing", async () => {
    const t = await setup();
    const { body, signature } = await signedDelivery(sampleEvent("invoice.paid"), "whsec_someone_else");
    const err = await expectRejected(await t.post(body, signature), "invalid_signature");
    expect(err.error.message).toMatch(/did not verify/);
    expect(await t.keys()).toEqual([]);
  });

  it("rejects a body changed after signing", async () => {
    const t = await setup();
    const { body, signature } = await signedDelivery(sampleEvent("invoice.paid"), SECRET);
    await expectRejected(await t.post(body.replace('"amount_paid": 2900', '"amount_paid": 1'), signature), "invalid_signature");
    expect(await t.keys()).toEqual([]);
  });

  it("rejects a signature older than the 300 s tolerance", async () => {
    const t = await setup();
    const stale = Math.floor(Date.now() / 1000) - 301;
    const { body, signature } = await signedDelivery(sampleEvent("invoice.paid"), SECRET, stale);
    const err = await expectRejected(await t.post(body, signature), "invalid_signature");
    expect(err.error.message).toMatch(/tolerance/i);
    expect(await t.keys()).toEqual([]);
  });

  it("rejects a delivery without a Stripe-Signature header", async () => {
    const t = await setup();
    const err = await expectRejected(await t.post(JSON.stringify(sampleEvent("invoice.paid"))), "invalid_signature");
    expect(err.error.field).toBe("Stripe-Signature");
    expect(await t.keys()).toEqual([]);
  });

  it("rejects a correctly signed body that is not JSON", async () => {
    const t = await setup();
    const { body, signature } = await signedDelivery("not json {", SECRET);
    const err = await expectRejected(await t.post(body, signature), "invalid_signature");
    expect(err.error.message).toMatch(/not JSON/);
    expect(await t.keys()).toEqual([]);
  });

  it("accepts either secret of a rotated list", async () => {
    const t = await setup([SECRET, OLD_SECRET]);
    const events = [sampleEvent("invoice.paid"), sampleEvent("invoice.payment_failed")];
    const signedOld = await signedDelivery(events[0]!, OLD_SECRET);
    const signedNew = await signedDelivery(events[1]!, SECRET);
    expect((await t.post(signedOld.body, signedOld.signature)).status).toBe(200);
    expect((await t.post(signedNew.body, signedNew.signature)).status).toBe(200);
    expect(((await t.waiting()) as string[]).sort()).toEqual(events.map((e) => e.id).sort());
  });

  it.each([
    ["the old secret once the roll is done", OLD_SECRET, SECRET],
    ["the new secret once the roll is undone", SECRET, OLD_SECRET],
  ])("refuses %s, and enqueues nothing", async (_, removed, kept) => {
    const t = await setup([kept]);
    const refused = await signedDelivery(sampleEvent("invoice.paid"), removed);
    await expectRejected(await t.post(refused.body, refused.signature), "invalid_signature");
    expect(await t.keys()).toEqual([]);
    // The secret that stayed still works on the same app.
    const event = sampleEvent("invoice.paid");
    const accepted = await signedDelivery(event, kept);
    expect((await t.post(accepted.body, accepted.signature)).status).toBe(200);
    expect(await t.waiting()).toEqual([event.id]);
  });

  it("answers 413 for a body over the limit", async () => {
    const t = await setup();
    const event = { ...sampleEvent("invoice.paid"), padding: "x".repeat(MAX_STRIPE_BODY_BYTES) };
    const { body, signature } = await signedDelivery(event, SECRET);
    await expectRejected(await t.post(body, signature), "payload_too_large", 413);
    expect(await t.keys()).toEqual([]);
  });

  it("answers 503 and enqueues nothing when no webhook secret is configured", async () => {
    const t = await setup([]);
    const { body, signature } = await signedDelivery(sampleEvent("invoice.paid"), SECRET);
    const res = await t.post(body, signature);
    await expectRejected(res, "webhooks_not_configured", 503);
    // The README promises a minute: Stripe keeps the event and retries while the secret is being set.
    expect(res.headers.get("retry-after")).toBe("60");
    expect(await t.keys()).toEqual([]);
  });

  it("answers 503 with Retry-After, never 2xx, when Redis is unreachable", async () => {
    const t = await testApp({ redisUrl: "redis://:x@127.0.0.1:1", stripeWebhookSecrets: [SECRET] });
    const { body, signature } = await signedDelivery(sampleEvent("invoice.paid"), SECRET);
    const res = await t.app.request("/webhooks/stripe", { method: "POST", headers: { "content-type": "application/json", "stripe-signature": signature }, body });
    await expectRejected(res, "queue_unavailable", 503);
    expect(res.headers.get("retry-after")).toBe("2");
  });
});
