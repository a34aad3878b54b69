import { afterEach, describe, expect, it, vi } from "vitest";
import { PledgeClient } from "../sdk/client.js";
import type { Context } from "../sdk/engine/context.js";
import type { Network } from "../sdk/network/network.js";
import {
  assertInterruptionTransparent,
  InterruptionTransparencyError,
  type SimulatedOutcome,
  simulate,
} from "./simulate.js";

/** A client that only holds registrations: `simulate` reads them and never uses its network (S1). */
function registrations(): PledgeClient {
  const network: Network = {
    unicast: "poll://uni@orders/test",
    anycast: "poll://any@orders/test",
    send: () => new Promise(() => {}),
    subscribe: () => () => {},
    close: async () => {},
  };
  return new PledgeClient({
    network,
    clock: { now: () => 0 },
    timers: { setTimeout: () => undefined, clearTimeout: () => {} },
    random: () => 0,
    group: "orders",
    pid: "test",
    ttl: 10_000,
    concurrency: 1,
  });
}

const price = (_ctx: Context, item: string) => item.length * 10;
const tax = (_ctx: Context, amount: number) => Math.round(amount * 0.2);
const half = (_ctx: Context, amount: number) => amount / 2;

async function checkout(ctx: Context, items: string[]) {
  const prices: number[] = [];
  for (const item of items) prices.push(await ctx.run(price, item));
  await ctx.sleep(60_000);
  const subtotal = prices.reduce((sum, each) => sum + each, 0);
  const vat = await ctx.rpc<number>("tax", subtotal);
  return { subtotal, vat, total: subtotal + vat };
}

function* checkoutGenerator(ctx: Context, items: string[]) {
  let subtotal = 0;
  for (const item of items) subtotal += yield* ctx.run(price, item);
  yield* ctx.sleep(60_000);
  const vat = yield* ctx.rpc<number>("tax", subtotal);
  return { subtotal, vat, total: subtotal + vat };
}

let executions = 0;
/** A bug: counts its own executions outside ctx.run, so its result depends on replays. */
async function countsExecutions(ctx: Context) {
  executions += 1;
  await ctx.sleep(1_000);
  await ctx.run(price, "x");
  return executions;
}

/** A bug: branches on Math.random outside ctx, so a replay may make a different call. */
async function flipsACoin(ctx: Context, amount: number) {
  const value = Math.random() < 0.5 ? await ctx.run(tax, amount) : await ctx.run(half, amount);
  await ctx.sleep(1_000);
  return value > 0;
}

async function awaitsApproval(ctx: Context, amount: number) {
  const decision = await ctx.promise<string>({ tags: { kind: "approval" } });
  return `${decision} ${amount}`;
}

function pledge(): PledgeClient {
  const client = registrations();
  client.register("price", price);
  client.register("tax", tax);
  client.register("half", half);
  client.register("checkout", checkout);
  client.register("checkoutGenerator", checkoutGenerator);
  client.register(countsExecutions);
  client.register(flipsACoin);
  client.register(awaitsApproval);
  return client;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("simulate", () => {
  it("a function whose replays change nothing holds on every seed, under faults that did happen", async () => {
    for (const name of ["checkout", "checkoutGenerator"]) {
      const report = await simulate(pledge(), name, [["tea", "cake"]], { seed: 1, runs: 10 });
      expect(report.ok, report.summary).toBe(true);
      expect(report.reference).toEqual({ state: "resolved", value: { subtotal: 70, vat: 14, total: 84 } });
      expect(report.seeds.map((seed) => seed.seed)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      const crashes = report.seeds.reduce((sum, seed) => sum + seed.faults.workerCrash, 0);
      expect(crashes).toBeGreaterThan(0);
      expect(report.summary).toContain("interruption transparency held on all 10 seeds");
    }
  });

  it("a function that counts its executions outside ctx.run is flagged, naming the seed that replays it", async () => {
    const report = await simulate(pledge(), countsExecutions, [], {
      seed: 40,
      runs: 3,
      reset: () => {
        executions = 0;
      },
    });
    expect(report.ok).toBe(false);
    expect(report.reference).toEqual({ state: "resolved", value: 1 });
    const [first] = report.seeds;
    expect(first?.ok).toBe(false);
    expect(first?.outcome.state).toBe("resolved");
    expect(first?.outcome).not.toEqual(report.reference);
    expect(first?.replay).toBe('simulate(pledge, "countsExecutions", [], { ...options, seed: 40, runs: 1 })');
    expect(report.summary).toContain("FAILED");
    expect(report.summary).toContain("first failing seed 40");
    expect(report.summary).toContain("but the plain run resolved 1");
  });

  it("a branch on Math.random outside ctx is reported as nondeterminism", async () => {
    // Alternating draws: the plain run and a first execution differ, and so do an execution and its replay.
    let draws = 0;
    vi.spyOn(Math, "random").mockImplementation(() => (draws++ % 2 === 0 ? 0.1 : 0.9));
    const report = await simulate(pledge(), "flipsACoin", [100], { seed: 1, runs: 3, faults: "none" });
    expect(report.ok).toBe(false);
    const flagged = report.seeds.filter((seed) => seed.nondeterminism !== undefined);
    expect(flagged.length).toBeGreaterThan(0);
    expect(flagged[0]?.nondeterminism).toMatch(
      /nondeterminism in simulated at simulated\.1: .* local (half|tax)/,
    );
    expect(flagged[0]?.outcome).toMatchObject({ state: "rejected", error: /^NondeterminismError: / });
    expect(report.summary).toContain(`seed ${flagged[0]?.seed}: nondeterminism: `);
  });

  it("the same seed gives the same report twice", async () => {
    const options = {
      seed: 7,
      runs: 3,
      reset: () => {
        executions = 0;
      },
    };
    const first = await simulate(pledge(), "checkout", [["tea"]], options);
    const second = await simulate(pledge(), "checkout", [["tea"]], options);
    expect(JSON.stringify(second)).toBe(JSON.stringify(first));
    const buggy = await simulate(pledge(), "countsExecutions", [], options);
    const buggyAgain = await simulate(pledge(), "countsExecutions", [], options);
    expect(JSON.stringify(buggyAgain)).toBe(JSON.stringify(buggy));
    expect(first.seeds.some((seed) => seed.steps > 50)).toBe(true);
  });

  it("ctx.promise is settled by external in the plain run and the simulation alike", async () => {
    const external = (settings: { tags?: Record<string, string> }) => ({
      state: "resolved" as const,
      value: settings.tags?.kind === "approval" ? "approved" : "unknown",
    });
    const report = await simulate(pledge(), "awaitsApproval", [5], { runs: 5, external });
    expect(report.ok, report.summary).toBe(true);
    expect(report.reference).toEqual({ state: "resolved", value: "approved 5" });
    const refusing = await simulate(pledge(), "awaitsApproval", [5], {
      runs: 2,
      external: (_settings, id) => ({ state: "rejected", error: new RangeError(`refused ${id}`) }),
    });
    expect(refusing.ok, refusing.summary).toBe(true);
    expect(refusing.reference).toEqual({ state: "rejected", error: "RangeError: refused simulated.1" });
  });

  it("a root that never settles once faults end is a liveness failure", async () => {
    const report = await simulate(pledge(), "awaitsApproval", [5], {
      runs: 1,
      steps: 500,
      settleWithin: 60_000,
    });
    expect(report.ok).toBe(false);
    expect(report.seeds[0]?.outcome).toEqual({ state: "pending" });
    expect(report.seeds[0]?.failure).toMatch(/^liveness: simulated did not settle within 60000 ms/);
  });

  it("a root that outlives its timeout is flagged: plain code never times out", async () => {
    const report = await simulate(pledge(), "checkout", [["tea"]], { runs: 1, timeout: 30_000 });
    expect(report.ok).toBe(false);
    expect(report.seeds[0]?.outcome).toEqual({
      state: "rejected",
      error: "TimeoutError: promise simulated timed out",
    });
  });

  it("a result that carries ctx.date.now() differs from the plain run unless equal says what matters", async () => {
    const stamped = async (ctx: Context, item: string) => ({
      at: await ctx.date.now(),
      price: await ctx.run(price, item),
    });
    const client = pledge();
    client.register("stamped", stamped);
    expect((await simulate(client, stamped, ["tea"], { runs: 2 })).ok).toBe(false);
    const priceOnly = (outcome: SimulatedOutcome) =>
      outcome.state === "resolved" ? (outcome.value as { price: number }).price : outcome;
    const report = await simulate(client, stamped, ["tea"], {
      runs: 2,
      equal: (outcome, reference) => priceOnly(outcome) === priceOnly(reference),
    });
    expect(report.ok, report.summary).toBe(true);
  });

  it("a name nobody registered is refused before anything runs", async () => {
    await expect(simulate(pledge(), "missing")).rejects.toThrow(
      "simulate: no function registered as missing",
    );
  });
});

describe("assertInterruptionTransparent", () => {
  it("throws with the failing seed in its message, and returns the report when it holds", async () => {
    const failing = assertInterruptionTransparent(pledge(), "countsExecutions", [], {
      seed: 3,
      runs: 2,
      reset: () => {
        executions = 0;
      },
    });
    await expect(failing).rejects.toThrow(InterruptionTransparencyError);
    await expect(failing).rejects.toThrow(
      /first failing seed 3[\s\S]*replay: simulate\(pledge, "countsExecutions"/,
    );
    const held = await assertInterruptionTransparent(pledge(), "checkout", [["tea"]], { seed: 3, runs: 2 });
    expect(held.ok).toBe(true);
  });
});
