import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { webhookEvents } from "../shared/db/webhook-events.ts";
import { createDb, pickDriver, type Database } from "./db.ts";
import { uniqueId } from "../tools/testing/fixtures.ts";
import { startWsTcpBridge, type WsTcpBridge } from "../tools/testing/ws-tcp-bridge.ts";

describe("pickDriver", () => {
  it("uses the Neon driver for neon.tech hosts and pg for anything else", () => {
    expect(pickDriver("postgres://u:p@ep-cool-1234.eu-central-1.aws.neon.tech/db")).toBe("neon");
    expect(pickDriver("postgres://u:p@127.0.0.1:5432/db")).toBe("pg");
    expect(pickDriver("postgres://u:p@db.example.com/db", "neon")).toBe("neon");
  });
});

async function roundTrip(database: Database) {
  const id = `evt_${uniqueId("db").replace("-", "_")}`;
  await database.db.insert(webhookEvents).values({ stripeEventId: id, type: "ping", payload: { n: 1 } });
  const [row] = await database.db.select().from(webhookEvents).where(eq(webhookEvents.stripeEventId, id));
  // `Db` is the driver-neutral PgDatabase, whose raw result type is unknown; both drivers return
  // node-postgres' result shape.
  const result = (await database.db.execute(sql`select 41 + 1 as answer`)) as { rows: Array<{ answer: number }> };
  return { row, answer: result.rows[0]?.answer };
}

describe("createDb", () => {
  let bridge: WsTcpBridge;
  beforeAll(async () => {
    bridge = await startWsTcpBridge();
  });
  afterAll(() => bridge.close());

  it("reads and writes through pg", async () => {
    const database = createDb(inject("databaseUrl"));
    try {
      expect(database.driver).toBe("pg");
      const { row, answer } = await roundTrip(database);
      expect(row).toMatchObject({ type: "ping", status: "PENDING", payload: { n: 1 } });
      expect(answer).toBe(42);
      await expect(database.ping()).resolves.toBeUndefined();
    } finally {
      await database.close();
    }
  });

  it("reads and writes through the Neon serverless driver over a WebSocket proxy", async () => {
    const before = bridge.connections;
    const database = createDb(inject("databaseUrl"), {
      driver: "neon",
      neon: {
        wsProxy: (host, port) => `127.0.0.1:${bridge.port}/v2?address=${host}:${port}`,
        useSecureWebSocket: false,
        // Pipelining the startup assumes cleartext password auth (Neon's); local Postgres uses SCRAM.
        pipelineConnect: false,
      },
    });
    try {
      expect(database.driver).toBe("neon");
      const { row, answer } = await roundTrip(database);
      expect(row).toMatchObject({ type: "ping", status: "PENDING", payload: { n: 1 } });
      expect(answer).toBe(42);
      expect(bridge.connections).toBeGreaterThan(before);
    } finally {
      await database.close();
    }
  });
});
