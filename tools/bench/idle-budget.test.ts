import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../dev/local-services.ts";
import { parseEnv } from "../../worker/env.ts";
import { idleBudgetPerMinute, measureIdle, perMinute, type IdleSettings } from "./idle-budget.ts";

// One drainDelay cycle of the shipped defaults (15 s) plus a second: every worker's BZPOPMIN times
// out exactly once inside it (twice would need 30 s), so the count is quantised, not noisy: 6
// commands → 22.5/min + 3 stalled checks/min = 25.5 against a budget of 30. BullMQ's defaults
// give 18 → 67.5 + 6 = 73.5.
const WINDOW_MS = 16_000;

/** Window rate plus the stalled checks, which fire less often than the window is long: 1 EVALSHA per queue per interval. */
function idleRatePerMinute(clientCommands: number, settings: IdleSettings): number {
  const queues = settings.queues?.length ?? 3;
  return perMinute(clientCommands, WINDOW_MS) + queues * (60_000 / settings.stalledIntervalMs);
}

describe("idle command budget", () => {
  it(
    "an idle worker with the shipped defaults stays within the documented budget, BullMQ's defaults do not",
    async () => {
      const shipped = parseEnv({ REDIS_URL: "redis://127.0.0.1:1", DATABASE_URL: "postgres://u:p@127.0.0.1:1/db", EMAIL_CAPTURE: "1" });
      const shippedSettings: IdleSettings = {
        drainDelaySeconds: shipped.drainDelaySeconds,
        stalledIntervalMs: shipped.stalledIntervalMs,
        lockDurationMs: shipped.lockDurationMs,
        queues: shipped.queues,
      };
      // BullMQ 6.7's Worker defaults: the control that shows this test can fail.
      const bullmqSettings: IdleSettings = { drainDelaySeconds: 5, stalledIntervalMs: 30_000, lockDurationMs: 30_000, queues: shipped.queues };
      const dir = (name: string) => join(ROOT, ".data/test", `idle-${name}-${process.pid}`);
      const [ours, theirs] = await Promise.all([
        measureIdle(shippedSettings, WINDOW_MS, dir("shipped")),
        measureIdle(bullmqSettings, WINDOW_MS, dir("bullmq")),
      ]);

      // Only the idle loop's commands: a new periodic command would show up here first.
      expect(Object.keys(ours.client).sort()).toEqual(["bzpopmin", "evalsha"]);
      const oursPerMinute = idleRatePerMinute(ours.clientCommands, shippedSettings);
      const theirsPerMinute = idleRatePerMinute(theirs.clientCommands, bullmqSettings);
      const budget = idleBudgetPerMinute(shippedSettings.queues?.length ?? 0);
      expect(budget).toBeGreaterThan(0);
      expect(oursPerMinute).toBeLessThanOrEqual(budget);
      expect(theirsPerMinute).toBeGreaterThan(budget);
    },
    40_000,
  );
});
