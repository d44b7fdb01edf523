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

  describe("with more than one write in flight", () => {
    /** A write that stays in flight until the test releases it, in start order. */
    function heldWrites() {
      const writes: number[][] = [];
      const releases: Array<() => void> = [];
      const write = async (items: number[]) => {
        writes.push(items);
        await new Promise<void>((r) => releases.push(r));
      };
      const turn = () => new Promise((r) => setImmediate(r));
      return { writes, releases, write, turn };
    }

    it("starts a further write once overlapAt items wait, up to maxInFlight", async () => {
      const { writes, releases, write, turn } = heldWrites();
      const batcher = createBatcher<number>(write, 100, { maxInFlight: 2, overlapAt: 3 });
      const added = [batcher.add(1)];
      await turn();
      added.push(batcher.add(2), batcher.add(3));
      await turn();
      expect(writes).toEqual([[1]]); // two waiting: fewer than overlapAt
      added.push(batcher.add(4));
      await turn();
      expect(writes).toEqual([[1], [2, 3, 4]]);
      added.push(batcher.add(5), batcher.add(6), batcher.add(7));
      await turn();
      expect(writes).toHaveLength(2); // maxInFlight reached
      releases[0]!();
      await turn();
      expect(writes).toEqual([[1], [2, 3, 4], [5, 6, 7]]);
      releases[1]!();
      releases[2]!();
      await Promise.all(added);
      expect(batcher.stats).toMatchObject({ flushes: 3, written: 7 });
    });

    it("keeps fewer than overlapAt items for the next write instead of a small parallel one", async () => {
      const { writes, releases, write, turn } = heldWrites();
      const batcher = createBatcher<number>(write, 100, { maxInFlight: 3, overlapAt: 5 });
      const added = [batcher.add(1)];
      await turn();
      added.push(batcher.add(2), batcher.add(3));
      await turn();
      expect(writes).toEqual([[1]]);
      releases[0]!();
      await turn();
      expect(writes).toEqual([[1], [2, 3]]);
      releases[1]!();
      await Promise.all(added);
      await batcher.idle();
    });

    it("refuses settings that cannot work", () => {
      const write = async () => {};
      expect(() => createBatcher(write, 10, { maxInFlight: 0 })).toThrow(RangeError);
      expect(() => createBatcher(write, 10, { overlapAt: 0 })).toThrow(RangeError);
      expect(() => createBatcher(write, 10, { maxInFlight: 1.5 })).toThrow(RangeError);
    });
  });
});
