// vitest globalSetup: one Redis (plain TCP and TLS) and one Postgres for the whole run, migrated.
// Tests isolate themselves with unique queue names / key prefixes, never by sharing state; a file
// that flushes, counts or inspects server-wide Redis state starts a Redis of its own
// (startRedisForFile under `testDataDir`).
//
// Tests never use the shell's REDIS_URL / DATABASE_URL: those configure the app, and tests flush
// scripts and create/drop databases. The servers here are private to the run. A developer who
// dedicates servers to tests may point them at those instead:
//   TEST_REDIS_URL      redis://… used instead of the private plain-TCP Redis (the TLS endpoints
//                       stay private: they need the throwaway test CA)
//   TEST_DATABASE_URL   postgres://… used instead of the private Postgres (migrated; tests create
//                       and drop databases on that server)
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { startUpstashStandIn } from "../../edge/queue/upstash-stand-in.test-helper.ts";
import { startWakeRecorder } from "../testing/wake-recorder.ts";
import {
  ROOT, secret, startPostgres, startRedis, startTlsForwarder, testTls, testTlsRefused,
} from "./local-services.ts";

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
    redisTlsUrl: string;
    /** TLS in front of the test Redis with a certificate from a CA nobody trusts: must be refused. */
    redisUntrustedTlsUrl: string;
    /** TLS in front of the test Redis, trusted CA, certificate for another host name: must be refused. */
    redisWrongHostTlsUrl: string;
    databaseUrl: string;
    caCertPath: string;
    /** The Upstash REST stand-in over the same Redis (edge/queue/upstash-stand-in.test-helper.ts). */
    upstashUrl: string;
    upstashToken: string;
    /** The autoscaler wake stand-in (tools/testing/wake-recorder.ts) and a URL where nothing listens. */
    wakeRecorderUrl: string;
    wakeDownUrl: string;
    /** This run's data folder (.data/test/<pid>), removed at the end: per-file servers keep data here. */
    testDataDir: string;
  }
}

/**
 * Data of earlier runs that died before their teardown (killed, or a closed output pipe): a
 * `.data/test/<pid>` folder whose process is gone. A live process's folder is never touched.
 */
function removeDeadRunsData(root: string): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(root);
  } catch {
    return; // no .data/test yet
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    try {
      process.kill(Number(name), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH") rmSync(join(root, name), { recursive: true, force: true });
    }
  }
}

export default async function setup(project: TestProject) {
  removeDeadRunsData(join(ROOT, ".data/test"));
  const dataDir = join(ROOT, ".data/test", String(process.pid));
  const stops: Array<() => Promise<void>> = [];
  const teardown = async () => {
    for (const stop of stops.reverse()) await stop();
    // This run's Redis/Postgres data lives under .data/test/<pid>; nothing there outlives the run.
    // Only our own folder: a concurrent run's data sits beside it.
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const redis = await startRedis({ dataDir: join(dataDir, "redis"), tls: true });
    stops.push(redis.stop);
    const redisUrl = process.env.TEST_REDIS_URL || redis.url;
    const upstash = await startUpstashStandIn({ redisUrl, token: secret() });
    stops.push(upstash.stop);
    const wake = await startWakeRecorder();
    stops.push(wake.stop);
    const refused = testTlsRefused();
    const untrusted = await startTlsForwarder(refused.untrusted, redis.port);
    stops.push(untrusted.stop);
    const wrongHost = await startTlsForwarder(refused.wrongHost, redis.port);
    stops.push(wrongHost.stop);
    let databaseUrl = process.env.TEST_DATABASE_URL;
    if (!databaseUrl) {
      const pg = await startPostgres({ dataDir: join(dataDir, "postgres") });
      stops.push(pg.stop);
      databaseUrl = pg.url;
    }
    const { migrate } = await import("../../worker/migrate.ts");
    await migrate(databaseUrl);
    const auth = `:${encodeURIComponent(redis.password)}@127.0.0.1`;
    project.provide("redisUrl", redisUrl);
    project.provide("redisTlsUrl", redis.tlsUrl ?? "");
    project.provide("redisUntrustedTlsUrl", `rediss://${auth}:${untrusted.port}`);
    project.provide("redisWrongHostTlsUrl", `rediss://${auth}:${wrongHost.port}`);
    project.provide("databaseUrl", databaseUrl);
    project.provide("caCertPath", testTls().caCert);
    project.provide("upstashUrl", upstash.url);
    project.provide("upstashToken", upstash.token);
    project.provide("testDataDir", dataDir);
    project.provide("wakeRecorderUrl", wake.url);
    project.provide("wakeDownUrl", wake.downUrl);
  } catch (err) {
    // A half-started setup must not leave servers running behind a failed run.
    await teardown().catch(() => {});
    throw err;
  }
  return teardown;
}
