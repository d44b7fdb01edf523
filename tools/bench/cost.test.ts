import { describe, expect, it } from "vitest";
import { ceilingJobsPerSecond, cheapest, classify, monthlyUsage, PLANS, planCost, replicationFactor, type Usage } from "./cost.ts";

const WRITES = new Set(["hset", "xadd", "zadd", "bzpopmin"]);
const none = { all: 0, billed: 0, writes: 0, bytes: 0 };

describe("the Upstash cost model", () => {
  it("bills script-internal commands, not AUTH/INFO/PING/QUIT/COMMAND, and counts writes apart", () => {
    const c = classify({ auth: 1, evalsha: 2, hset: 3, xadd: 1, get: 4, ping: 2, info: 1 }, WRITES, 1000);
    expect(c).toEqual({ all: 14, billed: 10, writes: 4, bytes: 1000 });
  });

  it("prices PAYG at $0.20 per 100K commands over 30 days, idle counted every minute of the month", () => {
    // 100 billed commands per job × 1000 jobs/day × 30 = 3M; 10 per idle minute × 43 200 min = 432K.
    const u: Usage = { perJob: { all: 100, billed: 100, writes: 0, bytes: 0 }, idlePerMinute: { all: 10, billed: 10, writes: 0, bytes: 0 } };
    expect(monthlyUsage({ jobsPerDay: 1000, replicas: 1 }, u).commands).toBe(3_432_000);
    expect(planCost(PLANS[0]!, { jobsPerDay: 1000, replicas: 1 }, u).usd).toBeCloseTo(6.864, 6);
  });

  it("bills each write again per read region of a global database, and a Fixed read region at half the tier", () => {
    const perJob = { all: 10, billed: 10, writes: 4, bytes: 0 };
    expect(replicationFactor(perJob, 2)).toBeCloseTo(1.8, 9);
    const u: Usage = { perJob, idlePerMinute: none };
    expect(monthlyUsage({ jobsPerDay: 1, replicas: 0, readRegions: 2 }, u).commands).toBe(30 * 18);
    const fixed = PLANS.find((p) => p.name === "Fixed 1 GB")!;
    expect(planCost(fixed, { jobsPerDay: 1, replicas: 0, readRegions: 2 }, u).usd).toBe(40);
  });

  it("marks the cheapest plan that fits: PAYG when quiet, a Fixed plan once commands add up, none past every limit", () => {
    const u: Usage = { perJob: { all: 60, billed: 60, writes: 30, bytes: 3000 }, idlePerMinute: { all: 1, billed: 1, writes: 0, bytes: 0 } };
    expect(cheapest({ jobsPerDay: 0, replicas: 1 }, u).best?.plan.name).toBe("PAYG");
    expect(cheapest({ jobsPerDay: 100_000, replicas: 1 }, u).best?.plan.name).toBe("Fixed 250 MB");
    // 1M jobs/day × 3 KB = 90 GB a month: over the 250 MB plan's 50 GB of bandwidth.
    expect(cheapest({ jobsPerDay: 1_000_000, replicas: 1 }, u).best?.plan.name).toBe("Fixed 1 GB");
    // 20M jobs/day × 60 = 13 900 commands/s on average: past 10 000, within the 16 000 of the large plans.
    expect(cheapest({ jobsPerDay: 20_000_000, replicas: 1 }, u).best?.plan.name).toBe("Fixed 100 GB");
    expect(cheapest({ jobsPerDay: 100_000_000, replicas: 1 }, u).best).toBeUndefined();
  });

  it("turns a plan's command limit into a jobs-per-second ceiling", () => {
    const payg = PLANS[0]!;
    expect(ceilingJobsPerSecond(payg, { all: 64, billed: 62.5, writes: 20, bytes: 0 })).toBe(160);
    expect(ceilingJobsPerSecond(payg, { all: 64, billed: 50, writes: 25, bytes: 0 }, 1)).toBeCloseTo(133.33, 2);
  });
});
