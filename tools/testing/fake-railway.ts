// A stand-in for Railway's public GraphQL API (backboard) that records every call and answers the
// two operations the autoscaler sends (worker/autoscaler/railway.ts): reading the environment's
// config and committing a multiRegionConfig patch, which it applies to its own state. Faults are
// queued per call: "500", "429" (Retry-After), "hang" (never answers), "echo-token" (a GraphQL
// error that repeats the caller's token, to check it is scrubbed).
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface RailwayCall {
  operation: "read" | "scale" | "other";
  headers: Record<string, string | string[] | undefined>;
  variables: Record<string, unknown>;
}

export type RailwayFault = "500" | "429" | "hang" | "echo-token";

export interface FakeRailway {
  url: string;
  calls: RailwayCall[];
  /** Replicas the service has now, per region. */
  regions: Record<string, { numReplicas: number } | null>;
  /** The numReplicas of every committed scale, in order. */
  scales(): number[];
  fail(...faults: RailwayFault[]): void;
  close(): Promise<void>;
}

export async function startFakeRailway(options: { serviceId: string; environmentId: string; regions: Record<string, { numReplicas: number } | null>; retryAfterSeconds?: number }): Promise<FakeRailway> {
  const calls: RailwayCall[] = [];
  const faults: RailwayFault[] = [];
  const hanging = new Set<ServerResponse>();
  const fake: FakeRailway = {
    url: "",
    calls,
    regions: structuredClone(options.regions),
    scales: () =>
      calls.flatMap((c) => {
        if (c.operation !== "scale") return [];
        const patch = c.variables.patch as { services: Record<string, { deploy: { multiRegionConfig: Record<string, { numReplicas: number }> } }> };
        return Object.values(patch.services[options.serviceId]!.deploy.multiRegionConfig).map((r) => r.numReplicas);
      }),
    fail: (...f) => void faults.push(...f),
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString() || "{}") as { query?: string; variables?: Record<string, unknown> };
      const query = body.query ?? "";
      const operation = query.includes("environmentPatchCommit") ? "scale" : query.includes("environment(") ? "read" : "other";
      calls.push({ operation, headers: req.headers, variables: body.variables ?? {} });
      const json = (status: number, value: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { "content-type": "application/json", ...headers });
        res.end(JSON.stringify(value));
      };
      const fault = faults.shift();
      if (fault === "hang") return void hanging.add(res);
      if (fault === "500") return json(500, { errors: [{ message: "Internal server error" }] });
      if (fault === "429") return json(429, { errors: [{ message: "rate limited" }] }, { "retry-after": String(options.retryAfterSeconds ?? 30) });
      if (fault === "echo-token") {
        const token = String(req.headers["project-access-token"] ?? req.headers.authorization ?? "");
        return json(200, { errors: [{ message: `Not Authorized for ${token}` }] });
      }
      if (operation === "read") {
        if (body.variables?.environmentId !== options.environmentId) return json(200, { errors: [{ message: "Environment not found" }] });
        return json(200, { data: { environment: { id: options.environmentId, config: { services: { [options.serviceId]: { deploy: { multiRegionConfig: fake.regions } } } } } } });
      }
      if (operation === "scale") {
        const patch = body.variables?.patch as { services: Record<string, { deploy: { multiRegionConfig: Record<string, { numReplicas: number }> } }> };
        Object.assign(fake.regions, patch.services[options.serviceId]?.deploy.multiRegionConfig ?? {});
        return json(200, { data: { environmentPatchCommit: "commit-id" } });
      }
      json(400, { errors: [{ message: "unknown operation" }] });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql/v2`;
  return fake;
}
