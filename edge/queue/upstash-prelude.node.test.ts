// Upstash runs its own Lua engine: the base64 prelude must not rely on Redis letting a script
// assign to the global ARGV table. (Conformance of the wrapped scripts is upstash-conformance.)
import { describe, expect, it } from "vitest";
import { EDGE_SCRIPTS } from "../../shared/jobs/bullmq-scripts.ts";
import { upstashScript } from "./upstash-args.ts";

describe("Upstash script prelude", () => {
  it("decodes into a local ARGV and never assigns to the global one", () => {
    const wrapped = EDGE_SCRIPTS.map((script) => ({ script, out: upstashScript(script) })).filter(({ script, out }) => out !== script);
    expect(wrapped.length).toBeGreaterThan(0);
    for (const { script, out } of wrapped) {
      expect(out.content.endsWith(script.content)).toBe(true);
      const prelude = out.content.slice(0, out.content.length - script.content.length);
      expect(prelude).toMatch(/^local ARGV = \(function\(argv\)$/m);
      // Any `ARGV[...] =` (not `==`) would write to a table named ARGV; only the copy is written.
      expect(prelude).not.toMatch(/\bARGV\s*\[[^\]]*\]\s*=(?!=)/);
      // BullMQ's own script must not write ARGV either, or the shadow would hide nothing.
      expect(script.content).not.toMatch(/\bARGV\s*\[[^\]]*\]\s*=(?!=)/);
    }
  });
});
