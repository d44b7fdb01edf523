import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { resolve } from "node:path";
import { defineConfig } from "vitest/config";

// Three projects: "node" (worker fleet, conformance, end-to-end), "edge" (inside workerd) and
// "edge-on-node" (the edge's route tests again, against the self-host Node server).
// Run through `npm test` (tools/dev/run-tests.ts), which trusts the test CA for workerd.
// One globalSetup starts Redis (TCP + TLS) and Postgres for both; see tools/dev/test-setup.ts.
export default defineConfig({
  test: {
    globalSetup: ["./tools/dev/test-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: "node",
          include: ["worker/**/*.test.ts", "shared/**/*.test.ts", "tools/**/*.test.ts", "edge/**/*.node.test.ts"],
        },
        // Node tests run the edge's production socket transport; only the runtime's socket
        // primitive is replaced (see the helper).
        resolve: {
          alias: { "cloudflare:sockets": resolve(import.meta.dirname, "edge/queue/node-sockets.test-helper.ts") },
        },
      },
      {
        extends: true,
        test: {
          name: "edge-on-node",
          // The route tests: they reach the app only through edge/test-helpers.ts `testApp`, which
          // serves it with worker/api/server.ts and the shared Node transport in this project.
          include: [
            "edge/app.test.ts", "edge/validation.test.ts", "edge/hostile-ids.test.ts", "edge/json-guard.test.ts",
            "edge/health.test.ts", "edge/routes/*.test.ts", "edge/rate-limit.test.ts", "edge/protection.test.ts",
          ],
          provide: { edgeRuntime: "node" },
        },
        resolve: {
          alias: { "cloudflare:sockets": resolve(import.meta.dirname, "edge/queue/node-sockets.test-helper.ts") },
        },
      },
      {
        extends: true,
        plugins: [
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                REDIS_URL: inject("redisUrl"),
                REDIS_TLS_URL: inject("redisTlsUrl"),
              },
            },
          })),
        ],
        test: {
          name: "edge",
          include: ["edge/**/*.test.ts"],
          exclude: ["edge/**/*.node.test.ts"],
        },
      },
    ],
  },
});
