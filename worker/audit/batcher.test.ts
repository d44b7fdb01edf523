import { describe, expect, it } from "vitest";
import { createBatcher } from "./batcher.ts";

describe("createBatcher", () => {
  it("writes a lone item at once and groups items that arrive during a write", async () => {
    const writes: number[][] = [];
    let release: () => void = () => {};
    const batcher = createBatcher<number>(async (items) => {
      writes.push(items);
      if (writes.length === 1) await new Promise<void>((r) => (release = r));
    }, 100);
    const first = batcher.add(1);
    await new Promise((r) => setImmediate(r));
    const rest = [2, 3, 4].map((n) => batcher.add(n));
    expect(writes).toEqual([[1]]);
    release();
    await Promise.all([first, ...rest]);
    expect(writes).toEqual([[1], [2, 3, 4]]);
  });

  it("starts a full batch without waiting for the write in flight", async () => {
    const writes: number[][] = [];
    const batcher = createBatcher<number>(async (items) => {
      writes.push(items);
      await new Promise((r) => setTimeout(r, 20));
    }, 2);
    await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.add(n)));
    expect(writes).toEqual([[1, 2], [3, 4], [5]]);
  });

  it("rejects every item of a failed write and keeps working", async () => {
    let fail = true;
    const batcher = createBatcher<string>(async () => {
      if (fail) throw new Error("db down");
    }, 10);
    const results = await Promise.allSettled([batcher.add("a"), batcher.add("b")]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    fail = false;
    await expect(batcher.add("c")).resolves.toBeUndefined();
    expect(batcher.stats).toMatchObject({ failedFlushes: 1, written: 1 });
  });
});
