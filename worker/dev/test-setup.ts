// vitest globalSetup: one Redis (plain TCP and TLS) and one Postgres for the whole run, migrated.
// Tests isolate themselves with unique queue names / key prefixes, never by sharing state.
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { startUpstashStandIn } from "../../edge/queue/upstash-stand-in.test-helper.ts";
import { ROOT, secret, startPostgres, startRedis, testTls } from "./local-services.ts";

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
    redisTlsUrl: string;
    databaseUrl: string;
    caCertPath: string;
    /** The Upstash REST stand-in over the same Redis (edge/queue/upstash-stand-in.test-helper.ts). */
    upstashUrl: string;
    upstashToken: string;
  }
}

export default async function setup(project: TestProject) {
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
    const upstash = await startUpstashStandIn({ redisUrl: process.env.REDIS_URL ?? redis.url, token: secret() });
    stops.push(upstash.stop);
    let databaseUrl = process.env.DATABASE_URL;
    if (!databaseUrl) {
      const pg = await startPostgres({ dataDir: join(dataDir, "postgres") });
      stops.push(pg.stop);
      databaseUrl = pg.url;
    }
    const { migrate } = await import("../migrate.ts");
    await migrate(databaseUrl);
    project.provide("redisUrl", process.env.REDIS_URL ?? redis.url);
    project.provide("redisTlsUrl", redis.tlsUrl ?? "");
    project.provide("databaseUrl", databaseUrl);
    project.provide("caCertPath", testTls().caCert);
    project.provide("upstashUrl", upstash.url);
    project.provide("upstashToken", upstash.token);
  } catch (err) {
    // A half-started setup must not leave servers running behind a failed run.
    await teardown().catch(() => {});
    throw err;
  }
  return teardown;
}
