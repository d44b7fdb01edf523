import { join } from "node:path";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate as drizzleMigrate } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";
import { z } from "zod";

/**
 * Applies the generated migrations in drizzle/ under a Postgres advisory lock.
 *
 * Drizzle's migrator takes no lock: 4 racing deploys failed 6 times in 20 (DESIGN §4), e.g. two
 * sessions both creating `drizzle.__drizzle_migrations`. `pg_advisory_lock` is session-scoped, so
 * the lock, the migration and the unlock all run on one dedicated `pg.Client` — never a pool, which
 * could hand the unlock to a different session. Later callers wait on the lock, then find every
 * migration recorded and do nothing.
 *
 * Always over `pg` (TCP): migrations run as a deploy step on a direct, non-pooled URL, which Neon
 * serves over plain Postgres/TLS as well.
 */

/** Arbitrary constant shared by every edgefleet deploy ("edgefleet" in ASCII, as a bigint). */
const MIGRATION_LOCK_KEY = 0x656467656665n;

export const MIGRATIONS_FOLDER = join(import.meta.dirname, "../drizzle");

export interface MigrateOptions {
  migrationsFolder?: string;
}

export async function migrate(databaseUrl: string, options: MigrateOptions = {}): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query("select pg_advisory_lock($1)", [MIGRATION_LOCK_KEY.toString()]);
    try {
      await drizzleMigrate(drizzle({ client }), {
        migrationsFolder: options.migrationsFolder ?? MIGRATIONS_FOLDER,
      });
    } finally {
      await client.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY.toString()]);
    }
  } finally {
    // Ending the session also releases the lock if the unlock above never ran.
    await client.end();
  }
}

if (import.meta.main) {
  const env = z.object({ DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }) }).safeParse(process.env);
  if (!env.success) {
    console.error(`migrate: DATABASE_URL must be a postgres:// URL (${env.error.issues[0]?.message})`);
    process.exit(2);
  }
  const started = performance.now();
  try {
    await migrate(env.data.DATABASE_URL);
    console.log(JSON.stringify({ level: "info", msg: "migrations applied", ms: Math.round(performance.now() - started) }));
  } catch (err) {
    console.error(JSON.stringify({ level: "error", msg: "migration failed", error: String(err) }));
    process.exit(1);
  }
}
