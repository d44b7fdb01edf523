import type { Log } from "../runner.ts";
import { createRateTracker, type Snapshot } from "./observe.ts";
import { decide, type Decision, type PolicySettings, type PolicyState } from "./policy.ts";

/**
 * The autoscaler's loop for one target (a Railway service, or the local processes of `npm run
 * dev`): observe → decide → apply.
 * - While the target runs replicas it polls every `pollingIntervalSeconds` (KEDA's pollingInterval).
 * - At zero it stops polling: it sleeps until a wake (`wake()`, from POST /wake after the edge
 *   enqueued), the due time of the earliest delayed job, or `safetyPollSeconds` — so a quiet
 *   deployment costs about one poll per safety interval.
 * - However many wakes arrive, it observes at most once per `minTickGapMs` (1 s).
 * - A failing observe or apply is logged and retried on the next tick; a 429 (`retryAfterMs` on
 *   the error) pushes the next tick back. The loop itself never throws.
 */

export interface ScaleDriver {
  /** Replicas running now (the process driver counts its children; Railway's reads its API). */
  current(): number | Promise<number>;
  apply(replicas: number): Promise<void>;
}

export interface LoopSettings extends PolicySettings {
  pollingIntervalSeconds: number;
  safetyPollSeconds: number;
  /** Window of the processing/arrival rate (observe.ts createRateTracker). */
  rateWindowSeconds: number;
}

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or at once when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    }),
};

export interface TimelineEntry {
  at: number;
  backlog: number;
  active: number;
  from: number;
  to: number;
  reason: string;
  applied: boolean;
}

export interface Autoscaler {
  /** Observe now (throttled); never waits for the tick. `reason` is logged. */
  wake(reason?: string): void;
  /** Runs one observe → decide → apply now and returns the decision (tests, dev). */
  tick(): Promise<Decision | undefined>;
  /** The replica count the loop believes in, the last snapshot, the decisions that changed it. */
  status(): { replicas: number; asleep: boolean; last?: Snapshot; timeline: readonly TimelineEntry[]; ticks: number; retryAt?: number };
  /** Ends the loop after the current tick. Replicas are left as they are. */
  stop(): Promise<void>;
}

export interface AutoscalerOptions {
  name?: string;
  driver: ScaleDriver;
  observe: (now: number) => Promise<Snapshot>;
  settings: LoopSettings;
  log: Log;
  clock?: Clock;
  /** Log every decision, apply none (the replica count is then the loop's own belief). */
  dryRun?: boolean;
  /** Start the background loop (default true); tests may drive `tick()` alone. */
  run?: boolean;
  minTickGapMs?: number;
}

export function startAutoscaler(options: AutoscalerOptions): Autoscaler {
  const { driver, settings, log, dryRun = false } = options;
  const clock = options.clock ?? systemClock;
  const name = options.name ?? "fleet";
  const minGap = options.minTickGapMs ?? 1_000;
  const rates = createRateTracker(settings.rateWindowSeconds * 1000);
  const timeline: TimelineEntry[] = [];
  let state: PolicyState | undefined;
  let last: Snapshot | undefined;
  let lastTickAt = -Infinity;
  let backoffUntil = 0;
  let stopped = false;
  let ticks = 0;
  let asleep = false;
  let woken = false;
  let sleeping = new AbortController();
  let ticking: Promise<Decision | undefined> = Promise.resolve(undefined);

  async function runTick(): Promise<Decision | undefined> {
    const now = clock.now();
    lastTickAt = now;
    ticks++;
    try {
      const replicas = dryRun && state ? state.replicas : await driver.current();
      state = { ...(state ?? {}), replicas };
      last = await options.observe(now);
    } catch (err) {
      noteFailure("autoscaler poll failed", err); // Redis, or reading Railway's replica count
      return undefined;
    }
    const decision = decide(settings, state, { at: now, backlog: last.backlog, active: last.active, ...rates.add(last) });
    const from = state.replicas;
    const fields = {
      target: name, backlog: last.backlog, active: last.active, from, to: decision.replicas, reason: decision.reason,
      desired: decision.desired, rateFloor: decision.rateFloor, ...(dryRun ? { dryRun: true } : {}),
    };
    if (decision.replicas === from) {
      state = decision.state;
      if (dryRun) log("info", "autoscaler decision", fields);
      return decision;
    }
    log("info", "autoscaler decision", fields);
    let applied = false;
    if (!dryRun) {
      try {
        await driver.apply(decision.replicas);
        applied = true;
      } catch (err) {
        // Not committed: the next tick decides again from the driver's count.
        noteFailure("autoscaler apply failed", err, { to: decision.replicas });
        timeline.push({ at: now, backlog: last.backlog, active: last.active, from, to: decision.replicas, reason: decision.reason, applied });
        return decision;
      }
    }
    state = decision.state;
    timeline.push({ at: now, backlog: last.backlog, active: last.active, from, to: decision.replicas, reason: decision.reason, applied });
    return decision;
  }

  function noteFailure(msg: string, err: unknown, extra: Record<string, number> = {}) {
    const retryAfterMs = (err as { retryAfterMs?: unknown }).retryAfterMs;
    if (typeof retryAfterMs === "number") backoffUntil = clock.now() + retryAfterMs;
    log("warn", msg, { target: name, error: err instanceof Error ? err.message : String(err), ...extra, ...(typeof retryAfterMs === "number" ? { retryAfterMs } : {}) });
  }

  function tick(): Promise<Decision | undefined> {
    ticking = ticking.then(runTick, runTick);
    return ticking;
  }

  /** How long to sleep after a tick: polling while replicas run, until something is due at zero. */
  function nextSleep(): number {
    const now = clock.now();
    let ms: number;
    if ((state?.replicas ?? 0) > 0 || (last?.active ?? 0) > 0) {
      ms = settings.pollingIntervalSeconds * 1000;
    } else {
      ms = settings.safetyPollSeconds * 1000;
      if (last?.nextDelayedAt !== undefined) ms = Math.min(ms, Math.max(0, last.nextDelayedAt - now));
    }
    return Math.max(ms, backoffUntil - now, lastTickAt + minGap - now, 0);
  }

  const stopping = new AbortController();
  const loop =
    options.run === false
      ? Promise.resolve()
      : (async () => {
          while (!stopped) {
            woken = false;
            sleeping = new AbortController();
            await tick();
            if (stopped) break;
            asleep = (state?.replicas ?? 0) === 0;
            // A wake that came in during the tick is served by the next one, right away.
            if (!woken) await clock.sleep(nextSleep(), sleeping.signal);
            // However many wakes: one tick per minGap at most, and a 429's back-off holds.
            const wait = Math.max(lastTickAt + minGap - clock.now(), backoffUntil - clock.now());
            if (wait > 0 && !stopped) await clock.sleep(wait, stopping.signal);
          }
        })();

  return {
    wake(reason) {
      if (stopped) return;
      // Logged only at zero: while replicas run, wakes (one per queue per few seconds from each
      // edge isolate) change nothing worth a line.
      if (asleep) log("info", "autoscaler woken", { target: name, ...(reason ? { reason } : {}) });
      woken = true;
      sleeping.abort();
    },
    tick,
    status: () => ({ replicas: state?.replicas ?? 0, asleep, ...(last ? { last } : {}), timeline, ticks, ...(backoffUntil > clock.now() ? { retryAt: backoffUntil } : {}) }),
    async stop() {
      stopped = true;
      sleeping.abort();
      stopping.abort();
      await loop;
    },
  };
}
