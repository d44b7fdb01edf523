import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../dev/local-services.ts";
import { parseEnv } from "../../worker/env.ts";
import { idleBudgetPerMinute, measureIdle, type IdleSample, type IdleSettings } from "./idle-budget.ts";

// One drainDelay cycle of the shipped defaults (15 s) plus a second: every worker's BZPOPMIN times
// out exactly once inside it (BullMQ's 5 s: three times), and no stalled check falls in it (they
// run at start-up, then every 30 s or more). Each timeout is one cycle: BZPOPMIN, EVALSHA
// moveToActive and the commands that script runs inside Redis, so the window gives the exact cost
// of a cycle; a third worker with a 1 s stalled interval gives the exact cost of a stalled check.
// Counts are quantised, not noisy, and include every command Redis ran (commandstats).
const WINDOW_MS = 16_000;

/** Commands one idle process costs per minute: cycles every drainDelay, stalled checks every interval. */
function truePerMinute(s: IdleSample, settings: IdleSettings, perCheck: number): number {
  const queues = settings.queues?.length ?? 0;
  const cycles = s.client.bzpopmin ?? 0;
  const perCycle = s.allCommands / cycles;
  return queues * ((60 / settings.drainDelaySeconds) * perCycle + (60_000 / settings.stalledIntervalMs) * perCheck);
}

describe("idle command budget", () => {
  it(
    "an idle worker with the shipped defaults stays within the documented budget counting script-internal commands, BullMQ's defaults do not",
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
      const probeSettings: IdleSettings = { ...shippedSettings, stalledIntervalMs: 1_000 };
      const dir = (name: string) => join(ROOT, ".data/test", `idle-${name}-${process.pid}`);
      const [ours, theirs, probe] = await Promise.all([
        measureIdle(shippedSettings, WINDOW_MS, dir("shipped")),
        measureIdle(bullmqSettings, WINDOW_MS, dir("bullmq")),
        measureIdle(probeSettings, WINDOW_MS, dir("probe")),
      ]);

      // Only the idle loop's commands: a new periodic command would show up here first.
      expect(Object.keys(ours.client).sort()).toEqual(["bzpopmin", "evalsha"]);
      const queues = shippedSettings.queues?.length ?? 0;
      expect(ours.client.bzpopmin).toBe(queues);
      expect(theirs.client.bzpopmin).toBe(3 * queues);
      // Each extra EVALSHA in the probe is one stalled check; what came with it ran inside it.
      const checks = (probe.client.evalsha ?? 0) - (ours.client.evalsha ?? 0);
      expect(checks).toBeGreaterThan(0);
      const perCheck = (probe.allCommands - ours.allCommands) / checks;
      // The scripts' own commands are counted: a cycle and a check are more than the client's calls.
      expect(ours.allCommands).toBeGreaterThan(ours.clientCommands);
      expect(perCheck).toBeGreaterThan(1);

      const budget = idleBudgetPerMinute(queues);
      expect(budget).toBeGreaterThan(0);
      expect(truePerMinute(ours, shippedSettings, perCheck)).toBeLessThanOrEqual(budget);
      expect(truePerMinute(theirs, bullmqSettings, perCheck)).toBeGreaterThan(budget);
    },
    40_000,
  );
});
