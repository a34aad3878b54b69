/**
 * How a user adds `pledge/testing` to their own suite: a correct workflow is
 * held to be interruption-transparent over 20 seeds, and two mistaken functions
 * are shown to be flagged, with the seed that replays each failure.
 * Run: `npm run example:simulate` (or `npm test`, which builds first).
 */
import { Pledge } from "pledge";
import { assertInterruptionTransparent, simulate } from "pledge/testing";
import { afterAll, describe, expect, it } from "vitest";
import { numberTheOrder, pickAWarehouse, resetAttempts } from "./mistakes.js";
import { outside, registerOrders } from "./workflow.js";

// Registrations are read from this instance; its own store is never used by the simulation.
const pledge = new Pledge({ store: "memory", group: "orders" });
registerOrders(pledge);
pledge.register(numberTheOrder);
pledge.register(pickAWarehouse);

afterAll(async () => {
  await pledge.stop();
});

/** The person who approves orders: decides from the promise's tags, the same way in every run. */
const approver = (settings: { tags?: Record<string, string> }) => ({
  state: "resolved" as const,
  value: settings.tags?.approval === "order-7" ? "approved" : "declined",
});

describe("orders under crashes and replays", () => {
  it("placing an order is interruption-transparent over 20 seeds", async () => {
    const report = await assertInterruptionTransparent(
      pledge,
      "placeOrder",
      [{ id: "order-7", items: ["tea", "scone"] }],
      { seed: 1, runs: 20, external: approver, reset: outside.reset },
    );
    expect(report.reference).toMatchObject({ state: "resolved", value: { status: "charged", total: 800 } });
    // Not vacuous: processes did crash and messages were lost along the way.
    const crashes = report.seeds.reduce((sum, seed) => sum + seed.faults.workerCrash, 0);
    expect(crashes).toBeGreaterThan(0);
  });

  it("a counter changed outside ctx.run is flagged, with the seed to replay", async () => {
    const report = await simulate(pledge, "numberTheOrder", ["order-8"], {
      seed: 1,
      runs: 5,
      reset: resetAttempts,
    });
    expect(report.ok).toBe(false);
    expect(report.summary).toContain("first failing seed 1");
    expect(report.summary).toContain('replay: simulate(pledge, "numberTheOrder", ["order-8"]');
    await expect(
      assertInterruptionTransparent(pledge, "numberTheOrder", ["order-8"], { runs: 5, reset: resetAttempts }),
    ).rejects.toThrow(/interruption transparency FAILED/);
  });

  it("a branch on Math.random outside ctx is flagged as nondeterminism", async () => {
    const report = await simulate(pledge, "pickAWarehouse", ["order-9"], { seed: 1, runs: 20 });
    expect(report.ok).toBe(false);
    expect(report.seeds.some((seed) => seed.nondeterminism !== undefined)).toBe(true);
    expect(report.summary).toContain("nondeterminism");
  });
});
