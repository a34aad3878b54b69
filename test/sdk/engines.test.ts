/**
 * Two engines, one semantics (issue 3 §2): the same workloads written as async
 * functions (`await`) and as generator functions (`yield*`) leave identical
 * promise records — ids, tags, states, params and values — not only identical
 * results. Each engine runs a workload on a fresh server, so the ids are the
 * same on both sides; only instants (createdAt, settledAt, timeoutAt) and the
 * `stack` of serialized errors (which names source lines) are left out.
 */
import { describe, expect, it } from "vitest";
import type { Context } from "../../src/index.js";
import type { PromiseRecord } from "../../src/protocol/records.js";
import {
  decodeValue,
  ENGINES,
  type Engine,
  type Harness,
  harnessFactory,
  promiseExists,
  timeless,
  until,
  useCleanups,
} from "./support.js";

const cleanup = useCleanups();
const server = harnessFactory(cleanup);

/** A record as compared across engines: no instants, values decoded, error stacks dropped. */
function comparable(record: PromiseRecord) {
  const decoded = (value: PromiseRecord["value"]) => {
    const data = decodeValue(value);
    if (typeof data === "object" && data !== null && (data as { __type?: unknown }).__type === "error") {
      const { stack: _stack, ...error } = data as Record<string, unknown>;
      return { headers: value?.headers, data: error };
    }
    return { headers: value?.headers, data };
  };
  return { ...timeless(record), param: decoded(record.param), value: decoded(record.value) };
}

interface Workload {
  /** Registers the workload's functions for `engine`, runs it, and returns its outcome. */
  run(h: Harness, engine: Engine): Promise<unknown>;
  /** The promise ids the workload leaves (a sanity check that it did what it says). */
  ids: string[];
  /** What the run answers, on both engines. */
  outcome: unknown;
}

async function outcome(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => ({ value }),
    (error: Error) => ({ error: { name: error.name, message: error.message } }),
  );
}

const double = (_ctx: Context, n: number) => n * 2;
const fail = (_ctx: Context, message: string) => {
  throw new RangeError(message);
};
const never = { retry: { kind: "never" as const } };

const WORKLOADS: Record<string, Workload> = {
  "sequential steps, a nested function, a caught step error and a recorded random": {
    outcome: { value: { a: 6, b: 12, pairs: [24, 26], caught: "too far", random: 0.125 } },
    ids: ["seq", "seq.1", "seq.2", "seq.3", "seq.3.1", "seq.3.2", "seq.4", "seq.5"],
    async run(h, engine) {
      let draws = 0;
      const pledge = h.client({ random: () => ++draws / 8 });
      const pair =
        engine === "async"
          ? async (ctx: Context, n: number) => [await ctx.run(double, n), await ctx.run(double, n + 1)]
          : function* (ctx: Context, n: number) {
              return [yield* ctx.run(double, n), yield* ctx.run(double, n + 1)];
            };
      pledge.register(
        "sequence",
        engine === "async"
          ? async (ctx: Context, n: number) => {
              const a = await ctx.run(double, n);
              const b = await ctx.run(double, a);
              const pairs = await ctx.run(pair, b);
              let caught = "";
              try {
                await ctx.run(fail, "too far", ctx.options(never));
              } catch (error) {
                caught = (error as Error).message;
              }
              const random = await ctx.math.random();
              return { a, b, pairs, caught, random };
            }
          : function* (ctx: Context, n: number) {
              const a = yield* ctx.run(double, n);
              const b = yield* ctx.run(double, a);
              const pairs = yield* ctx.run(pair, b);
              let caught = "";
              try {
                yield* ctx.run(fail, "too far", ctx.options(never));
              } catch (error) {
                caught = (error as Error).message;
              }
              const random = yield* ctx.math.random();
              return { a, b, pairs, caught, random };
            },
      );
      return outcome(pledge.run("seq", "sequence", 3));
    },
  },

  "fan-out with beginRun and fan-in": {
    outcome: { value: { values: [2, 4, 6], nested: 42, total: 24 } },
    ids: ["fan", "fan.1", "fan.2", "fan.3", "fan.4", "fan.4.1", "fan.4.2", "fan.5"],
    async run(h, engine) {
      const pledge = h.client();
      const slowDouble = async (_ctx: Context, n: number) => {
        await new Promise((resolve) => setTimeout(resolve, 5 * (4 - n)));
        return n * 2;
      };
      const nested =
        engine === "async"
          ? async (ctx: Context, n: number) => {
              const [x, y] = await Promise.all([ctx.beginRun(double, n), ctx.beginRun(double, n + 1)]);
              return (x as number) + (y as number);
            }
          : function* (ctx: Context, n: number) {
              const x = yield* ctx.beginRun(double, n);
              const y = yield* ctx.beginRun(double, n + 1);
              return (yield* x) + (yield* y);
            };
      pledge.register(
        "fanOut",
        engine === "async"
          ? async (ctx: Context, ns: number[]) => {
              const started = ns.map((n) => ctx.beginRun(slowDouble, n));
              const nestedStarted = ctx.beginRun(nested, 10);
              const values = await Promise.all(started);
              const total = await ctx.run(
                double,
                values.reduce((sum, v) => sum + v, 0),
              );
              return { values, nested: await nestedStarted, total };
            }
          : function* (ctx: Context, ns: number[]) {
              const started = [];
              for (const n of ns) started.push(yield* ctx.beginRun(slowDouble, n));
              const nestedStarted = yield* ctx.beginRun(nested, 10);
              const values: number[] = [];
              for (const future of started) values.push(yield* future);
              const total = yield* ctx.run(
                double,
                values.reduce((sum, v) => sum + v, 0),
              );
              return { values, nested: yield* nestedStarted, total };
            },
      );
      return outcome(pledge.run("fan", "fanOut", [1, 2, 3]));
    },
  },

  "remote calls across groups, one failing": {
    outcome: { value: { both: [2, 4], refused: "RangeError: remote refused", last: 10 } },
    ids: ["rpc", "rpc.1", "rpc.1.1", "rpc.2", "rpc.2.1", "rpc.3", "rpc.3.1", "rpc.4", "rpc.4.1"],
    async run(h, engine) {
      const caller = h.client("a");
      const callee = h.client("b");
      callee.register(
        "remoteDouble",
        engine === "async"
          ? async (ctx: Context, n: number) => ctx.run(double, n)
          : function* (ctx: Context, n: number) {
              return yield* ctx.run(double, n);
            },
      );
      callee.register(
        "remoteFail",
        engine === "async"
          ? async (ctx: Context) => ctx.run(fail, "remote refused", ctx.options(never))
          : function* (ctx: Context) {
              return yield* ctx.run(fail, "remote refused", ctx.options(never));
            },
      );
      const onB = (ctx: Context) => ctx.options({ target: "b" });
      caller.register(
        "caller",
        engine === "async"
          ? async (ctx: Context) => {
              const first = ctx.beginRpc<number>("remoteDouble", 1, onB(ctx));
              const second = ctx.beginRpc<number>("remoteDouble", 2, onB(ctx));
              const both = await Promise.all([first, second]);
              let refused = "";
              try {
                await ctx.rpc("remoteFail", onB(ctx));
              } catch (error) {
                refused = `${(error as Error).name}: ${(error as Error).message}`;
              }
              const last = await ctx.rpc<number>(
                "remoteDouble",
                5,
                ctx.options({ target: "b", tags: { k: "v" } }),
              );
              return { both, refused, last };
            }
          : function* (ctx: Context) {
              const first = yield* ctx.beginRpc<number>("remoteDouble", 1, onB(ctx));
              const second = yield* ctx.beginRpc<number>("remoteDouble", 2, onB(ctx));
              const both = [yield* first, yield* second];
              let refused = "";
              try {
                yield* ctx.rpc("remoteFail", onB(ctx));
              } catch (error) {
                refused = `${(error as Error).name}: ${(error as Error).message}`;
              }
              const last = yield* ctx.rpc<number>(
                "remoteDouble",
                5,
                ctx.options({ target: "b", tags: { k: "v" } }),
              );
              return { both, refused, last };
            },
      );
      return outcome(caller.run("rpc", "caller"));
    },
  },

  "a sleep and latent promises settled from outside": {
    outcome: { value: { before: 2, approval: { ok: true }, rejected: "said no", after: 4 } },
    ids: ["nap", "nap.1", "nap.2", "nap.3", "nap.4", "nap.5", "nap.6"],
    async run(h, engine) {
      const pledge = h.client();
      pledge.register(
        "napAndWait",
        engine === "async"
          ? async (ctx: Context) => {
              const before = await ctx.run(double, 1);
              await ctx.sleep(50);
              const approval = await ctx.promise<{ ok: boolean }>({ tags: { kind: "approval" } });
              let rejected = "";
              try {
                await ctx.promise();
              } catch (error) {
                rejected = (error as Error).message;
              }
              await ctx.sleep({ until: new Date(0) });
              const after = await ctx.run(double, 2);
              return { before, approval, rejected, after };
            }
          : function* (ctx: Context) {
              const before = yield* ctx.run(double, 1);
              yield* ctx.sleep(50);
              const approval = yield* ctx.promise<{ ok: boolean }>({ tags: { kind: "approval" } });
              let rejected = "";
              try {
                yield* ctx.promise();
              } catch (error) {
                rejected = (error as Error).message;
              }
              yield* ctx.sleep({ until: new Date(0) });
              const after = yield* ctx.run(double, 2);
              return { before, approval, rejected, after };
            },
      );
      const handle = await pledge.beginRun("nap", "napAndWait");
      await promiseExists(h, "nap.3");
      await pledge.promises.resolve("nap.3", { ok: true });
      await promiseExists(h, "nap.4");
      await pledge.promises.reject("nap.4", new Error("said no"));
      return outcome(handle.result());
    },
  },

  "detached calls, explicit ids, custom tags and a failing root": {
    outcome: { error: { name: "TypeError", message: "root gave up" } },
    ids: ["root-fails", "root-fails.1", "bg-1", "bg-1.1", "explicit-step"],
    async run(h, engine) {
      const pledge = h.client();
      pledge.register(
        "background",
        engine === "async"
          ? async (ctx: Context) => ctx.run(double, 21)
          : function* (ctx: Context) {
              return yield* ctx.run(double, 21);
            },
      );
      pledge.register(
        "failsLast",
        engine === "async"
          ? async (ctx: Context) => {
              await ctx.run(double, 2, ctx.options({ tags: { audit: "no" } }));
              await ctx.detached("bg-1", "background");
              await ctx.run(double, 1, ctx.options({ id: "explicit-step", tags: { audit: "yes" } }));
              throw new TypeError("root gave up");
            }
          : function* (ctx: Context) {
              yield* ctx.run(double, 2, ctx.options({ tags: { audit: "no" } }));
              yield* yield* ctx.detached("bg-1", "background");
              yield* ctx.run(double, 1, ctx.options({ id: "explicit-step", tags: { audit: "yes" } }));
              throw new TypeError("root gave up");
            },
      );
      return outcome(pledge.run("root-fails", "failsLast", pledge.options({ tags: { team: "pay" } })));
    },
  },
};

describe("the async and generator engines", () => {
  for (const [name, workload] of Object.entries(WORKLOADS)) {
    it(`give the same answer and leave identical promise records for ${name}`, async () => {
      const results: Record<string, { outcome: unknown; records: unknown[] }> = {};
      for (const engine of ENGINES) {
        const h = server();
        const result = await workload.run(h, engine);
        // Let detached or fire-and-forget work finish before reading the store.
        await until(
          () => h.records().every((record) => record.state !== "pending"),
          "every promise to settle",
        );
        expect(result, engine).toEqual(workload.outcome);
        results[engine] = { outcome: result, records: h.records().map(comparable) };
        expect(
          h
            .records()
            .map((record) => record.id)
            .sort(),
        ).toEqual([...workload.ids].sort());
      }
      expect(results.generator).toEqual(results.async);
    });
  }
});
