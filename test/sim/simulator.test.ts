/**
 * The simulator itself: reproducible from a seed, and actually injecting every
 * kind of fault it claims to. (That it catches bugs is `npm run sim:mutants`.)
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { runSeed } from "../../sim/run.js";
import { FAULT_KINDS, type FaultKind } from "../../src/testing/network.js";

async function tracedRun(seed: number, store: "memory" | "sqlite") {
  const lines: string[] = [];
  const report = await runSeed({ seed, steps: 1_500, store, onTrace: (line) => lines.push(line) });
  return { report, trace: lines.join("\n") };
}

describe("the simulator", () => {
  for (const store of ["memory", "sqlite"] as const)
    it(`gives a byte-identical trace when a seed runs twice (${store})`, async () => {
      const first = await tracedRun(11, store);
      const second = await tracedRun(11, store);
      expect(first.report.failure).toBeUndefined();
      expect(first.trace.length).toBeGreaterThan(10_000);
      expect(createHash("sha256").update(second.trace).digest("hex")).toBe(
        createHash("sha256").update(first.trace).digest("hex"),
      );
      // Different seeds are different runs.
      const other = await tracedRun(12, store);
      expect(other.trace).not.toBe(first.trace);
    });

  it("holds every invariant over a batch of seeds, and every kind of fault happens in it", async () => {
    const seen = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>;
    const failures: string[] = [];
    let effects = 0;
    for (let seed = 100; seed < 124; seed++) {
      const report = await runSeed({ seed, steps: 1_500 });
      if (report.failure !== undefined) failures.push(`seed ${seed}: ${report.failure.message}`);
      for (const kind of FAULT_KINDS) seen[kind] += report.counters[kind];
      effects += report.effects;
    }
    expect(failures).toEqual([]);
    expect(effects).toBeGreaterThan(100);
    const missing = FAULT_KINDS.filter((kind) => seen[kind] === 0);
    expect(missing, `fault kinds that never happened: ${missing.join(", ")}`).toEqual([]);
  }, 180_000);
});
