import { describe, expect, it } from "vitest";
import { decide, DEFAULT_POLICY, type Observation, type PolicySettings, type PolicyState } from "./policy.ts";

const S: PolicySettings = {
  minReplicas: 0,
  maxReplicas: 5,
  jobsPerReplica: 10,
  activationBacklog: 3,
  stabilizationSeconds: 30,
  scaleDownCooldownSeconds: 10,
  idleSeconds: 60,
};
const T = 1_000_000; // "now" in every row, ms
const sec = (s: number) => T - s * 1000;

type Row = [title: string, settings: Partial<PolicySettings>, state: PolicyState, obs: Omit<Observation, "at">, replicas: number, reason: string];

const rows: Row[] = [
  // 0 → 1 and the activation threshold
  ["stays at zero with nothing to do", {}, { replicas: 0 }, { backlog: 0, active: 0 }, 0, "idle at zero"],
  ["stays at zero below the activation threshold", {}, { replicas: 0 }, { backlog: 2, active: 0 }, 0, "backlog below activation threshold"],
  ["wakes at the activation threshold", {}, { replicas: 0 }, { backlog: 3, active: 0 }, 1, "activation: backlog at threshold"],
  ["wakes straight to the computed target, not just 1", {}, { replicas: 0 }, { backlog: 35, active: 0 }, 4, "activation: backlog at threshold"],
  ["wakes at one job with the default threshold", { activationBacklog: 1 }, { replicas: 0 }, { backlog: 1, active: 0 }, 1, "activation: backlog at threshold"],
  // up: at once, clamped
  ["scales up at once to ceil(backlog / jobsPerReplica)", {}, { replicas: 1, lastScaleAt: sec(1) }, { backlog: 41, active: 10 }, 5, "scale up at once"],
  ["scales up even right after a scale-down (no up cooldown)", {}, { replicas: 2, lastScaleAt: sec(0) }, { backlog: 30, active: 0 }, 3, "scale up at once"],
  ["clamps the target to maxReplicas", {}, { replicas: 2 }, { backlog: 10_000, active: 0 }, 5, "scale up at once"],
  ["holds at max when the backlog stays above it", {}, { replicas: 5 }, { backlog: 10_000, active: 0 }, 5, "at target"],
  ["brings a count above max down at once", {}, { replicas: 7 }, { backlog: 0, active: 0 }, 5, "above maxReplicas"],
  ["brings a count below min up at once, even idle", { minReplicas: 2 }, { replicas: 0 }, { backlog: 0, active: 0 }, 2, "below minReplicas"],
  ["never goes below min on idle", { minReplicas: 1 }, { replicas: 1, idleSince: sec(1000) }, { backlog: 0, active: 0 }, 1, "at target"],
  // down: stabilisation, one step per cooldown
  ["keeps replicas while the backlog is below capacity for less than the window", {}, { replicas: 4, belowSince: sec(29) }, { backlog: 5, active: 5 }, 4, "stabilising before scale-down"],
  ["steps down by one after the stabilisation window", {}, { replicas: 4, belowSince: sec(30) }, { backlog: 5, active: 5 }, 3, "scale down one step"],
  ["steps down by one only, however far below the target is", {}, { replicas: 5, belowSince: sec(300) }, { backlog: 0, active: 1 }, 4, "scale down one step"],
  ["waits for the cooldown between two steps down", {}, { replicas: 3, belowSince: sec(300), lastScaleAt: sec(9) }, { backlog: 0, active: 1 }, 3, "scale-down cooldown"],
  ["steps again once the cooldown has passed", {}, { replicas: 3, belowSince: sec(300), lastScaleAt: sec(10) }, { backlog: 0, active: 1 }, 2, "scale down one step"],
  ["restarts the window when the backlog reaches capacity", {}, { replicas: 2, belowSince: sec(300) }, { backlog: 20, active: 0 }, 2, "at target"],
  ["a first observation below capacity opens the window instead of stepping", {}, { replicas: 3 }, { backlog: 0, active: 3 }, 3, "stabilising before scale-down"],
  ["never steps from 2 to 0", {}, { replicas: 2, belowSince: sec(300), idleSince: sec(300) }, { backlog: 0, active: 0 }, 1, "scale down one step"],
  // 1 → 0
  ["keeps the last replica while a job is still running", {}, { replicas: 1, belowSince: sec(300), idleSince: undefined }, { backlog: 0, active: 1 }, 1, "at target"],
  ["keeps the last replica before idleSeconds", {}, { replicas: 1, idleSince: sec(59) }, { backlog: 0, active: 0 }, 1, "waiting for idleSeconds before zero"],
  ["scales to zero after idleSeconds with no backlog and no active job", {}, { replicas: 1, idleSince: sec(60) }, { backlog: 0, active: 0 }, 0, "idle: scale to zero"],
  ["a job in the backlog resets the idle clock", {}, { replicas: 1, idleSince: sec(600) }, { backlog: 1, active: 0 }, 1, "at target"],
  ["zero also waits for the cooldown after the last step", {}, { replicas: 1, idleSince: sec(600), lastScaleAt: sec(5) }, { backlog: 0, active: 0 }, 1, "scale-down cooldown"],
  // the processing rate
  ["keeps the replicas the arrival rate needs though the backlog is small", {}, { replicas: 4, belowSince: sec(300), perReplicaRate: 10 }, { backlog: 2, active: 8, completedPerSecond: 35, arrivalPerSecond: 35 }, 4, "at target"],
  ["steps down to what the arrival rate needs once it falls", {}, { replicas: 4, belowSince: sec(300), perReplicaRate: 10 }, { backlog: 2, active: 8, completedPerSecond: 15, arrivalPerSecond: 15 }, 3, "scale down one step"],
  ["scales up at once when arrivals outpace the replicas", {}, { replicas: 1, perReplicaRate: 10 }, { backlog: 5, active: 10, completedPerSecond: 10, arrivalPerSecond: 28 }, 3, "scale up at once"],
  ["ignores the rate until a busy replica's capacity is known", {}, { replicas: 2, belowSince: sec(300) }, { backlog: 0, active: 2, completedPerSecond: 50, arrivalPerSecond: 50 }, 1, "scale down one step"],
];

describe("decide", () => {
  it.each(rows)("%s", (_title, overrides, state, obs, replicas, reason) => {
    const d = decide({ ...S, ...overrides }, state, { at: T, ...obs });
    expect({ replicas: d.replicas, reason: d.reason }).toEqual({ replicas, reason });
    expect(d.state.replicas).toBe(replicas);
    if (replicas !== state.replicas) expect(d.state.lastScaleAt).toBe(T);
    else expect(d.state.lastScaleAt).toBe(state.lastScaleAt);
  });

  it("learns one replica's rate only while the queue has a backlog, keeping the highest", () => {
    const busy = decide(S, { replicas: 2, perReplicaRate: 4 }, { at: T, backlog: 50, active: 20, completedPerSecond: 30 });
    expect(busy.state.perReplicaRate).toBe(15);
    const slower = decide(S, busy.state, { at: T + 1, backlog: 50, active: 20, completedPerSecond: 10 });
    expect(slower.state.perReplicaRate).toBe(15);
    // An idle fleet completes what arrives, which says nothing about what it could do.
    const idle = decide(S, { replicas: 2 }, { at: T, backlog: 0, active: 1, completedPerSecond: 1 });
    expect(idle.state.perReplicaRate).toBeUndefined();
  });

  it("tracks the idle and below-capacity windows from the first observation that opens them", () => {
    const first = decide(S, { replicas: 1 }, { at: T, backlog: 0, active: 0 });
    expect(first.state).toMatchObject({ idleSince: T, belowSince: T });
    const later = decide(S, first.state, { at: T + 5_000, backlog: 0, active: 0 });
    expect(later.state).toMatchObject({ idleSince: T, belowSince: T });
    const busy = decide(S, later.state, { at: T + 6_000, backlog: 0, active: 1 });
    expect(busy.state.idleSince).toBeUndefined();
    expect(busy.state.belowSince).toBe(T);
  });

  it("drains a burst: up at once, one step per cooldown after the window, zero after idleSeconds", () => {
    // backlog by second; the decision is replayed every 5 s like a 5 s polling interval.
    const backlogAt = (t: number) => (t < 20 ? 50 : t < 40 ? 12 : 0);
    let state: PolicyState = { replicas: 0 };
    const timeline: Array<[number, number]> = [];
    for (let t = 0; t <= 300; t += 5) {
      const d = decide(S, state, { at: T + t * 1000, backlog: backlogAt(t), active: 0 });
      if (d.replicas !== state.replicas) timeline.push([t, d.replicas]);
      state = d.state;
    }
    // 50 jobs / 10 per replica → 5 at once; backlog 12 < 50: window opens at 20 s, steps from 50 s
    // every 10 s down to 1; empty since 40 s → zero once idle 60 s and 10 s after the last step.
    expect(timeline).toEqual([[0, 5], [50, 4], [60, 3], [70, 2], [80, 1], [100, 0]]);
  });

  it("has defaults that are KEDA's and HPA's where they exist", () => {
    expect(DEFAULT_POLICY).toMatchObject({ minReplicas: 0, idleSeconds: 300, stabilizationSeconds: 300, scaleDownCooldownSeconds: 60 });
  });
});
