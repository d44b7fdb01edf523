import { Pool as NeonPool, neonConfig } from "@neondatabase/serverless";
import { sql } from "drizzle-orm";
import { drizzle as drizzleNeon } from "drizzle-orm/neon-serverless";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import pg from "pg";

/**
 * One database handle for the fleet, whichever driver carries it. Both Drizzle drivers extend
 * `PgDatabase`, so handlers are written once against that type.
 */
export type Db = PgDatabase<PgQueryResultHKT>;

export type DbDriver = "pg" | "neon";

export interface Database {
  readonly db: Db;
  readonly driver: DbDriver;
  /** `select 1`; rejects when the database is unreachable. Used by /readyz. */
  ping(): Promise<void>;
  /** Ends the pool; waits for checked-out clients to be released. */
  close(): Promise<void>;
}

/**
 * Neon's WebSocket settings are process-wide (static on `neonConfig`). Production leaves them at
 * the driver's defaults; tests point `wsProxy` at a local WebSocket↔TCP bridge.
 */
export type NeonOverrides = Partial<Pick<typeof neonConfig, "wsProxy" | "useSecureWebSocket" | "pipelineConnect">>;

export interface CreateDbOptions {
  /** Default: "neon" for *.neon.tech hosts, else "pg". */
  driver?: DbDriver | undefined;
  /** Pool size; the fleet's handlers batch writes, so a few connections go a long way. */
  max?: number;
  /** Bound on opening a connection, ms (default 5 000). */
  connectTimeoutMs?: number;
  /**
   * Bound on one query, ms (default 15 000): enforced by the server (`statement_timeout`) and, for a
   * server that stopped answering altogether, by the client (`query_timeout`), which then discards
   * the connection. Either way the caller gets an error the runner reads as an outage.
   */
  queryTimeoutMs?: number;
  neon?: NeonOverrides;
}

export function pickDriver(url: string, explicit?: DbDriver): DbDriver {
  if (explicit) return explicit;
  const host = new URL(url).hostname;
  return host === "neon.tech" || host.endsWith(".neon.tech") ? "neon" : "pg";
}

export function createDb(url: string, options: CreateDbOptions = {}): Database {
  const driver = pickDriver(url, options.driver);
  const max = options.max ?? 10;

  let db: Db;
  let pool: { end(): Promise<void> };
  if (driver === "neon") {
    // Node 22+ has a global WebSocket, so no `webSocketConstructor`. The driver coalesces writes
    // with setTimeout(0), which in Node costs ≥1 ms per round trip (measured, DESIGN §4); sending
    // each write at once is cheaper on a long-lived server process.
    neonConfig.coalesceWrites = false;
    if (options.neon) Object.assign(neonConfig, options.neon);
    const neonPool = new NeonPool({
      connectionString: url,
      max,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
      statement_timeout: options.queryTimeoutMs ?? 15_000,
      query_timeout: (options.queryTimeoutMs ?? 15_000) + 1_000,
      idleTimeoutMillis: 30_000,
    });
    // An idle client's socket error is emitted on the pool; unhandled it would crash the process.
    neonPool.on("error", (err: Error) => logPoolError(driver, err));
    db = drizzleNeon({ client: neonPool });
    pool = neonPool;
  } else {
    const queryTimeout = options.queryTimeoutMs ?? 15_000;
    const pgPool = new pg.Pool({
      connectionString: url,
      max,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
      // The server cancels first (a clean 57014); the client bound catches a silent peer.
      statement_timeout: queryTimeout,
      query_timeout: queryTimeout + 1_000,
      idleTimeoutMillis: 30_000,
      // Keep-alive probes find a connection a NAT or proxy dropped silently while it sat idle.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    pgPool.on("error", (err) => logPoolError(driver, err));
    db = drizzlePg({ client: pgPool });
    pool = pgPool;
  }
  return {
    db,
    driver,
    ping: async () => {
      await db.execute(sql`select 1`);
    },
    close: () => pool.end(),
  };
}

function logPoolError(driver: DbDriver, err: Error): void {
  console.error(JSON.stringify({ level: "warn", msg: "idle database client error", driver, error: err.message }));
}
