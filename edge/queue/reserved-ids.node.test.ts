// The reserved-id list must cover every key bullmq itself builds for a queue. It is checked against
// the installed bullmq's own QueueKeys, so an upgrade that adds a key type turns this red.
import { QueueKeys } from "bullmq";
import { describe, expect, it } from "vitest";
import { auditContract } from "../../shared/jobs/audit.ts";
import { isValidJobId, RESERVED_JOB_IDS } from "../../shared/jobs/contract.ts";
import { buildAddJob, InvalidJobOptionsError } from "./job-args.ts";

const keyTypes = Object.keys(new QueueKeys("pfx").getKeys("audit")).filter((type) => type !== "");

describe("reserved job ids", () => {
  it("covers every key type bullmq's QueueKeys produces", () => {
    expect(keyTypes.length).toBeGreaterThan(15);
    for (const type of keyTypes) expect({ type, valid: isValidJobId(type) }).toEqual({ type, valid: false });
    expect([...RESERVED_JOB_IDS]).toEqual(expect.arrayContaining(keyTypes));
  });

  it("makes the producer refuse them as job ids, before anything is sent", () => {
    for (const type of keyTypes) {
      const build = () =>
        buildAddJob({ prefix: "pfx", queue: "audit", name: auditContract.name, data: {}, opts: { jobId: type }, timestamp: 1 });
      expect(build).toThrow(InvalidJobOptionsError);
    }
  });

  it("leaves ordinary ids alone", () => {
    for (const id of ["evt-1", "wait-1", "Active", "meta.0", "a~b"]) expect(isValidJobId(id)).toBe(true);
  });
});
