// A local stand-in for the Stripe API, for driving the real Stripe SDK via STRIPE_API_BASE_URL:
// records every request and serves `GET /v1/subscriptions/:id` from the subscriptions it was
// given. Unknown ids answer 404 resource_missing, as Stripe does; `answer` forces a status (or a
// reset connection) per id.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface StripeRequest {
  method: string;
  /** Path and query, e.g. /v1/subscriptions/sub_123. */
  path: string;
  authorization: string | undefined;
}

export type ForcedAnswer = 401 | 404 | 429 | 500 | "reset";

export interface FakeStripe {
  url: string;
  requests: StripeRequest[];
  /** Serve this object for its id (replacing any earlier one). */
  putSubscription(subscription: { id: string } & Record<string, unknown>): void;
  /**
   * Answer every request for `id` with this error (Stripe's body for the status; "reset" destroys
   * the connection without an answer) until called again with undefined.
   */
  answer(id: string, status: ForcedAnswer | undefined): void;
  /** Hold every answer from now on until `release`, to line racing requests up. */
  hold(): void;
  /** Resolves once `count` requests are being held. */
  held(count: number): Promise<void>;
  /** Sends every held answer at once and stops holding. */
  release(): void;
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
const rateLimited = {
  error: { type: "invalid_request_error", code: "rate_limit", message: "Too many requests hit the API too quickly." },
};
const unauthorized = {
  error: { type: "invalid_request_error", message: "Invalid API Key provided: sk_test_****" },
};

export async function startFakeStripe(): Promise<FakeStripe> {
  const requests: StripeRequest[] = [];
  const subscriptions = new Map<string, Record<string, unknown>>();
  const forced = new Map<string, ForcedAnswer>();
  let holding = false;
  let heldAnswers: Array<() => void> = [];
  let onHeld: (() => void) | undefined;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (holding) {
        heldAnswers.push(() => answerRequest(req, res));
        onHeld?.();
        return;
      }
      answerRequest(req, res);
    });
  });
  const answerRequest = (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? "";
    requests.push({ method: req.method ?? "", path, authorization: req.headers.authorization });
    const match = /^\/v1\/subscriptions\/([^/?]+)/.exec(path);
    const id = match?.[1] ? decodeURIComponent(match[1]) : undefined;
    if (req.method !== "GET" || id === undefined) {
      return send(res, 404, { error: { type: "invalid_request_error", message: `Unrecognized request URL (${req.method}: ${path}).` } });
    }
    const status = forced.get(id);
    if (status === "reset") return void req.socket.destroy();
    if (status === 500) return send(res, 500, serverError);
    if (status === 429) return send(res, 429, rateLimited);
    if (status === 401) return send(res, 401, unauthorized);
    const subscription = subscriptions.get(id);
    if (status === 404 || !subscription) return send(res, 404, notFound(id));
    send(res, 200, subscription);
  };
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    putSubscription: (subscription) => void subscriptions.set(subscription.id, subscription),
    answer: (id, status) => void (status === undefined ? forced.delete(id) : forced.set(id, status)),
    hold: () => void (holding = true),
    held: (count) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (heldAnswers.length < count) return;
          onHeld = undefined;
          resolve();
        };
        onHeld = check;
        check();
      }),
    release: () => {
      holding = false;
      const answers = heldAnswers;
      heldAnswers = [];
      for (const answer of answers) answer();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
