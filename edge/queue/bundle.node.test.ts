/**
 * Guards DESIGN §2 decision 1: the edge's queue code bundles without the bullmq runtime, ioredis
 * or any `node:*` module, so it needs no Node compat and stays small. workerd tests alone cannot
 * show this, since recent compatibility dates turn Node compat on by default.
 *
 * esbuild is the bundler wrangler itself uses (present through wrangler/@cloudflare/vitest-plugin);
 * the conditions match what wrangler resolves for Workers.
 */
import { build } from "esbuild";
import { describe, expect, it } from "vitest";

const entry = `
  import { createProducer } from "./edge/queue/producer.ts";
  import { createSocketTransport } from "./edge/queue/socket-transport.ts";
  import { createUpstashTransport } from "./edge/queue/upstash-transport.ts";
  export default {
    fetch: (request) => createProducer(request.url.startsWith("https:")
      ? createUpstashTransport("https://example.upstash.io", "token")
      : createSocketTransport("redis://127.0.0.1:6379")).ping(),
  };
`;

describe("edge queue bundle", () => {
  it("imports nothing but cloudflare:sockets and stays small, with both transports", async () => {
    const result = await build({
      stdin: { contents: entry, resolveDir: process.cwd(), loader: "ts" },
      bundle: true,
      write: false,
      format: "esm",
      platform: "neutral",
      mainFields: ["module", "main"],
      conditions: ["workerd", "worker", "browser"],
      external: ["cloudflare:*"],
      minify: true,
      metafile: true,
    });
    const output = Object.values(result.metafile.outputs)[0];
    const imports = output?.imports.map((i) => i.path) ?? [];
    expect(imports).toEqual(["cloudflare:sockets"]);
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((path) => /ioredis|bullmq\/dist\/esm\/(?!scripts\/)/.test(path))).toEqual([]);
    // ≈117 KB today, almost all of it BullMQ's Lua source; full bullmq + ioredis is ≈2 MB.
    expect(result.outputFiles[0]?.contents.byteLength).toBeLessThan(200_000);
  });
});
