/**
 * The scaling policy: a pure function from (settings, what the autoscaler remembers, one
 * observation) to a replica count, so every rule is a row in a table test.
 *
 * Borrowed terms and defaults:
 * - KEDA ScaledObject: `minReplicaCount`/`maxReplicaCount` (min/max), `pollingInterval` (the loop,
 *   main.ts), `cooldownPeriod` (here `idleSeconds`: how long a queue is empty before 1 → 0; KEDA's
 *   default 300 s), the activation target (`activationBacklog`: 0 → 1 only at or above it).
 * - Kubernetes HPA `behavior` defaults: scale up with no stabilisation (here: at once, straight to
 *   the computed target), scale down only after a stabilisation window (here
 *   `stabilizationSeconds`, HPA's default 300 s) — and, stricter than HPA, one replica per
 *   `scaleDownCooldownSeconds` (HPA's `Pods: 1, periodSeconds: 60` policy) since every stopped
 *   replica drains its jobs first.
 */

export interface PolicySettings {
  minReplicas: number;
  maxReplicas: number;
  /** Target backlog per replica (KEDA's list-length target): desired = ceil(backlog / this). */
  jobsPerReplica: number;
  /** 0 → 1 only when the backlog is at least this (KEDA's activation target). */
  activationBacklog: number;
  /** A step down needs the backlog below current capacity for this long (HPA stabilisation). */
  stabilizationSeconds: number;
  /** At least this long between two scale-downs (and after a scale-up). */
  scaleDownCooldownSeconds: number;
  /** 1 → 0 only after this long with an empty backlog and no active job (KEDA's cooldownPeriod). */
  idleSeconds: number;
}

export const DEFAULT_POLICY: PolicySettings = {
  minReplicas: 0,
  maxReplicas: 10,
  jobsPerReplica: 100,
  activationBacklog: 1,
  stabilizationSeconds: 300,
  scaleDownCooldownSeconds: 60,
  idleSeconds: 300,
};

export interface Observation {
  /** ms since the epoch, from the injected clock. */
  at: number;
  /** Jobs that could run now: waiting + prioritized + due delayed, over the target's queues. */
  backlog: number;
  /** Jobs running now. */
  active: number;
  /**
   * Jobs completed per second over the last rate window (the fleet's own counters), and jobs
   * arriving per second (completions + backlog growth over the same window). Absent until two
   * samples span a window.
   */
  completedPerSecond?: number;
  arrivalPerSecond?: number;
}

export interface PolicyState {
  /** Replicas the target runs now (the driver's answer, or the last applied count). */
  replicas: number;
  /** When replicas last changed (either way). */
  lastScaleAt?: number;
  /** Since when every observation had backlog below current capacity. */
  belowSince?: number;
  /** Since when every observation had no backlog and no active job. */
  idleSince?: number;
  /**
   * Jobs/s one replica was seen to complete while the queue had a backlog at both ends of the
   * window (i.e. the replicas were busy): the highest such figure, learned as the fleet runs.
   */
  perReplicaRate?: number;
}

export interface Decision {
  replicas: number;
  /** What drove the decision, one short phrase for the log and the timeline. */
  reason: string;
  /** ceil(backlog / jobsPerReplica), before clamping. */
  desired: number;
  /** Replicas needed to keep up with the arrival rate (0 when unknown). */
  rateFloor: number;
  state: PolicyState;
}

export function decide(settings: PolicySettings, state: PolicyState, obs: Observation): Decision {
  const { minReplicas: min, maxReplicas: max } = settings;
  const current = state.replicas;
  const now = obs.at;
  const next: PolicyState = { ...state };

  // Learn what one busy replica completes per second; only a busy fleet shows its capacity.
  if (current > 0 && obs.completedPerSecond !== undefined && obs.backlog > 0 && obs.completedPerSecond > 0) {
    const perReplica = obs.completedPerSecond / current;
    if (perReplica > (next.perReplicaRate ?? 0)) next.perReplicaRate = perReplica;
  }

  const desired = obs.backlog > 0 ? Math.ceil(obs.backlog / settings.jobsPerReplica) : 0;
  // Keep enough replicas to process what arrives: without this a steady stream that the fleet
  // keeps at a small backlog would look like spare capacity and be scaled away step by step.
  const rateFloor =
    obs.arrivalPerSecond !== undefined && obs.arrivalPerSecond > 0 && next.perReplicaRate
      ? Math.ceil(obs.arrivalPerSecond / next.perReplicaRate)
      : 0;
  const busy = obs.backlog > 0 || obs.active > 0;
  const target = clamp(Math.max(desired, rateFloor, busy ? 1 : 0), min, max);

  next.idleSince = busy ? undefined : (state.idleSince ?? now);
  const capacity = current * settings.jobsPerReplica;
  next.belowSince = obs.backlog < capacity ? (state.belowSince ?? now) : undefined;

  const result = (replicas: number, reason: string): Decision => {
    if (replicas !== current) {
      next.replicas = replicas;
      next.lastScaleAt = now;
    }
    return { replicas, reason, desired, rateFloor, state: next };
  };

  if (current < min) return result(min, "below minReplicas");
  if (current > max) return result(max, "above maxReplicas");

  if (current === 0) {
    if (obs.backlog >= settings.activationBacklog && obs.backlog > 0) return result(Math.max(1, target), "activation: backlog at threshold");
    return result(0, obs.backlog > 0 ? "backlog below activation threshold" : "idle at zero");
  }

  if (target > current) return result(target, "scale up at once");
  if (target === current) return result(current, "at target");

  // target < current: one step down, after the stabilisation window and the cooldown.
  const sinceScale = state.lastScaleAt === undefined ? Infinity : now - state.lastScaleAt;
  if (sinceScale < settings.scaleDownCooldownSeconds * 1000) return result(current, "scale-down cooldown");

  if (current === 1) {
    // target is 0 here: min is 0 and nothing is waiting or running.
    const idleFor = next.idleSince === undefined ? 0 : now - next.idleSince;
    if (idleFor >= settings.idleSeconds * 1000) return result(0, "idle: scale to zero");
    return result(1, "waiting for idleSeconds before zero");
  }
  const stableFor = next.belowSince === undefined ? 0 : now - next.belowSince;
  if (stableFor < settings.stabilizationSeconds * 1000) return result(current, "stabilising before scale-down");
  // Never below 1 by a step: 1 → 0 is the idle rule's alone.
  return result(Math.max(current - 1, target, 1), "scale down one step");
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, n));
}
