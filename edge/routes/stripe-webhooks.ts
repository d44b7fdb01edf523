import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
// The package's `workerd`/`worker` export condition resolves to its fetch + WebCrypto build, so no
// Node compat is needed. Only the static `Stripe.webhooks` helpers are used: the edge holds the
// webhook signing secret(s), never an API key.
import Stripe from "stripe";
import { StripeWebhookJob, stripeWebhookContract } from "../../shared/jobs/stripe-webhook.ts";
import { parseWith } from "../body.ts";
import { ApiError, onError } from "../errors.ts";
import type { QueueVariables } from "../queue-middleware.ts";

/**
 * Largest webhook body accepted. Stripe does not publish a maximum; real events are a few KB and
 * rarely above 64 KB (an invoice with many lines is the usual big one). 256 KiB leaves 4× headroom
 * over that while keeping a hostile body from costing the isolate more than a quarter-megabyte.
 */
export const MAX_STRIPE_BODY_BYTES = 256 * 1024;

/** Stripe's own default: a signature older (or newer) than 5 minutes is a replay. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

const crypto = Stripe.createSubtleCryptoProvider();

function invalidSignature(message: string): ApiError {
  return new ApiError("invalid_signature", message, { field: "Stripe-Signature" });
}

/**
 * Verifies the raw body against each secret in turn, so a secret can be rolled without downtime:
 * deploy "new,old", switch the endpoint in Stripe, then drop "old". During Stripe's own roll the
 * header carries one `v1=` per live secret, which the SDK already accepts.
 */
async function verify(body: string, header: string, secrets: readonly string[]): Promise<Stripe.Event> {
  let detail = "";
  for (const secret of secrets) {
    try {
      return await Stripe.webhooks.constructEventAsync(body, header, secret, SIGNATURE_TOLERANCE_SECONDS, crypto);
    } catch (err) {
      // The SDK's messages name the failure (no signature for the expected scheme, timestamp outside
      // the tolerance zone, …) and contain neither the secret nor the body.
      if (err instanceof Stripe.errors.StripeSignatureVerificationError) detail = err.message.split("\n")[0] ?? "";
      // Verified, then JSON.parse failed: the signature is Stripe's but the body is not an event.
      else if (err instanceof SyntaxError) throw invalidSignature("the signed body is not JSON");
      else throw err;
    }
  }
  throw invalidSignature(`Stripe-Signature did not verify${detail ? `: ${detail}` : ""}`);
}

/**
 * `POST /webhooks/stripe`. Outside `/v1/*`: Stripe authenticates with the signature, not an API
 * key. The handler verifies, enqueues one job whose id is the event id (so Stripe's duplicate
 * deliveries collapse into one job while it exists) and answers — nothing else, because Stripe
 * times out slow endpoints and retries them. An empty secret list (STRIPE_WEBHOOK_SECRET unset)
 * answers 503: Stripe keeps retrying for days, so no event is lost while the secret is configured.
 */
export function stripeWebhooks(secrets: readonly string[]) {
  return new Hono<{ Variables: QueueVariables }>().post(
    "/",
    bodyLimit({
      maxSize: MAX_STRIPE_BODY_BYTES,
      onError: (c) =>
        onError(
          new ApiError("payload_too_large", `webhook body exceeds ${MAX_STRIPE_BODY_BYTES} bytes`, { field: "body" }),
          c,
        ),
    }),
    async (c) => {
      if (secrets.length === 0) {
        throw new ApiError("webhooks_not_configured", "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)", {
          headers: { "Retry-After": "60" },
        });
      }
      const header = c.req.header("stripe-signature");
      if (!header) throw invalidSignature("missing Stripe-Signature header");
      const body = await c.req.text();
      const event = await verify(body, header, secrets);
      const data = parseWith(StripeWebhookJob, {
        ...(typeof event === "object" && event !== null ? pick(event) : {}),
        event,
      });
      const [added] = await c.var.queue.add([{ contract: stripeWebhookContract, data, opts: { jobId: data.id } }]);
      return c.json({ received: true, id: added?.id ?? data.id }, 200);
    },
  );
}

/** The envelope fields the job carries beside the full event. */
function pick(event: object): Record<string, unknown> {
  const { id, type, created, livemode } = event as Record<string, unknown>;
  return { id, type, created, livemode };
}
