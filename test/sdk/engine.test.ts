/**
 * The SDK engine end to end on an in-process server core: both engines, local
 * steps, remote calls across groups, timers, latent promises, replay.
 */
import { afterEach, describe, expect, it } from "vitest";
import { MonotonicClock, systemClock, systemTimers } from "../../src/lib/clock.js";
import { silentLogger } from "../../src/lib/logger.js";
import { EmbeddedNetwork } from "../../src/node/embedded-network.js";
import type { PromiseRecord } from "../../src/protocol/records.js";
import { PledgeClient } from "../../src/sdk/client.js";
import type { Context } from "../../src/sdk/engine/context.js";
import { ServerShell } from "../../src/server/shell.js";
import { MemoryStore } from "../../src/store/memory-store.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function server() {
  const store = new MemoryStore();
  const shell = new ServerShell(
    { store, clock: new MonotonicClock(systemClock), timers: systemTimers, logger: silentLogger },
    { debug: false, retryTimeoutMs: 1000, unblockTtlMs: 3_600_000, maintenanceIntervalMs: 50 },
  );
  shell.start();
  cleanups.push(() => shell.close());
  const client = (group = "default", pid = `${group}-1`) => {
    const network = new EmbeddedNetwork(shell, { group, pid });
    const pledge = new PledgeClient({
      network,
      clock: systemClock,
      timers: systemTimers,
      random: Math.random,
      group,
      pid,
      ttl: 5000,
      concurrency: 16,
      onError: (error) => {
        throw error;
      },
    });
    cleanups.push(async () => {
      await pledge.stop();
      await network.close();
    });
    return pledge;
  };
  return { store, shell, client };
}

function records(store: MemoryStore): PromiseRecord[] {
  return store.searchPromises({ limit: 1000 }).map(({ armed: _armed, ...record }) => record);
}

describe("the SDK engine", () => {
  it("an async function's local steps run once each and their results come back in order", async () => {
    const { client } = server();
    const pledge = client();
    const calls: number[] = [];
    const double = async (_ctx: Context, n: number) => {
      calls.push(n);
      return n * 2;
    };
    pledge.register("sum", async (ctx: Context, n: number) => {
      let total = 0;
      for (let i = 1; i <= n; i++) total += await ctx.run(double, i);
      return total;
    });
    expect(await pledge.run("sum-1", "sum", 4)).toBe(20);
    expect(calls).toEqual([1, 2, 3, 4]);
    expect(await pledge.run("sum-1", "sum", 4)).toBe(20);
    expect(calls).toEqual([1, 2, 3, 4]);
  });

  it("a generator function gives the same result and leaves the same promises as the async one", async () => {
    const runBoth = async (engine: "async" | "generator") => {
      const { client, store } = server();
      const pledge = client();
      const square = (_ctx: Context, n: number) => n * n;
      if (engine === "async")
        pledge.register("wf", async (ctx: Context, n: number) => {
          const a = await ctx.run(square, n);
          const b = ctx.beginRun(square, n + 1);
          return a + (await b);
        });
      else
        pledge.register("wf", function* (ctx: Context, n: number) {
          const a = (yield* ctx.run(square, n)) as number;
          const b = yield* ctx.beginRun(square, n + 1);
          return a + ((yield* b) as number);
        });
      const value = await pledge.run("wf-1", "wf", 3);
      const left = records(store).map(({ createdAt: _c, settledAt: _s, timeoutAt: _t, ...rest }) => rest);
      return { value, left };
    };
    const asyncRun = await runBoth("async");
    const generatorRun = await runBoth("generator");
    expect(asyncRun.value).toBe(25);
    expect(generatorRun).toEqual(asyncRun);
    expect(asyncRun.left.map((record) => record.id)).toEqual(["wf-1", "wf-1.1", "wf-1.2"]);
  });

  it("a remote call runs on a worker of the target group and the caller resumes with its value", async () => {
    const { client } = server();
    const caller = client("a");
    const callee = client("b");
    callee.register("square", (_ctx: Context, n: number) => n * n);
    callee.register("noop", () => undefined);
    caller.register("fanout", async (ctx: Context, ns: number[]) => {
      const started = ns.map((n) => ctx.beginRpc<number>("square", n, ctx.options({ target: "b" })));
      const squares = await Promise.all(started);
      return squares.reduce((sum, value) => sum + value, 0);
    });
    expect(await caller.run("fan-1", "fanout", [1, 2, 3])).toBe(14);
  });

  it("a sleep suspends the execution and the timer resumes it", async () => {
    const { client } = server();
    const pledge = client();
    const started = Date.now();
    pledge.register("nap", function* (ctx: Context) {
      yield* ctx.sleep(200);
      return "rested";
    });
    expect(await pledge.run("nap-1", "nap")).toBe("rested");
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
  });

  it("a latent promise is settled from outside and the execution resumes with its value", async () => {
    const { client } = server();
    const pledge = client();
    pledge.register("approve", async (ctx: Context) => {
      const decision = ctx.promise<{ approved: boolean }>({ id: "approval-1" });
      return (await decision).approved ? "shipped" : "held";
    });
    const handle = await pledge.beginRun<string>("order-1", "approve");
    for (;;) {
      const record = await pledge.promises.get("approval-1").catch(() => undefined);
      if (record !== undefined) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await pledge.promises.resolve("approval-1", { approved: true });
    expect(await handle.result()).toBe("shipped");
  });

  it("a thrown error rejects the execution and is rethrown as an Error where awaited", async () => {
    const { client } = server();
    const pledge = client();
    pledge.register("boom", async (ctx: Context) => {
      await ctx.run(
        () => {
          throw new RangeError("no");
        },
        ctx.options({ retry: { kind: "never" } }),
      );
    });
    await expect(pledge.run("boom-1", "boom")).rejects.toThrow("no");
  });

  it("changing the calls a function makes fails the replay loudly, naming the call", async () => {
    const { client } = server();
    const pledge = client();
    let version = 1;
    pledge.register("drift", async (ctx: Context) => {
      if (version === 1) await ctx.run(function charge() {});
      else await ctx.run(function ship() {});
      return ctx.promise({ id: "wait-drift" });
    });
    const first = await pledge.beginRun("drift-1", "drift");
    for (;;) {
      if (await pledge.promises.get("wait-drift").catch(() => undefined)) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    version = 2;
    await pledge.promises.resolve("wait-drift", 1);
    await expect(first.result()).rejects.toThrow(/nondeterminism in drift-1 at drift-1.1/);
  });
});
