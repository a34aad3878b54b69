/**
 * Regressions: each test pins a behaviour issue 3 / INTERFACES.md promises that
 * an earlier SDK broke (B1 nested functions never suspended, B2/B3 a failing
 * function settled before its children, B4 the default version, B6 orchestrating
 * functions retried by default). Every wait is bounded (`within`), so a hang
 * fails in about two seconds instead of the 30 s test timeout.
 */
import { describe, expect, it } from "vitest";
import type { Context } from "../../src/index.js";
import { counter, delay, ENGINES, harnessFactory, promiseExists, rejection, useCleanups } from "./support.js";

const cleanup = useCleanups();
const server = harnessFactory(cleanup);

const STUCK = "still waiting after the deadline" as const;
function within<T>(promise: Promise<T>, ms = 2000): Promise<T | typeof STUCK> {
  return Promise.race([promise, delay(ms).then((): typeof STUCK => STUCK)]);
}

describe.each(ENGINES)("regression (%s engine)", (engine) => {
  const isAsync = engine === "async";
  const id = (name: string) => `${name}-${engine}`;

  // B1 — src/sdk/engine/execution.ts localCall: the child's whole run (`attempts`) is inside `track`,
  // so `busy > 0` while a nested durable function waits on another process; checkBlocked never
  // suspends, no callback is registered, and the execution waits forever.
  it("B1 a nested durable function that sleeps suspends and resumes, its steps before the sleep running once", async () => {
    const h = server();
    const pledge = h.client();
    const count = counter();
    const step = (_ctx: Context, name: string) => {
      count.hit(name);
      return name;
    };
    const inner = isAsync
      ? async (ctx: Context) => {
          count.hit("inner");
          await ctx.run(step, "in-1");
          await ctx.sleep(60);
          return ctx.run(step, "in-2");
        }
      : function* (ctx: Context) {
          count.hit("inner");
          yield* ctx.run(step, "in-1");
          yield* ctx.sleep(60);
          return yield* ctx.run(step, "in-2");
        };
    pledge.register(
      "outer",
      isAsync
        ? async (ctx: Context) => {
            await ctx.run(step, "before");
            return ctx.run(inner);
          }
        : function* (ctx: Context) {
            yield* ctx.run(step, "before");
            return yield* ctx.run(inner);
          },
    );
    expect(await within(pledge.run(id("b1-sleep"), "outer"))).toBe("in-2");
    expect(count.all()).toEqual({ before: 1, "in-1": 1, "in-2": 1, inner: 2 });
  });

  it("B1 a nested durable function awaiting a latent promise resumes when it is resolved", async () => {
    const h = server();
    const pledge = h.client();
    const gate = id("b1-gate");
    const inner = isAsync
      ? async (ctx: Context) => ctx.promise<string>({ id: gate })
      : function* (ctx: Context) {
          return yield* ctx.promise<string>({ id: gate });
        };
    pledge.register(
      "outerLatent",
      isAsync
        ? async (ctx: Context) => ctx.run(inner)
        : function* (ctx: Context) {
            return yield* ctx.run(inner);
          },
    );
    const handle = await pledge.beginRun(id("b1-latent"), "outerLatent");
    await promiseExists(h, gate);
    await pledge.promises.resolve(gate, "approved");
    expect(await within(handle.result())).toBe("approved");
  });

  it("B1 a nested durable function making a remote call resumes with its value", async () => {
    const h = server();
    const pledge = h.client();
    pledge.register("leaf", () => "leaf");
    const inner = isAsync
      ? async (ctx: Context) => ctx.rpc<string>("leaf")
      : function* (ctx: Context) {
          return yield* ctx.rpc<string>("leaf");
        };
    pledge.register(
      "outerRpc",
      isAsync
        ? async (ctx: Context) => ctx.run(inner)
        : function* (ctx: Context) {
            return yield* ctx.run(inner);
          },
    );
    expect(await within(pledge.run(id("b1-rpc"), "outerRpc"))).toBe("leaf");
  });

  // B2 — src/sdk/engine/execution.ts runFrame: children are awaited only when `fn` returns; when it
  // throws, the frame settles at once (X3 broken on the error path). For the root, `finish` then
  // stops every write, so a local child is left `pending` forever (never run, or its result dropped).
  it("B2 a function that throws settles only after every child it started has settled", async () => {
    const h = server();
    const pledge = h.client();
    let childDone = false;
    const slow = async () => {
      await delay(100);
      childDone = true;
      return "child";
    };
    pledge.register(
      "throwsAfterStart",
      isAsync
        ? async (ctx: Context) => {
            void ctx.beginRun(slow);
            await delay(10);
            throw new Error("parent failed");
          }
        : function* (ctx: Context) {
            yield* ctx.beginRun(slow);
            throw new Error("parent failed");
          },
    );
    const root = id("b2-throw");
    expect((await rejection(pledge.run(root, "throwsAfterStart"))).message).toBe("parent failed");
    expect(childDone).toBe(true);
    expect(h.record(`${root}.1`)?.state).toBe("resolved");
  });

  it("B2 a fan-in whose first child fails settles only after the other children have settled", async () => {
    const h = server();
    const pledge = h.client();
    const slow = async () => {
      await delay(100);
      return 1;
    };
    const fails = () => {
      throw new Error("fast failure");
    };
    const never = { retry: { kind: "never" as const } };
    pledge.register(
      "fanInFails",
      isAsync
        ? async (ctx: Context) => Promise.all([ctx.beginRun(slow), ctx.beginRun(fails, ctx.options(never))])
        : function* (ctx: Context) {
            const a = yield* ctx.beginRun(slow);
            const b = yield* ctx.beginRun(fails, ctx.options(never));
            return [yield* b, yield* a];
          },
    );
    const root = id("b2-fanin");
    expect((await rejection(pledge.run(root, "fanInFails"))).message).toBe("fast failure");
    expect(h.record(`${root}.1`)?.state).toBe("resolved");
  });

  // B3 — src/sdk/engine/execution.ts attempts + Frame.restart: a retried attempt restarts the child
  // sequence without waiting for the failed attempt's children, so it reuses an id whose future is
  // still live and trips the internal assertion `one live future per promise id`, which becomes
  // the step's error.
  it("B3 retrying a durable function that left a child running replays that child instead of failing on an assertion", async () => {
    const h = server();
    const pledge = h.client();
    const count = counter();
    const slow = async () => {
      count.hit("slow");
      await delay(50);
      return 1;
    };
    const flaky = isAsync
      ? async (ctx: Context) => {
          count.hit("flaky");
          void ctx.beginRun(slow);
          if (count.of("flaky") < 2) throw new Error("transient");
          return "ok";
        }
      : function* (ctx: Context) {
          count.hit("flaky");
          yield* ctx.beginRun(slow);
          if (count.of("flaky") < 2) throw new Error("transient");
          return "ok";
        };
    const retry = { retry: { kind: "constant" as const, delayMs: 10, maxAttempts: 3 } };
    pledge.register(
      "retriesWithChild",
      isAsync
        ? async (ctx: Context) => ctx.run(flaky, ctx.options(retry))
        : function* (ctx: Context) {
            return yield* ctx.run(flaky, ctx.options(retry));
          },
    );
    const outcome = await within(
      pledge.run(id("b3"), "retriesWithChild").then(
        (value) => value,
        (error: Error) => `${error.name}: ${error.message}`,
      ),
    );
    expect(outcome).toBe("ok");
    expect(count.all()).toEqual({ flaky: 2, slow: 1 });
  });

  // B4 — src/sdk/client.ts invocation (and engine/execution.ts remote/localCall): the param's
  // version defaults to 1 (`options.version ?? 1`), and the worker looks that exact version up; but
  // CallOptions.version is documented "default the latest".
  it("B4 run by name without a version runs the latest registered version", async () => {
    const h = server({ expectNoErrors: false });
    const pledge = h.client();
    pledge.register("versioned", isAsync ? async () => "v2" : versionGen("v2"), { version: 2 });
    const onlyV2 = await pledge.run(id("b4-only-v2"), "versioned").then(
      (value) => value,
      (error: Error) => error.message,
    );
    expect(onlyV2).toBe("v2");
    pledge.register("versioned", isAsync ? async () => "v1" : versionGen("v1"), { version: 1 });
    expect(await pledge.run(id("b4-both"), "versioned")).toBe("v2");
    expect(await pledge.rpc(id("b4-rpc"), "versioned")).toBe("v2");
  });

  // B6 — src/sdk/engine/execution.ts attempts: the default exponential policy applies to every
  // ctx.run, also to a durable function that makes durable calls (INTERFACES: the default is for
  // local ctx.run *leaves*). A failure that comes from a recorded child is replayed identically on
  // every retry: up to 10 attempts and ~51 s of backoff for a deterministic failure.
  it("B6 a durable function failing because its child failed is not retried by default", async () => {
    const h = server();
    const pledge = h.client();
    const count = counter();
    const leaf = () => {
      count.hit("leaf");
      throw new Error("leaf failed");
    };
    const middle = isAsync
      ? async (ctx: Context) => {
          count.hit("middle");
          return ctx.run(leaf, ctx.options({ retry: { kind: "never" } }));
        }
      : function* (ctx: Context) {
          count.hit("middle");
          return yield* ctx.run(leaf, ctx.options({ retry: { kind: "never" } }));
        };
    pledge.register(
      "nonLeaf",
      isAsync
        ? async (ctx: Context) => ctx.run(middle)
        : function* (ctx: Context) {
            return yield* ctx.run(middle);
          },
    );
    const outcome = await within(
      pledge.run(id("b6"), "nonLeaf").then(
        () => "resolved",
        (error: Error) => error.message,
      ),
      1000,
    );
    expect(outcome).toBe("leaf failed");
    expect(count.all()).toEqual({ leaf: 1, middle: 1 });
  });
});

function versionGen(value: string) {
  // biome-ignore lint/correctness/useYield: returns at once.
  return function* (_ctx: Context) {
    return value;
  };
}
