import { and, eq, ne, sql } from "drizzle-orm";
import Stripe from "stripe";
import { webhookEvents } from "../../shared/db/webhook-events.ts";
import type { StripeWebhookJob, stripeWebhookContract } from "../../shared/jobs/stripe-webhook.ts";
import type { Db } from "../db.ts";
import { findOutage, publicMessage } from "../outage.ts";
import { DependencyDownError, PermanentError, type Handler, type Log } from "../runner.ts";
import { applyEvent, checkoutSubscription, Subscription, type Outcome } from "./apply.ts";

/** The Stripe API calls a handler may make; a fake in tests, the SDK in production. */
export interface StripeApi {
  /** Resolves undefined when Stripe has no such subscription (404 `resource_missing`). */
  retrieveSubscription(id: string): Promise<object | undefined>;
}

export interface StripeApiSettings {
  /** Absent: no API calls (worker only; the edge never has the key). */
  secretKey: string | undefined;
  /** scheme://host[:port]; absent: Stripe's own (https://api.stripe.com). */
  apiBaseUrl?: string | undefined;
}

/** The SDK behind `StripeApi`, when a secret key is configured. */
export function createStripeApi(settings: StripeApiSettings): StripeApi | undefined {
  if (!settings.secretKey) return undefined;
  const stripe = new Stripe(settings.secretKey, { maxNetworkRetries: 2, timeout: 10_000, ...sdkAddress(settings.apiBaseUrl) });
  return {
    retrieveSubscription: async (id) => {
      try {
        return await stripe.subscriptions.retrieve(id);
      } catch (err) {
        if (err instanceof Stripe.errors.StripeInvalidRequestError && err.code === "resource_missing") return undefined;
        throw stripeFailure(err);
      }
    },
  };
}

/**
 * What a failed Stripe API call means for the job, after the SDK's own retries (maxNetworkRetries
 * covers connection errors, 409, 429 and 5xx): Stripe unreachable, overloaded or rate-limiting is an
 * outage (the runner hands the job back without spending an attempt); any other 4xx (a revoked key,
 * a bad request) is permanent. Messages carry status, type and code only — Stripe's own message can
 * quote ids and parameters.
 */
export function stripeFailure(err: unknown): unknown {
  if (!(err instanceof Stripe.errors.StripeError)) return err;
  // rawType is Stripe's own (api_error, invalid_request_error, …); `type` is the SDK's class name.
  const what = [err.statusCode, err.rawType, err.code].filter((x) => x !== undefined && x !== null && x !== "").join(" ");
  if (err instanceof Stripe.errors.StripeConnectionError) return new DependencyDownError("stripe", `Stripe API unreachable (${err.rawType ?? err.type})`, { cause: err });
  if (err instanceof Stripe.errors.StripeRateLimitError || err.statusCode === 429) return new DependencyDownError("stripe", `Stripe API rate limit (${what})`, { cause: err });
  if (err.statusCode === undefined || err.statusCode >= 500) return new DependencyDownError("stripe", `Stripe API unavailable (${what})`, { cause: err });
  return new PermanentError(`Stripe API refused the request (${what})`, { cause: err });
}

/** The SDK takes host, port and protocol separately (its path is always /v1/); port defaults to 443 even for http. */
function sdkAddress(baseUrl: string | undefined): Pick<Stripe.StripeConfig, "host" | "port" | "protocol"> {
  if (!baseUrl) return {};
  const url = new URL(baseUrl);
  const protocol = url.protocol === "http:" ? "http" : "https";
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"), // IPv6 literals without brackets, as node:http wants them
    port: url.port || (protocol === "http" ? 80 : 443),
    protocol,
  };
}

/**
 * Stores each Stripe event once (primary key = Stripe's event id), counting runs, then applies it
 * and marks it PROCESSED in one transaction — so a crash anywhere before the commit leaves the
 * event PENDING and the retry applies it from scratch; a crash after it finds it PROCESSED and
 * does nothing. The last attempt (or a permanent error) leaves it FAILED with the error, for
 * `npm run stripe:replay`. Ordering and per-customer serialisation live in apply.ts.
 *
 * Nothing is lost when Postgres or Stripe is down: the event row is the first statement, so if
 * that fails nothing else has happened and the runner hands the job back without spending an
 * attempt; an outage later is PENDING (never FAILED) for the same reason; and if recording
 * PENDING/FAILED itself fails, that failure is what the job throws, so the runner sees the
 * outage rather than a job that "failed" while its row silently says PENDING. A row left PENDING
 * by a lost job (Redis lost it, removeOnFail dropped it) is listed by `stripe:replay --list`.
 */
export function createStripeWebhookHandler(db: Db, deps: { stripe?: StripeApi | undefined } = {}): Handler<typeof stripeWebhookContract> {
  return async (event, ctx) => {
    const [row] = await db
      .insert(webhookEvents)
      .values({ stripeEventId: event.id, type: event.type, payload: event.event, status: "PENDING", attempts: 1 })
      .onConflictDoUpdate({
        target: webhookEvents.stripeEventId,
        set: { attempts: sql`${webhookEvents.attempts} + 1`, updatedAt: sql`now()` },
        setWhere: ne(webhookEvents.status, "PROCESSED"),
      })
      .returning({ attempts: webhookEvents.attempts });
    if (!row) return { status: "already-processed" as const };

    try {
      // Network calls happen before the transaction, so no lock is held across them.
      const fetched = await fetchCheckoutSubscription(event, deps.stripe, ctx.log);
      const outcome = await db.transaction(async (tx): Promise<Outcome> => {
        const result = await applyEvent(tx, event, fetched);
        await tx
          .update(webhookEvents)
          .set({ status: "PROCESSED", processedAt: sql`now()`, updatedAt: sql`now()`, error: null, outcome: result })
          .where(eq(webhookEvents.stripeEventId, event.id));
        return result;
      });
      return { status: "processed" as const, outcome };
    } catch (err) {
      // An outage does not spend the attempt (the runner hands the job back), so it is never final.
      const final = err instanceof PermanentError || (ctx.isFinalAttempt && !findOutage(err));
      try {
        await db
          .update(webhookEvents)
          .set({ status: final ? "FAILED" : "PENDING", error: publicMessage(err), updatedAt: sql`now()` })
          .where(and(eq(webhookEvents.stripeEventId, event.id), ne(webhookEvents.status, "PROCESSED")));
      } catch (markErr) {
        ctx.log("warn", "could not record the Stripe event's failure", { eventId: event.id, error: publicMessage(err), recordError: publicMessage(markErr) });
        throw markErr;
      }
      throw err;
    }
  };
}

async function fetchCheckoutSubscription(event: StripeWebhookJob, stripe: StripeApi | undefined, log: Log): Promise<Subscription | undefined> {
  const created = checkoutSubscription(event);
  if (!created) return undefined;
  const subscriptionId = created.subscription;
  if (!stripe) {
    log("info", "STRIPE_SECRET_KEY not set; skipping subscription fetch", { eventId: event.id, subscriptionId });
    return undefined;
  }
  const object = await stripe.retrieveSubscription(subscriptionId);
  if (!object) {
    // The fetch only refreshes what the customer.subscription.* events deliver anyway, and the
    // checkout's own effect (the customer's identity) does not depend on it: applying the event
    // beats failing it, which no retry or replay could fix. Stripe keeps canceled subscriptions
    // retrievable, so this means test data deleted since the checkout or a key for another
    // account or mode — hence a warning rather than info.
    log("warn", "subscription not found at Stripe; applying checkout without it", { eventId: event.id, subscriptionId, livemode: event.livemode });
    return undefined;
  }
  const parsed = Subscription.safeParse(object);
  if (!parsed.success) throw new PermanentError(`subscription ${subscriptionId} from the Stripe API did not parse`);
  if (parsed.data.customer !== created.customer) {
    // A subscription never changes customer in Stripe, and the checkout's transaction holds only
    // its own customer's lock (apply.ts): don't write another customer's object under it.
    log("warn", "subscription from Stripe belongs to another customer; applying checkout without it", { eventId: event.id, subscriptionId });
    return undefined;
  }
  return parsed.data;
}
