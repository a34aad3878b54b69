import { describe, expect, it } from "vitest";
import type { Context } from "../sdk/engine/context.js";
import type { DurableFunction } from "../sdk/engine/execution.js";
import { type PlainOptions, PlainStarted, runPlain } from "./plain.js";

const double = (_ctx: Context, n: number) => n * 2;
const fail = (_ctx: Context, message: string) => {
  throw new RangeError(message);
};
const functions =
  (table: Record<string, DurableFunction>): PlainOptions["functions"] =>
  (name) =>
    table[name];

describe("runPlain", () => {
  it("async and generator versions of the same function give the same value", async () => {
    const asyncPair = async (ctx: Context, n: number) => [
      await ctx.run(double, n),
      await ctx.run(double, n + 1),
    ];
    const generatorPair = function* (ctx: Context, n: number) {
      return [yield* ctx.run(double, n), yield* ctx.run(double, n + 1)];
    };
    const asyncFlow = async (ctx: Context, n: number) => {
      const a = await ctx.run(double, n);
      const pairs = await ctx.run(asyncPair, a);
      const started = ctx.beginRun(double, 100);
      const remote = await ctx.rpc<number>("double", 5);
      let caught = "";
      try {
        await ctx.run(fail, "too far");
      } catch (error) {
        caught = (error as Error).message;
      }
      await ctx.sleep(1000);
      const random = await ctx.math.random();
      const now = await ctx.date.now();
      return { a, pairs, later: await started, remote, caught, random, now };
    };
    const generatorFlow = function* (ctx: Context, n: number) {
      const a = yield* ctx.run(double, n);
      const pairs = yield* ctx.run(generatorPair, a);
      const started = yield* ctx.beginRun(double, 100);
      const remote = yield* ctx.rpc<number>("double", 5);
      let caught = "";
      try {
        yield* ctx.run(fail, "too far");
      } catch (error) {
        caught = (error as Error).message;
      }
      yield* ctx.sleep(1000);
      const random = yield* ctx.math.random();
      const now = yield* ctx.date.now();
      return { a, pairs, later: yield* started, remote, caught, random, now };
    };
    const options = () => {
      let draws = 0;
      return { functions: functions({ double }), random: () => ++draws / 8, now: () => 1234 };
    };
    const fromAsync = await runPlain(asyncFlow, [3], options());
    const fromGenerator = await runPlain(generatorFlow, [3], options());
    expect(fromAsync).toEqual({
      state: "resolved",
      value: { a: 6, pairs: [12, 14], later: 200, remote: 10, caught: "too far", random: 0.125, now: 1234 },
    });
    expect(fromGenerator).toEqual(fromAsync);
  });

  it("nested run, rpc, beginRun and beginRpc compose, each returning its function's value", async () => {
    const inner = function* (ctx: Context, n: number) {
      const future = yield* ctx.beginRpc<number>("double", n);
      return (yield* future) + 1;
    };
    const outer = async (ctx: Context) => {
      const [x, y] = await Promise.all([ctx.beginRun(inner, 1), ctx.beginRpc<number>("inner", 2)]);
      const z = await ctx.rpc<number>("inner", 3);
      return [x, y, z, await ctx.run(inner, 4)];
    };
    const outcome = await runPlain(outer, [], { functions: functions({ double, inner }) });
    expect(outcome).toEqual({ state: "resolved", value: [3, 5, 7, 9] });
  });

  it("beginRun returns a started call whose yield* hands back the future without waiting", async () => {
    const order: string[] = [];
    const slow = async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      order.push("slow done");
      return "slow";
    };
    const flow = function* (ctx: Context) {
      const started = ctx.beginRun(slow);
      expect(started).toBeInstanceOf(PlainStarted);
      const future = yield* started;
      order.push("got the future");
      const value = yield* future;
      order.push("awaited it");
      return value;
    };
    expect(await runPlain(flow)).toEqual({ state: "resolved", value: "slow" });
    expect(order).toEqual(["got the future", "slow done", "awaited it"]);
  });

  it("ids follow <parent>.<n> in call order, and an explicit id takes no number", async () => {
    const seen: string[] = [];
    const leaf = (ctx: Context) => {
      seen.push(ctx.id);
    };
    const middle = async (ctx: Context) => {
      seen.push(ctx.id);
      await ctx.run(leaf);
      await ctx.rpc("leaf");
    };
    const root = async (ctx: Context) => {
      seen.push(`${ctx.id} ${ctx.info.func} ${ctx.info.origin}`);
      await ctx.run(middle);
      await ctx.math.random();
      await ctx.run(leaf, ctx.options({ id: "chosen" }));
      await ctx.sleep(5);
      const promise = ctx.promise();
      await ctx.rpc("middle");
      await ctx.detached("apart", "leaf");
      return promise.id;
    };
    const outcome = await runPlain(root, [], {
      id: "wf",
      functions: functions({ leaf, middle }),
      external: () => ({ state: "resolved", value: null }),
    });
    expect(outcome).toEqual({ state: "resolved", value: "wf.4" });
    expect(seen).toEqual([
      "wf root wf",
      "wf.1",
      "wf.1.1",
      "wf.1.2",
      "chosen",
      "wf.5",
      "wf.5.1",
      "wf.5.2",
      "apart",
    ]);
  });

  it("an error a child throws rejects its caller with the same name and message, as a decoded Error", async () => {
    const flow = async (ctx: Context) => {
      const caught: unknown[] = [];
      for (const call of [() => ctx.run(fail, "bad input"), () => ctx.rpc("fail", "far away")]) {
        try {
          await call();
        } catch (error) {
          caught.push(error);
        }
      }
      return caught.map((error) => ({
        name: (error as Error).name,
        message: (error as Error).message,
        isRangeError: error instanceof RangeError,
      }));
    };
    const outcome = await runPlain(flow, [], { functions: functions({ fail }) });
    expect(outcome).toEqual({
      state: "resolved",
      value: [
        { name: "RangeError", message: "bad input", isRangeError: false },
        { name: "RangeError", message: "far away", isRangeError: false },
      ],
    });
  });

  it("a function that throws, even a non-Error, gives a rejected outcome with an Error", async () => {
    const outcome = await runPlain(async (ctx: Context) => {
      await ctx.run(() => {
        throw "plain string";
      });
    });
    expect(outcome.state).toBe("rejected");
    expect(outcome.state === "rejected" && outcome.error).toBeInstanceOf(Error);
    expect(outcome.state === "rejected" && outcome.error.message).toBe("plain string");
  });

  it("a step runs exactly once: a throwing step is not retried", async () => {
    let attempts = 0;
    const flaky = () => {
      attempts += 1;
      if (attempts === 1) throw new Error("first attempt fails");
      return "second attempt";
    };
    const outcome = await runPlain(async (ctx: Context) => ctx.run(flaky));
    expect(outcome.state === "rejected" && outcome.error.message).toBe("first attempt fails");
    expect(attempts).toBe(1);
  });

  it("a child started with beginRun and never awaited still runs before its parent settles", async () => {
    const order: string[] = [];
    const slow = async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      order.push("slow done");
    };
    const failing = async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      throw new Error("nobody listens");
    };
    const inner = (ctx: Context) => {
      ctx.beginRun(slow);
      ctx.beginRun(failing);
      return "inner";
    };
    const outer = async (ctx: Context) => {
      const value = await ctx.run(inner);
      order.push("inner settled");
      return value;
    };
    expect(await runPlain(outer)).toEqual({ state: "resolved", value: "inner" });
    expect(order).toEqual(["slow done", "inner settled"]);
  });

  it("a detached call is not awaited by its parent but finishes before runPlain returns", async () => {
    const order: string[] = [];
    const background = async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      order.push("background done");
    };
    const root = (ctx: Context) => {
      ctx.detached("job-1", "background");
      order.push("root returned");
      return "root";
    };
    const inner = async (ctx: Context) => {
      await ctx.run(root);
      order.push("root settled");
    };
    await runPlain(inner, [], { functions: functions({ background }) });
    expect(order).toEqual(["root returned", "root settled", "background done"]);
  });

  it("trailing ctx.options are stripped from the arguments of every kind of call", async () => {
    const seen: unknown[][] = [];
    const record = (_ctx: Context, ...args: unknown[]) => {
      seen.push(args);
    };
    const flow = async (ctx: Context) => {
      const options = ctx.options({ timeout: 1000, tags: { a: "b" } });
      await ctx.run(record, 1, 2, options);
      await ctx.beginRun(record, 3, options);
      await ctx.rpc("record", 4, { plain: "object" }, options);
      await ctx.beginRpc("record", 5, options);
      await ctx.detached("d", "record", 6, options);
    };
    await runPlain(flow, [], { functions: functions({ record }) });
    expect(seen).toEqual([[1, 2], [3], [4, { plain: "object" }], [5], [6]]);
  });

  it("an rpc to a name no function answers rejects naming it", async () => {
    const flow = async (ctx: Context) => ctx.rpc("nowhere", 1);
    const outcome = await runPlain(flow, [], { id: "wf", functions: () => undefined });
    expect(outcome.state === "rejected" && outcome.error.message).toBe(
      "cannot run wf.1: function nowhere is not registered here",
    );
    const byName = await runPlain(async (ctx: Context) => ctx.run("missing"));
    expect(byName.state === "rejected" && byName.error.message).toBe("no function registered as missing");
  });

  it("ctx.promise takes its value from external, and rejects when none is given", async () => {
    const calls: unknown[] = [];
    const flow = async (ctx: Context) => {
      const approved = await ctx.promise<{ ok: boolean }>({ id: "approval", tags: { who: "me" } });
      let denied = "";
      try {
        await ctx.promise();
      } catch (error) {
        denied = (error as Error).message;
      }
      return { approved, denied };
    };
    const outcome = await runPlain(flow, [], {
      id: "wf",
      external: (settings, id) => {
        calls.push({ settings, id });
        return id === "approval"
          ? { state: "resolved", value: { ok: true } }
          : { state: "rejected", error: new Error("denied") };
      },
    });
    expect(outcome).toEqual({ state: "resolved", value: { approved: { ok: true }, denied: "denied" } });
    expect(calls).toEqual([
      { settings: { id: "approval", tags: { who: "me" } }, id: "approval" },
      { settings: {}, id: "wf.1" },
    ]);
    const without = await runPlain(async (ctx: Context) => ctx.promise());
    expect(without.state === "rejected" && without.error.message).toMatch(/no external settler was given/);
  });

  it("values cross the codec: undefined fields drop, dates become strings, rpc arguments arrive decoded", async () => {
    const echo = (_ctx: Context, value: unknown) => value;
    const flow = async (ctx: Context) => ({
      local: await ctx.run(() => ({ kept: 1, dropped: undefined, at: new Date(0) })),
      remote: await ctx.rpc("echo", [undefined, new Date(0)]),
    });
    const outcome = await runPlain(flow, [], { functions: functions({ echo }) });
    expect(outcome).toEqual({
      state: "resolved",
      value: {
        local: { kept: 1, at: "1970-01-01T00:00:00.000Z" },
        remote: [null, "1970-01-01T00:00:00.000Z"],
      },
    });
  });

  it("an argument JSON cannot carry throws at the call site, naming it", async () => {
    const flow = async (ctx: Context) => {
      try {
        await ctx.run(double, 10n);
      } catch (error) {
        return (error as Error).message;
      }
    };
    const outcome = await runPlain(flow, [], { id: "wf" });
    expect(outcome).toEqual({
      state: "resolved",
      value: "arguments of double (wf.1).args[0]: a bigint is not JSON-serializable",
    });
  });

  it("dependencies, sleep and a misused yield behave as in the SDK", async () => {
    const slept: unknown[] = [];
    const flow = function* (ctx: Context) {
      const db = ctx.getDependency<string>("db");
      yield* ctx.sleep({ until: new Date(5000) });
      let misuse = "";
      try {
        yield 42;
      } catch (error) {
        misuse = (error as Error).message;
      }
      let missing = "";
      try {
        ctx.getDependency("cache");
      } catch (error) {
        missing = (error as Error).message;
      }
      return { db, misuse, missing };
    };
    const outcome = await runPlain(flow, [], {
      id: "wf",
      dependencies: new Map([["db", "sqlite"]]),
      sleep: (duration, id) => {
        slept.push({ duration, id });
      },
    });
    expect(outcome).toEqual({
      state: "resolved",
      value: {
        db: "sqlite",
        misuse: "a durable function yields only durable calls: write yield* ctx.run(…)",
        missing: "no dependency named cache; set it with setDependency",
      },
    });
    expect(slept).toEqual([{ duration: { until: new Date(5000) }, id: "wf.1" }]);
  });

  it("calls naming the same id share one settlement and run once", async () => {
    let runs = 0;
    const job = () => {
      runs += 1;
      return runs;
    };
    const flow = async (ctx: Context) => [
      await ctx.detached("job", "job"),
      await ctx.detached("job", "job"),
      await ctx.rpc("job", ctx.options({ id: "job" })),
    ];
    const outcome = await runPlain(flow, [], { functions: functions({ job }) });
    expect(outcome).toEqual({ state: "resolved", value: [1, 1, 1] });
    expect(runs).toBe(1);
  });
});
