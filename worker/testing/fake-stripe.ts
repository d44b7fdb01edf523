// A local stand-in for the Stripe API, for driving the real Stripe SDK via STRIPE_API_BASE_URL:
// records every request and serves `GET /v1/subscriptions/:id` from the subscriptions it was
// given. Unknown ids answer 404 resource_missing, as Stripe does; `answer` forces a status per id.
import { randomBytes } from "node:crypto";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface StripeRequest {
  method: string;
  /** Path and query, e.g. /v1/subscriptions/sub_123. */
  path: string;
  authorization: string | undefined;
}

export interface FakeStripe {
  url: string;
  requests: StripeRequest[];
  /** Serve this object for its id (replacing any earlier one). */
  putSubscription(subscription: { id: string } & Record<string, unknown>): void;
  /** Answer every request for `id` with this error status until called again with undefined. */
  answer(id: string, status: 404 | 500 | undefined): void;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, {
    "content-type": "application/json",
    "request-id": `req_${randomBytes(7).toString("hex")}`,
    "stripe-version": "2026-10-28.endive",
  });
  res.end(JSON.stringify(body));
}

/** Stripe's error body: `{ error: { type, code?, message, … } }`. */
function notFound(id: string) {
  return {
    error: {
      type: "invalid_request_error",
      code: "resource_missing",
      param: "id",
      message: `No such subscription: '${id}'`,
      doc_url: "https://stripe.com/docs/error-codes/resource-missing",
    },
  };
}

const serverError = { error: { type: "api_error", message: "An unknown error occurred" } };

export async function startFakeStripe(): Promise<FakeStripe> {
  const requests: StripeRequest[] = [];
  const subscriptions = new Map<string, Record<string, unknown>>();
  const forced = new Map<string, 404 | 500>();
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const path = req.url ?? "";
      requests.push({ method: req.method ?? "", path, authorization: req.headers.authorization });
      const match = /^\/v1\/subscriptions\/([^/?]+)/.exec(path);
      const id = match?.[1] ? decodeURIComponent(match[1]) : undefined;
      if (req.method !== "GET" || id === undefined) {
        return send(res, 404, { error: { type: "invalid_request_error", message: `Unrecognized request URL (${req.method}: ${path}).` } });
      }
      const status = forced.get(id);
      if (status === 500) return send(res, 500, serverError);
      const subscription = subscriptions.get(id);
      if (status === 404 || !subscription) return send(res, 404, notFound(id));
      send(res, 200, subscription);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    putSubscription: (subscription) => void subscriptions.set(subscription.id, subscription),
    answer: (id, status) => void (status === undefined ? forced.delete(id) : forced.set(id, status)),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
