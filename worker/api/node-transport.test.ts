// The API's Node transport against the test Redis, directly and through a proxy that can break:
// one shared connection for every request, each pipeline gets its own replies, and every failure
// says truthfully whether the commands may have run.
import { afterEach, describe, expect, inject, it } from "vitest";
import { RespError } from "../../edge/queue/resp.ts";
import { TransportError } from "../../edge/queue/transport.ts";
import { startFaultProxy, type FaultProxy } from "../../tools/testing/fault-proxy.ts";
import { deleteKeys, uniqueId } from "../../tools/testing/fixtures.ts";
import { createNodeRedis, type NodeRedis } from "./node-transport.ts";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

function open(url: string, options: Parameters<typeof createNodeRedis>[1] = {}): NodeRedis {
  const redis = createNodeRedis(url, options);
  cleanups.push(() => redis.close());
  return redis;
}

async function proxy(): Promise<FaultProxy> {
  const u = new URL(inject("redisUrl"));
  const p = await startFaultProxy({ host: u.hostname, port: Number(u.port) });
  cleanups.push(() => p.close());
  return p;
}

function prefix(): string {
  const p = uniqueId("nt");
  cleanups.push(() => deleteKeys(inject("redisUrl"), p));
  return p;
}

/** The rejection of `promise`, which must be a TransportError. */
async function transportError(promise: Promise<unknown>): Promise<TransportError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TransportError);
  return err as TransportError;
}

describe("createNodeRedis", () => {
  it("serves many concurrent requests over one connection, each pipeline getting its own replies", async () => {
    const redis = open(inject("redisUrl"));
    const p = prefix();
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const session = redis.session();
        // Different lengths, so a reply handed to the wrong pipeline would show.
        const commands = Array.from({ length: (i % 4) + 1 }, (_, j) => ["INCRBY", `${p}:k${i}`, String(j + 1)]);
        return session.pipeline(commands).finally(() => session.close());
      }),
    );
    results.forEach((replies, i) => {
      const n = (i % 4) + 1;
      expect(replies).toEqual(Array.from({ length: n }, (_, j) => ((j + 1) * (j + 2)) / 2));
    });
    expect(redis.connectionsOpened).toBe(1);
    // A session's close() leaves the shared connection to the next request.
    await redis.ping();
    expect(redis.connectionsOpened).toBe(1);
  });

  it("keeps error replies in place among the pipeline's other replies", async () => {
    const redis = open(inject("redisUrl"));
    const p = prefix();
    const [set, bad, get] = await redis.pipeline([["SET", `${p}:a`, "1"], ["INCR", `${p}:a`, "extra"], ["GET", `${p}:a`]]);
    expect(set).toBe("OK");
    expect(bad).toBeInstanceOf(RespError);
    expect(get).toBe("1");
  });

  it("refuses a closed session without sending anything", async () => {
    const redis = open(inject("redisUrl"));
    const session = redis.session();
    await session.close();
    const err = await transportError(session.pipeline([["PING"]]));
    expect(err.maybeEnqueued).toBe(false);
    expect(redis.connectionsOpened).toBe(0);
  });

  it("a refused connection fails at once with maybeEnqueued false", async () => {
    const redis = open("redis://:x@127.0.0.1:1", { connectTimeoutMs: 20_000 });
    const started = Date.now();
    const err = await transportError(redis.pipeline([["PING"]]));
    expect(err.maybeEnqueued).toBe(false);
    expect(err.message).toContain("Redis unreachable at 127.0.0.1:1");
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("a wrong password fails with maybeEnqueued false, and the commands never ran", async () => {
    const url = new URL(inject("redisUrl"));
    url.password = "wrong-password";
    const redis = open(url.toString());
    const p = prefix();
    const err = await transportError(redis.pipeline([["SET", `${p}:never`, "1"]]));
    expect(err.maybeEnqueued).toBe(false);
    expect(err.message).toMatch(/Redis rejected AUTH: WRONGPASS/);
    expect(err.message).not.toContain("wrong-password");
    const check = open(inject("redisUrl"));
    expect(await check.pipeline([["EXISTS", `${p}:never`]])).toEqual([0]);
  });

  it("a server that accepts but never answers the handshake: maybeEnqueued false after the bound", async () => {
    const p = await proxy();
    p.set("hang");
    const redis = open(p.rewrite(inject("redisUrl")), { commandTimeoutMs: 300 });
    const err = await transportError(redis.pipeline([["PING"]]));
    expect(err.maybeEnqueued).toBe(false);
  });

  it("a pipeline whose replies never come fails every written pipeline as maybe enqueued, then reconnects", async () => {
    const p = await proxy();
    const redis = open(p.rewrite(inject("redisUrl")), { commandTimeoutMs: 500 });
    await redis.ping();
    p.set("hang");
    const errors = await Promise.all([
      transportError(redis.pipeline([["PING"]])),
      transportError(redis.session().pipeline([["PING"], ["PING"]])),
    ]);
    expect(errors.map((e) => e.maybeEnqueued)).toEqual([true, true]);
    expect(errors[0]?.message).toMatch(/no reply from .* within 500 ms/);
    p.set("pass");
    expect(await redis.pipeline([["ECHO", "again"]])).toEqual(["again"]);
    expect(redis.connectionsOpened).toBe(2);
  });

  it("a connection Redis dropped while idle is replaced before the next pipeline is written", async () => {
    const p = await proxy();
    const redis = open(p.rewrite(inject("redisUrl")));
    await redis.ping();
    p.set("refuse");
    p.set("pass");
    // The reset reaches the client as a close event; wait for it, not for a fixed time.
    const deadline = Date.now() + 30_000;
    let answered = false;
    while (!answered && Date.now() < deadline) {
      const replies = await redis.pipeline([["ECHO", "after-reset"]]).catch((e: unknown) => e);
      if (Array.isArray(replies)) {
        expect(replies).toEqual(["after-reset"]);
        answered = true;
        continue;
      }
      // Written into the dying socket before its close was seen: reported as maybe run, never as lost.
      expect((replies as TransportError).maybeEnqueued).toBe(true);
    }
    expect(answered).toBe(true);
    expect(redis.connectionsOpened).toBe(2);
  });

  it("close() lets pipelines already written get their replies", async () => {
    const redis = createNodeRedis(inject("redisUrl"));
    const p = prefix();
    await redis.ping();
    const pending = redis.pipeline([["SET", `${p}:late`, "v"], ["GET", `${p}:late`]]);
    const closing = redis.close();
    expect(await pending).toEqual(["OK", "v"]);
    await closing;
    const err = await transportError(redis.pipeline([["PING"]]));
    expect(err.maybeEnqueued).toBe(false);
  });
});

describe("createNodeRedis over TLS", () => {
  it("verifies the server against the CA file and answers", async () => {
    const redis = open(inject("redisTlsUrl"), { caCertPath: inject("caCertPath") });
    await redis.ping();
    expect(await redis.pipeline([["ECHO", "tls"]])).toEqual(["tls"]);
  });

  it("refuses a certificate from an untrusted CA or for another host name, before sending anything", async () => {
    for (const url of [inject("redisUntrustedTlsUrl"), inject("redisWrongHostTlsUrl")]) {
      const redis = open(url, { caCertPath: inject("caCertPath") });
      const err = await transportError(redis.pipeline([["PING"]]));
      expect(err.maybeEnqueued, url).toBe(false);
      expect(err.message, url).toContain("Redis unreachable");
    }
  });
});
