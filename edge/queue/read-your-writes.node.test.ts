// Upstash may serve reads from replicas. Within one Worker request the Upstash transport carries
// Upstash's `upstash-sync-token` from each response to the next request (their documented
// read-your-writes mechanism for REST); across requests it cannot, so job reads go through scripts.
import { describe, expect, inject, it } from "vitest";
import { auditContract } from "../../shared/jobs/audit.ts";
import { EDGE_SCRIPTS, readJobScript } from "../../shared/jobs/bullmq-scripts.ts";
import { auditData } from "./conformance-cases.test-helper.ts";
import { createNodeTransport } from "./node-transport.test-helper.ts";
import { createProducer } from "./producer.ts";
import { uniquePrefix } from "./redis-state.test-helper.ts";
import { createUpstashTransport } from "./upstash-transport.ts";

describe("read-your-writes", () => {
  it("sends each response's upstash-sync-token with the transport's next request", async () => {
    const seen: Array<string | null> = [];
    let n = 0;
    // The local REST stand-in has no replicas and sends no token: this stamps one on its answers
    // the way Upstash does, and records what the transport sends back.
    const stamping: typeof fetch = async (input, init) => {
      seen.push(new Headers(init?.headers).get("upstash-sync-token"));
      const res = await fetch(input, init);
      n++;
      const headers = new Headers(res.headers);
      if (n !== 2) headers.set("upstash-sync-token", `tok-${n}`);
      return new Response(await res.text(), { status: res.status, headers });
    };
    const transport = createUpstashTransport(inject("upstashUrl"), inject("upstashToken"), { fetch: stamping });
    for (let i = 0; i < 4; i++) await transport.pipeline([["PING"]]);
    // No token yet; tok-1; the second answer had none, so tok-1 again; then tok-3.
    expect(seen).toEqual([null, "tok-1", "tok-1", "tok-3"]);
  });

  it("reads a job only through scripts (which run on the primary), and the fleet preloads the reader", async () => {
    const prefix = uniquePrefix("ry");
    const transport = createNodeTransport(inject("redisUrl"));
    try {
      const producer = createProducer(transport, { prefix });
      await producer.add({ contract: auditContract, data: auditData, opts: { jobId: "evt-ryw" } });
      const before = transport.sent.length;
      const status = await producer.getJob("audit", "evt-ryw");
      expect(status).toMatchObject({ id: "evt-ryw", state: "waiting", name: auditContract.name });
      // EVALSHA, or EVAL if this Redis had not loaded the scripts yet; never a plain read.
      const reads = transport.sent.slice(before).flat();
      expect(reads.map((command) => command[0])).toEqual(expect.arrayContaining(["EVALSHA"]));
      expect(reads.every((command) => command[0] === "EVALSHA" || command[0] === "EVAL")).toBe(true);
      expect(reads[0]?.[1]).toBe(await readJobScript.sha1());
      expect(EDGE_SCRIPTS).toContain(readJobScript);
      await transport.pipeline([["DEL", `${prefix}:audit:evt-ryw`, `${prefix}:audit:wait`, `${prefix}:audit:events`, `${prefix}:audit:meta`, `${prefix}:audit:id`, `${prefix}:audit:marker`]]);
    } finally {
      await transport.close();
    }
  });
});
