/**
 * Guards the whole edge entry (edge/worker.ts), Stripe webhook verification included: no `node:*`
 * import (wrangler.toml has no nodejs_compat) and a bounded size. The stripe package resolves to
 * its fetch + WebCrypto build under the `workerd` condition; its resources cannot be tree-shaken
 * away, which is most of the bundle's growth (≈ +400 KB minified) — accepted for using Stripe's
 * own verifier rather than a hand-rolled HMAC check. Same esbuild settings as bundle.node.test.ts.
 */
import { build } from "esbuild";
import { describe, expect, it } from "vitest";

describe("edge worker bundle", () => {
  it("imports nothing but cloudflare:* modules and stays under 1 MB minified", async () => {
    const result = await build({
      entryPoints: ["edge/worker.ts"],
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
    expect(imports.filter((path) => !path.startsWith("cloudflare:"))).toEqual([]);
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((path) => /stripe\.esm\.node|ioredis|bullmq\/dist\/esm\/(?!scripts\/)/.test(path))).toEqual([]);
    expect(inputs.some((path) => path.includes("stripe/esm/stripe.esm.worker"))).toBe(true);
    expect(result.outputFiles[0]?.contents.byteLength).toBeLessThan(1_000_000);
  });
});
