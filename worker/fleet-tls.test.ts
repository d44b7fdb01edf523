// TLS to Redis through the real entry point (`node worker/main.ts`, environment only — the test
// run's NODE_EXTRA_CA_CERTS is not passed on): the certificate is verified against REDIS_CA_CERT
// and the URL's host name, and a worker that can't verify Redis refuses to start.
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { auditContract } from "../shared/jobs/audit.ts";
import { testTls } from "../tools/dev/local-services.ts";
import { redisOptions } from "./fleet.ts";
import { deleteKeys, settled, uniqueId } from "../tools/testing/fixtures.ts";
import { runMain, type MainProcess } from "../tools/testing/main-process.ts";

let otherCaDir: string;
let forwarder: Server;
const sockets = new Set<Socket>();
/** The TLS Redis reached as 127.0.0.2: same server and certificate, a name the certificate lacks. */
let wrongHostUrl: string;

beforeAll(async () => {
  otherCaDir = await mkdtemp(join(tmpdir(), "edgefleet-other-ca-"));
  const tlsUrl = new URL(inject("redisTlsUrl"));
  // Plain TCP relay: the TLS handshake is the Redis server's own, only the address differs.
  forwarder = createServer((client) => {
    const upstream = connect(Number(tlsUrl.port), "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => forwarder.listen(0, "127.0.0.2", resolve));
  const address = forwarder.address();
  if (typeof address !== "object" || !address) throw new Error("no address");
  const wrong = new URL(tlsUrl);
  wrong.hostname = "127.0.0.2";
  wrong.port = String(address.port);
  wrongHostUrl = wrong.toString();
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => forwarder?.close(() => resolve()));
  await rm(otherCaDir, { recursive: true, force: true });
});

function worker(redisUrl: string, extra: Record<string, string> = {}): { main: MainProcess; prefix: string } {
  const prefix = uniqueId("tls");
  const main = runMain({
    REDIS_URL: redisUrl,
    DATABASE_URL: inject("databaseUrl"),
    QUEUE_PREFIX: prefix,
    WORKER_QUEUES: "audit",
    PORT: "0",
    ...extra,
  });
  return { main, prefix };
}

/** The process gives up at start-up (exit 1), its log naming the certificate problem. */
async function expectRefused(main: MainProcess, reason: RegExp): Promise<void> {
  try {
    expect(await main.exitedWithin(60_000)).toBe(1);
    expect(main.lines.some((l) => l.msg === "worker failed to start")).toBe(true);
    // ioredis reports the TLS error on the connection; startFleet's own rejection only says the
    // connection closed.
    const errors = main.lines.filter((l) => l.msg === "redis connection error").map((l) => String(l.error));
    expect(errors.some((e) => reason.test(e)), JSON.stringify(main.lines)).toBe(true);
    expect(main.lines.some((l) => l.msg === "worker ready")).toBe(false);
  } finally {
    main.child.kill("SIGKILL");
  }
}

describe("node worker/main.ts over rediss://", () => {
  it("drains jobs when REDIS_CA_CERT names the CA that signed Redis' certificate", async () => {
    const { main, prefix } = worker(inject("redisTlsUrl"), { REDIS_CA_CERT: inject("caCertPath") });
    const queue = new Queue(auditContract.queue, { connection: redisOptions(inject("redisUrl")), prefix });
    try {
      await main.waitForLine("worker ready", 60_000);
      const id = uniqueId("evt");
      await queue.add(auditContract.name, { id, name: "x", type: "domain", occurredAt: "2026-11-23T10:00:00Z", payload: {} }, { jobId: id });
      expect(await (await settled(queue, id, 30_000)).getState()).toBe("completed");
      main.child.kill("SIGTERM");
      expect(await main.exitedWithin(60_000)).toBe(0);
    } finally {
      main.child.kill("SIGKILL");
      await queue.close();
      await deleteKeys(inject("redisUrl"), prefix);
    }
  }, 120_000);

  it("refuses a certificate from a CA it was not given (no REDIS_CA_CERT)", async () => {
    await expectRefused(worker(inject("redisTlsUrl")).main, /self[- ]signed certificate in certificate chain|SELF_SIGNED_CERT_IN_CHAIN|unable to (get|verify)/i);
  }, 90_000);

  it("refuses a certificate signed by another CA than REDIS_CA_CERT", async () => {
    const other = testTls(otherCaDir);
    await expectRefused(worker(inject("redisTlsUrl"), { REDIS_CA_CERT: other.caCert }).main, /self[- ]signed certificate in certificate chain|SELF_SIGNED_CERT_IN_CHAIN|unable to (get|verify)/i);
  }, 90_000);

  it("refuses a trusted certificate that does not name the host it connected to", async () => {
    await expectRefused(worker(wrongHostUrl, { REDIS_CA_CERT: inject("caCertPath") }).main, /IP: 127\.0\.0\.2 is not in the cert's list|ERR_TLS_CERT_ALTNAME_INVALID|altnames/i);
  }, 90_000);
});
