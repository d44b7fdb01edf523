import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { resolve } from "node:path";
import { defineConfig } from "vitest/config";

// Two projects: "node" (worker fleet, conformance, end-to-end) and "edge" (inside workerd).
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
