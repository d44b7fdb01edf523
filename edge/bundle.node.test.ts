/**
 * Guards DESIGN §2 decision 1: the edge bundles without the bullmq runtime, ioredis or any
 * `node:*` module, so it relies on no Node compat and stays small. workerd tests alone cannot show
 * this: wrangler.toml's compatibility date turns Node compat on by default. The size of the bundle
 * wrangler actually deploys is budgeted in tools/ci/edge-bundle.ts (checked by tools/ci/edge-deploy.test.ts).
 *
 * esbuild is the bundler wrangler itself uses; the conditions match what wrangler resolves for
 * Workers (the stripe package then resolves to its fetch + WebCrypto build).
 */
import { build, type BuildOptions } from "esbuild";
import { describe, expect, it } from "vitest";

async function bundle(input: Pick<BuildOptions, "stdin" | "entryPoints">) {
  const result = await build({
    ...input,
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
  return {
    imports: output?.imports.map((i) => i.path) ?? [],
    inputs: Object.keys(result.metafile.inputs),
    bytes: result.outputFiles[0]?.contents.byteLength ?? 0,
  };
}

const NODE_ONLY = /stripe\.esm\.node|ioredis|bullmq\/dist\/esm\/(?!scripts\/)/;

const queueEntry = `
  import { createProducer } from "./edge/queue/producer.ts";
  import { createSocketTransport } from "./edge/queue/socket-transport.ts";
  import { createUpstashTransport } from "./edge/queue/upstash-transport.ts";
  export default {
    fetch: (request) => createProducer(request.url.startsWith("https:")
      ? createUpstashTransport("https://example.upstash.io", "token")
      : createSocketTransport("redis://127.0.0.1:6379")).ping(),
  };
`;

describe("edge bundle", () => {
  it("builds the queue code with both transports from nothing but cloudflare:sockets, small", async () => {
    const out = await bundle({ stdin: { contents: queueEntry, resolveDir: process.cwd(), loader: "ts" } });
    expect(out.imports).toEqual(["cloudflare:sockets"]);
    expect(out.inputs.filter((path) => NODE_ONLY.test(path))).toEqual([]);
    // ≈117 KB today, almost all of it BullMQ's Lua source; full bullmq + ioredis is ≈2 MB.
    expect(out.bytes).toBeLessThan(200_000);
  });

  it("builds the whole Worker entry, Stripe verification included, without Node modules, under 1 MB", async () => {
    const out = await bundle({ entryPoints: ["edge/worker.ts"] });
    expect(out.imports.filter((path) => !path.startsWith("cloudflare:"))).toEqual([]);
    expect(out.inputs.filter((path) => NODE_ONLY.test(path))).toEqual([]);
    // The Stripe SDK's resources can't be tree-shaken (≈ +400 KB minified): accepted for using
    // Stripe's own verifier rather than a hand-rolled HMAC check.
    expect(out.inputs.some((path) => path.includes("stripe/esm/stripe.esm.worker"))).toBe(true);
    expect(out.bytes).toBeLessThan(1_000_000);
  });
});
