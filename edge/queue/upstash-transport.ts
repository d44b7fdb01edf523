/**
 * Redis over Upstash's REST API (`UPSTASH_REDIS_REST_URL` + token), for deployments that prefer
 * HTTPS to a raw TLS socket. Every pipeline is one `POST /pipeline` request: a JSON array of
 * commands in, a JSON array of `{result}` / `{error}` out, in order.
 *
 * Binary script arguments travel base64-encoded and are decoded by a Lua prelude (upstash-args.ts).
 * Replies are requested with `Upstash-Encoding: base64`, so non-UTF-8 values cannot corrupt the
 * JSON; they are then decoded as UTF-8, exactly like the RESP decoder does for the socket path.
 *
 * Lifetime: one transport per Worker request; fetch's connection pool belongs to the runtime
 * (Cloudflare keeps connections to Upstash warm across requests and isolates).
 *
 * Read-your-writes: Upstash may serve reads from replicas. Its documented mechanism for REST
 * (https://upstash.com/docs/redis/howto/readyourwrites) is the `upstash-sync-token` header: save
 * it from each response and send it with the next request, and the replica catches up to it first.
 * The transport does that for every request it makes; it cannot do it across Worker requests (a
 * POST, then a separate GET), which is why the producer reads jobs through scripts (producer.ts).
 */
import { fromBase64, toJsonCommand, upstashScript } from "./upstash-args.ts";
import { RespError, type RedisCommand, type Reply } from "./resp.ts";
import { TransportError, type RedisTransport } from "./transport.ts";

export interface UpstashTransportOptions {
  /** Max ms for a whole request, from sending to the last byte of the answer; default 5000. */
  timeoutMs?: number;
  /** Replaceable for tests; defaults to the global `fetch`. */
  fetch?: typeof fetch;
}

/** What Upstash answers per pipelined command; errors are plain text, never base64. */
type UpstashItem = { result: unknown } | { error: string };

const utf8 = new TextDecoder();

export function createUpstashTransport(restUrl: string, token: string, options: UpstashTransportOptions = {}): RedisTransport {
  const url = new URL(restUrl);
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error(`Upstash REST URL must start with https://, got ${url.protocol}//`);
  }
  const endpoint = new URL("pipeline", url.href.endsWith("/") ? url : `${url.href}/`).href;
  // Only the host ever appears in messages: the token is a header and never logged.
  const host = url.host;
  const timeoutMs = options.timeoutMs ?? 5000;
  const doFetch = options.fetch ?? fetch;
  let closed = false;
  /** The latest `upstash-sync-token` Upstash returned to this transport, sent with each next request. */
  let syncToken: string | undefined;

  async function pipeline(commands: readonly RedisCommand[]): Promise<Reply[]> {
    if (closed) throw new TransportError("transport already closed", false);
    if (commands.length === 0) return [];
    // Encoding errors are programming errors and surface before anything is sent.
    const body = JSON.stringify(commands.map(toJsonCommand));
    let response: Response;
    let text: string;
    try {
      response = await doFetch(endpoint, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          "upstash-encoding": "base64",
          ...(syncToken ? { "upstash-sync-token": syncToken } : {}),
        },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await response.text();
      syncToken = response.headers.get("upstash-sync-token") ?? syncToken;
    } catch (err) {
      // fetch cannot tell "never connected" from "sent, answer lost": once it was called the
      // commands may have run, so the outcome is unknown (retry with the same jobId).
      const reason = isTimeout(err) ? `no answer within ${timeoutMs} ms` : message(err);
      throw new TransportError(`Upstash REST at ${host} failed: ${reason}`, true, { cause: err });
    }
    checkStatus(response.status, text, host);
    return parseReplies(text, commands.length, host);
  }

  return {
    pipeline,
    async close() {
      closed = true;
    },
    scriptFor: upstashScript,
  };
}

/**
 * 401/403 is a wrong or read-only token: a misconfiguration, not an outage. It still surfaces as a
 * TransportError (the API answers 503 like any unusable Redis, and nothing ran, so
 * `maybeEnqueued` is false), with a message naming the setting to fix. Other 4xx (request too
 * large, rate or daily limit) are refused before execution. 5xx may come after execution.
 */
function checkStatus(status: number, text: string, host: string): void {
  if (status === 200) return;
  if (status === 401 || status === 403) {
    throw new TransportError(
      `Upstash REST at ${host} rejected the token (HTTP ${status}): check UPSTASH_REDIS_REST_TOKEN (a read-only token cannot enqueue)`,
      false,
    );
  }
  const detail = errorText(text);
  throw new TransportError(`Upstash REST at ${host} answered HTTP ${status}${detail ? `: ${detail}` : ""}`, status >= 500);
}

function parseReplies(text: string, count: number, host: string): Reply[] {
  let items: unknown;
  try {
    items = JSON.parse(text);
  } catch (err) {
    throw new TransportError(`Upstash REST at ${host} answered with invalid JSON`, true, { cause: err });
  }
  if (!Array.isArray(items) || items.length !== count || !items.every(isItem)) {
    throw new TransportError(`Upstash REST at ${host} answered ${describe(items)} to ${count} commands`, true);
  }
  try {
    return items.map((item) => ("error" in item ? new RespError(item.error) : toReply(item.result)));
  } catch (err) {
    throw new TransportError(`Upstash REST at ${host} answered an undecodable result: ${message(err)}`, true, { cause: err });
  }
}

/**
 * Base64-encoded results back to RESP-like replies. As in @upstash/redis, a literal "OK" is the
 * one string Upstash leaves unencoded ("OK" is not valid padded base64, so it is unambiguous).
 */
function toReply(value: unknown): Reply {
  if (value === null || value === undefined) return null;
  if (typeof value === "number") return value;
  if (typeof value === "string") return value === "OK" ? "OK" : utf8.decode(fromBase64(value));
  if (Array.isArray(value)) return value.map(toReply);
  throw new Error(`unexpected result type ${typeof value}`);
}

function isItem(value: unknown): value is UpstashItem {
  if (typeof value !== "object" || value === null) return false;
  return "result" in value || ("error" in value && typeof value.error === "string");
}

function errorText(text: string): string {
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null && "error" in parsed) return String(parsed.error).slice(0, 200);
  } catch {
    // not JSON: a proxy's HTML error page, say; its status is all we report
  }
  return "";
}

function describe(value: unknown): string {
  return Array.isArray(value) ? `${value.length} items` : typeof value;
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
}

/** undici says only "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND …) is in `cause`. */
function message(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? err.cause.message : "";
  return cause && !err.message.includes(cause) ? `${err.message} (${cause})` : err.message;
}
