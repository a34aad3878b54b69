/**
 * The differential test of the stores (STYLE practice 2): the same seeded
 * sequence of protocol requests, sweeps, batches and deliveries runs against the
 * memory store (the reference), SQLite in memory and SQLite on a file, and every
 * answer and the whole stored state must agree after every operation.
 *
 * It refuses to pass unless every request kind `step` handles got a success
 * (200, or 300 for `task.suspend`) across its seeds, and retention removed
 * something: a differential test whose requests all bounce off a guard compares
 * nothing.
 *
 * With a reachable PostgreSQL (see ./postgres.ts) the same seeds run again with
 * PostgreSQL as a fourth store; without one that part skips loudly (fails under CI=true).
 *
 * Replay or explore: PLEDGE_DIFFERENTIAL_SEEDS=7,8 PLEDGE_DIFFERENTIAL_STEPS=2000 npx vitest run test/differential
 */
import { describe, expect, it } from "vitest";
import type { StoreTransaction } from "../../src/store/store.js";
import { Counters, overriding, replayCommand, runDifferential } from "./harness.js";
import { requirePostgres } from "./postgres.js";
import { CORE_KINDS } from "./workload.js";

function fromEnvironment(name: string): number[] | undefined {
  const value = process.env[name];
  if (value === undefined || value.trim() === "") return undefined;
  return value.split(",").map((part) => {
    const parsed = Number(part.trim());
    if (!Number.isSafeInteger(parsed)) throw new Error(`${name}: ${part} is not an integer`);
    return parsed;
  });
}

const SEEDS = fromEnvironment("PLEDGE_DIFFERENTIAL_SEEDS") ?? [1, 2, 3];
const STEPS = fromEnvironment("PLEDGE_DIFFERENTIAL_STEPS")?.[0] ?? 400;

/** Seeds that once found a disagreement, kept as fixed cases (none so far). */
const REGRESSIONS: { seed: number; steps: number; found: string }[] = [];

describe("differential: memory, SQLite :memory: and SQLite file agree", () => {
  const counters = new Counters();
  const done = new Set<number>();

  const run = async (seed: number, steps: number) => {
    try {
      await runDifferential({ seed, steps, counters });
    } catch (error) {
      if (error instanceof Error) error.message = `${error.message}\n\nreplay: ${replayCommand(seed, steps)}`;
      throw error;
    }
  };

  for (const seed of SEEDS) {
    it(`seed ${seed}: ${STEPS} operations give the same answers and the same state in every store`, async () => {
      await run(seed, STEPS);
      done.add(seed);
    });
  }

  for (const regression of REGRESSIONS) {
    it(`regression, seed ${regression.seed}: ${regression.found}`, async () => {
      await run(regression.seed, regression.steps);
    });
  }

  it("every request kind succeeded at least once across the seeds", async () => {
    // Standalone (`-t`), it runs the seeds the other tests did not.
    for (const seed of SEEDS) if (!done.has(seed)) await run(seed, STEPS);
    console.log(
      `differential counters over seeds ${SEEDS.join(", ")} × ${STEPS} operations:\n${counters.table()}`,
    );
    const missing = CORE_KINDS.filter((kind) => counters.success(kind) === 0);
    expect(missing, "request kinds that never succeeded").toEqual([]);
    // The interesting outcomes of the richest kinds, too.
    expect(counters.statuses.get("task.suspend")?.get(200) ?? 0, "task.suspend answered 200").toBeGreaterThan(
      0,
    );
    expect(counters.statuses.get("task.suspend")?.get(300) ?? 0, "task.suspend answered 300").toBeGreaterThan(
      0,
    );
    expect(counters.fenceInner.get(200) ?? 0, "a fenced action answered 200").toBeGreaterThan(0);
    expect(counters.operations.sweepsWithChanges, "sweeps that changed something").toBeGreaterThan(0);
    expect(counters.operations.collected, "settled promises removed by retention").toBeGreaterThan(0);
  });
});

/** Stores that are wrong on purpose: the test must catch each one (the test of the test). */
const MUTANTS: { name: string; wrap: (tx: StoreTransaction) => StoreTransaction }[] = [
  {
    name: "searchPromises ignores the cursor",
    wrap: (tx) =>
      overriding(tx, { searchPromises: (query) => tx.searchPromises({ ...query, after: undefined }) }),
  },
  {
    name: "due hands out the latest deadlines first",
    wrap: (tx) =>
      overriding(tx, {
        due: (now, limit) => {
          const all = tx.due(now, Number.MAX_SAFE_INTEGER);
          return {
            ...all,
            taskIds: all.taskIds.reverse().slice(0, limit),
            promiseIds: all.promiseIds.slice(0, limit),
            scheduleIds: all.scheduleIds.slice(0, limit),
          };
        },
      }),
  },
  {
    name: "the outbox ignores address prefixes",
    wrap: (tx) =>
      overriding(tx, {
        outbox: (query) =>
          tx.outbox({ limit: query.limit, ...(query.after !== undefined && { after: query.after }) }),
      }),
  },
  {
    name: "apply keeps a listener set that was drained",
    wrap: (tx) =>
      overriding(tx, {
        apply: (changes) => {
          for (const [awaited, addresses] of changes.listeners)
            if (addresses.length === 0) changes.listeners.delete(awaited);
          tx.apply(changes);
        },
      }),
  },
];

describe("differential: a store that differs is caught", () => {
  for (const mutant of MUTANTS) {
    it(`catches a store where ${mutant.name}`, async () => {
      await expect(
        runDifferential({ seed: 1, steps: STEPS, counters: new Counters(), mutant }),
      ).rejects.toThrow(
        new RegExp(`seed 1, operation \\d+ .* differs between memory and ${mutant.name}`, "s"),
      );
    });
  }
});

/**
 * Ids whose UTF-16 and code-point orders differ (U+E000–U+FFFF against astral
 * characters): every store orders by code point (src/lib/order.ts), so they agree.
 */
describe("differential: code-point order", () => {
  it("ids in U+E000–U+FFFF and astral ids order the same in memory and in SQLite", async () => {
    await runDifferential({
      seed: 1,
      steps: STEPS,
      counters: new Counters(),
      ids: ["a", "b", "\uE000", "\uFFFD", "🙂", "😀"],
    });
  });
});

describe("differential: memory, SQLite and PostgreSQL agree", () => {
  if (!requirePostgres("the PostgreSQL differential test")) return;
  const counters = new Counters();

  for (const seed of SEEDS) {
    it(`seed ${seed}: ${STEPS} operations give the same answers and the same state in every store, PostgreSQL too`, async () => {
      try {
        await runDifferential({ seed, steps: STEPS, counters, postgres: true });
      } catch (error) {
        if (error instanceof Error)
          error.message = `${error.message}\n\nreplay: ${replayCommand(seed, STEPS)}`;
        throw error;
      }
    });
  }

  it("every request kind succeeded at least once with PostgreSQL in the comparison", () => {
    const missing = CORE_KINDS.filter((kind) => counters.success(kind) === 0);
    expect(missing, "request kinds that never succeeded").toEqual([]);
  });

  it("ids in U+E000–U+FFFF and astral ids order the same in memory and in PostgreSQL", async () => {
    await runDifferential({
      seed: 1,
      steps: STEPS,
      counters: new Counters(),
      ids: ["a", "b", "\uE000", "\uFFFD", "🙂", "😀"],
      postgres: true,
    });
  });
});
