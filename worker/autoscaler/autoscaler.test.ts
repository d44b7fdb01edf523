import { Queue, type Job } from "bullmq";
import { afterEach, describe, expect, inject, it } from "vitest";
import { auditContract } from "../../shared/jobs/audit.ts";
import { startFakeRailway, type FakeRailway } from "../../tools/testing/fake-railway.ts";
import { deleteKeys, memoryLog, uniqueId } from "../../tools/testing/fixtures.ts";
import { redisOptions } from "../fleet.ts";
import { parseAutoscalerEnv } from "./config.ts";
import type { Clock } from "./loop.ts";
import { commandsPerPoll } from "./observe.ts";
import { startAutoscalerService, type AutoscalerService } from "./service.ts";

const SERVICE = "svc-fleet";
const ENVIRONMENT = "env-prod";
const RAILWAY_TOKEN = "railway-project-token-5e1f0c9a7b";
const WAKE_TOKEN = "wake-token-0123456789abcdef0123456789abcdef";

/** Time moves only when the test says so; sleeps end when it passes their deadline or on abort. */
function manualClock(start = Date.now()) {
  let now = start;
  const sleepers = new Set<{ until: number; done: () => void }>();
  const clock: Clock & { advance(ms: number): void; sleeps(): number[] } = {
    now: () => now,
    sleep: (ms, signal) =>
      new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        const s = {
          until: now + ms,
          done: () => {
            sleepers.delete(s);
            signal.removeEventListener("abort", s.done);
            resolve();
          },
        };
        sleepers.add(s);
        signal.addEventListener("abort", s.done, { once: true });
      }),
    advance(ms) {
      now += ms;
      for (const s of [...sleepers]) if (s.until <= now) s.done();
    },
    sleeps: () => [...sleepers].map((s) => s.until - now),
  };
  return clock;
}

const cleanups: Array<() => Promise<unknown>> = [];
const allLines: Array<Record<string, unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

type AddJobs = (n: number, opts?: object) => Promise<Job[]>;

async function setup(
  options: {
    target?: Record<string, unknown>;
    env?: Record<string, string>;
    run?: boolean;
    replicas?: number;
    /** Jobs added before the service starts, so its first poll already sees them. */
    seed?: (add: AddJobs) => Promise<unknown>;
  } = {},
) {
  const prefix = uniqueId("as");
  const railway = await startFakeRailway({ serviceId: SERVICE, environmentId: ENVIRONMENT, regions: { "us-west2": { numReplicas: options.replicas ?? 0 }, "europe-west4": null } });
  cleanups.push(() => railway.close());
  const queue = new Queue("audit", { connection: redisOptions(inject("redisUrl")), prefix });
  cleanups.push(async () => {
    await queue.close();
    await deleteKeys(inject("redisUrl"), prefix);
  });
  const config = parseAutoscalerEnv({
    REDIS_URL: inject("redisUrl"),
    QUEUE_PREFIX: prefix,
    AUTOSCALER_TARGETS: JSON.stringify([
      { name: "fleet", serviceId: SERVICE, environmentId: ENVIRONMENT, queues: ["audit", "email"], maxReplicas: 4, jobsPerReplica: 50, ...options.target },
    ]),
    AUTOSCALER_POLLING_INTERVAL_SECONDS: "5",
    AUTOSCALER_STABILIZATION_SECONDS: "30",
    AUTOSCALER_SCALE_DOWN_COOLDOWN_SECONDS: "10",
    AUTOSCALER_IDLE_SECONDS: "60",
    AUTOSCALER_WAKE_TOKEN: WAKE_TOKEN,
    RAILWAY_TOKEN,
    RAILWAY_GRAPHQL_URL: railway.url,
    RAILWAY_API_TIMEOUT_MS: "300",
    PORT: "0",
    ...options.env,
  });
  const add: AddJobs = (n, opts = {}) =>
    queue.addBulk(Array.from({ length: n }, () => ({ name: auditContract.name, data: { id: uniqueId("e"), name: "x", type: "domain", occurredAt: "2026-11-23T10:00:00Z", payload: {} }, opts })));
  const seeded = await options.seed?.(add);
  const clock = manualClock();
  const { log, lines } = memoryLog();
  const service = await startAutoscalerService(config, { log, clock, run: options.run ?? false });
  cleanups.push(async () => {
    await service.close();
    allLines.push(...lines);
  });
  const autoscaler = service.targets[0]!.autoscaler;
  const url = `http://127.0.0.1:${service.server.port}`;
  const wake = (token: string, body?: unknown) =>
    fetch(`${url}/wake`, { method: "POST", headers: { authorization: `Bearer ${token}` }, ...(body ? { body: JSON.stringify(body) } : {}) });
  return { prefix, railway, queue, service, autoscaler, clock, lines, add, url, wake, seeded };
}

function scaleCalls(railway: FakeRailway) {
  return railway.calls.filter((c) => c.operation === "scale");
}

describe("the autoscaler against Railway's API and a real backlog", () => {
  it("scales a burst up at once to the computed target (clamped to max), then down one step per cooldown and to zero after idle", async () => {
    const { railway, queue, autoscaler, clock, add } = await setup();
    await add(180);
    await autoscaler.tick();
    // ceil(180 / 50) = 4, at once from zero.
    expect(railway.scales()).toEqual([4]);
    expect(railway.regions["us-west2"]).toEqual({ numReplicas: 4 });
    const [read, scale] = railway.calls;
    expect(read).toMatchObject({ operation: "read", variables: { environmentId: ENVIRONMENT } });
    expect(read!.headers["project-access-token"]).toBe(RAILWAY_TOKEN);
    expect(read!.headers.authorization).toBeUndefined();
    expect(scale!.variables).toEqual({
      environmentId: ENVIRONMENT,
      patch: { services: { [SERVICE]: { deploy: { multiRegionConfig: { "us-west2": { numReplicas: 4 } } } } } },
      commitMessage: "autoscaler: 4 replica(s)",
    });

    // More work than max × jobsPerReplica: still 4, no call.
    await add(300);
    clock.advance(5_000);
    await autoscaler.tick();
    expect(railway.scales()).toEqual([4]);

    // Drained: the backlog is gone; one step after the 30 s window, then one per 10 s; zero after 60 s idle.
    await queue.drain();
    const drainedAt = clock.now() + 5_000;
    for (let i = 0; i < 30; i++) {
      clock.advance(5_000);
      await autoscaler.tick();
    }
    expect(railway.scales()).toEqual([4, 3, 2, 1, 0]);
    expect(autoscaler.status().timeline.map((e) => [(e.at - drainedAt) / 1000, e.to, e.reason])).toEqual([
      [-10, 4, "activation: backlog at threshold"],
      [30, 3, "scale down one step"],
      [40, 2, "scale down one step"],
      [50, 1, "scale down one step"],
      [60, 0, "idle: scale to zero"],
    ]);
    // Railway was read once; the driver trusts what it applied since.
    expect(railway.calls.filter((c) => c.operation === "read")).toHaveLength(1);
  });

  it("stays at zero below the activation threshold and wakes at it", async () => {
    const { railway, autoscaler, clock, add } = await setup({ target: { activationBacklog: 5 } });
    await add(4);
    await autoscaler.tick();
    expect(scaleCalls(railway)).toHaveLength(0);
    await add(1);
    clock.advance(5_000);
    await autoscaler.tick();
    expect(railway.scales()).toEqual([1]);
  });

  it("in a dry run prints each decision and calls Railway for nothing", async () => {
    const { railway, autoscaler, add, lines } = await setup({ env: { DRY_RUN: "1", RAILWAY_TOKEN: "" } });
    await add(120);
    await autoscaler.tick();
    expect(railway.calls).toHaveLength(0);
    expect(lines.filter((l) => l.msg === "autoscaler decision")).toEqual([
      expect.objectContaining({ target: "fleet", backlog: 120, from: 0, to: 3, dryRun: true, reason: "activation: backlog at threshold" }),
    ]);
    expect(autoscaler.status().replicas).toBe(3);
  });

  it("at zero sleeps until a wake, observes at most once per second however many wakes come, and refuses a wrong token", async () => {
    const { railway, autoscaler, clock, add, wake, service } = await setup({ run: true });
    // The first poll sees nothing: asleep for the safety interval, no Railway write.
    await expect.poll(() => clock.sleeps()).toEqual([300_000]);
    expect(autoscaler.status()).toMatchObject({ ticks: 1, asleep: true, replicas: 0 });
    expect(service.commands().total).toBe(commandsPerPoll(2));

    await add(3);
    const refused = await wake("not-the-token", { queues: ["audit"] });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ error: "unauthorized" });
    expect(autoscaler.status().ticks).toBe(1);

    clock.advance(1_000);
    const first = await wake(WAKE_TOKEN, { queues: ["audit"] });
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({ woken: ["fleet"] });
    await expect.poll(() => railway.scales()).toEqual([1]);
    expect(autoscaler.status().ticks).toBe(2);
    // More wakes within the second: one more tick, after the 1 s gap.
    const more = await Promise.all(Array.from({ length: 4 }, () => wake(WAKE_TOKEN, { queues: ["audit"] })));
    expect(more.map((a) => a.status)).toEqual([202, 202, 202, 202]);
    await expect.poll(() => clock.sleeps()).toEqual([1_000]);
    expect(autoscaler.status().ticks).toBe(2);
    clock.advance(1_000);
    await expect.poll(() => autoscaler.status().ticks).toBe(3);
    // Replicas running: back to the polling interval.
    await expect.poll(() => clock.sleeps()).toEqual([5_000]);

    // A wake for a queue no target drains wakes nothing.
    const other = await wake(WAKE_TOKEN, { queue: "report" });
    expect(await other.json()).toEqual({ woken: [] });
  });

  it("at zero with a delayed job sleeps until it is due, not the whole safety interval", async () => {
    // Added before the loop starts: its first poll finds the job (a job added later arrives with a wake).
    const { clock, seeded } = await setup({ run: true, seed: (add) => add(1, { delay: 120_000 }) });
    const [job] = seeded as Job[];
    // BullMQ's delayed score keeps the due time to the millisecond: the sleep ends exactly then.
    await expect.poll(() => clock.sleeps()).toEqual([job!.timestamp + 120_000 - clock.now()]);
  });

  it("survives Railway answering 500, 429 (backing off by Retry-After) and not at all, and applies on a later tick", async () => {
    const { railway, autoscaler, clock, add, lines } = await setup();
    await autoscaler.tick(); // reads the current replicas: 0
    await add(60);

    railway.fail("500");
    clock.advance(5_000);
    await autoscaler.tick();
    expect(lines.at(-1)).toMatchObject({ level: "warn", msg: "autoscaler apply failed", error: expect.stringContaining("answered 500"), to: 2 });

    // The failed write left the count unknown: the driver reads it again, then the 429 lands on the write.
    railway.fail("429");
    clock.advance(5_000);
    await autoscaler.tick();
    expect(lines.at(-1)).toMatchObject({ level: "warn", msg: "autoscaler poll failed", retryAfterMs: 30_000 });
    expect(autoscaler.status().retryAt).toBe(clock.now() + 30_000);

    railway.fail("hang");
    clock.advance(30_000);
    await autoscaler.tick();
    expect(lines.at(-1)).toMatchObject({ level: "warn", msg: "autoscaler poll failed", error: "Railway API did not answer within 300 ms" });

    clock.advance(5_000);
    await autoscaler.tick();
    expect(railway.scales()).toEqual([2, 2]);
    expect(railway.regions["us-west2"]).toEqual({ numReplicas: 2 });
    expect(autoscaler.status().replicas).toBe(2);
  });

  it("never writes the Railway or wake token to a log line, even when the API repeats it", async () => {
    const { railway, autoscaler, add, lines, wake } = await setup();
    railway.fail("echo-token");
    await add(10);
    await autoscaler.tick();
    expect(lines.at(-1)).toMatchObject({ msg: "autoscaler poll failed", error: "Railway API error: Not Authorized for [token]" });
    await wake("wrong");
    await wake(WAKE_TOKEN);
    const text = JSON.stringify([...allLines, ...lines]);
    expect(text).not.toContain(RAILWAY_TOKEN);
    expect(text).not.toContain(WAKE_TOKEN);
  });

  it("GET /healthz answers 200 with each target's replicas and the Redis commands spent", async () => {
    const { autoscaler, url, add } = await setup();
    await add(51);
    await autoscaler.tick();
    const res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: "ok",
      targets: [{ name: "fleet", queues: ["audit", "email"], replicas: 2, asleep: false, backlog: 51 }],
      dryRun: false,
      redisCommands: { total: 11, lastMinute: 11, perPoll: { fleet: 11 } },
    });
  });
});
