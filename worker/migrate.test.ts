import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { migrate } from "./migrate.ts";

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: withDatabase(inject("databaseUrl"), "postgres") });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe("migrate", () => {
  it("lets four concurrent runs on a fresh database all succeed and apply each migration once", async () => {
    const name = `mig_${Math.random().toString(36).slice(2, 10)}`;
    await admin((c) => c.query(`create database ${name}`));
    const url = withDatabase(inject("databaseUrl"), name);
    try {
      const results = await Promise.allSettled([migrate(url), migrate(url), migrate(url), migrate(url)]);
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "fulfilled"]);

      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const tables = await client.query<{ table_name: string }>(
          "select table_name from information_schema.tables where table_schema = 'public' order by 1",
        );
        expect(tables.rows.map((r) => r.table_name)).toEqual([
          "audit_logs",
          "email_messages",
          "reports",
          "stripe_customers",
          "stripe_invoices",
          "stripe_subscriptions",
          "webhook_events",
        ]);
        const applied = await client.query("select hash from drizzle.__drizzle_migrations");
        const journalEntries = (await import("../drizzle/meta/_journal.json", { with: { type: "json" } })).default.entries;
        expect(applied.rowCount).toBe(journalEntries.length);
      } finally {
        await client.end();
      }
    } finally {
      await admin((c) => c.query(`drop database if exists ${name} with (force)`));
    }
  });
});
