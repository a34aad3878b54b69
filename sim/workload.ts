/**
 * Generated durable programs. A `Program` is data: a list of operations (steps
 * with recorded side effects, local and remote calls, calls started now and
 * joined later, sleeps, external promises, detached executions, recorded
 * randomness, external promises nobody settles, which time out, calls whose
 * deadline passes while their callee still sleeps). One interpreter, written twice — as an async function and as a
 * generator function — runs a program through `ctx`, so the same program runs
 * on both SDK engines, and a task may move from one engine to the other when
 * its process crashes. The same async interpreter also runs through the plain
 * (non-durable) context: that run is the reference result (invariant a).
 *
 * A step's result depends only on its arguments; its side effect (the
 * `Effects` log) is what the checkers read for invariant d and for recording
 * determinism.
 */
import { NonRetryableError } from "../src/sdk/retry.js";
import type { Random } from "../src/testing/random.js";

export type Op =
  | { kind: "step"; key: string; input: number; fails: boolean }
  | { kind: "run"; program: Program }
  | { kind: "rpc"; program: Program; group: string }
  | { kind: "beginRun"; program: Program }
  | { kind: "beginRpc"; program: Program; group: string }
  | { kind: "join" }
  | { kind: "sleep"; ms: number }
  | { kind: "promise"; value: number }
  | { kind: "deadline"; ms: number }
  | { kind: "abandon"; group: string }
  | { kind: "detached"; id: string; program: Program; group: string }
  | { kind: "random" };

export interface Program {
  ops: Op[];
  /** The function fails with this message after its operations (its caller catches it). */
  throws?: string;
}

export interface Root {
  id: string;
  group: string;
  program: Program;
}

/** Tags of an external promise the settler resolves: its value is part of the program. */
export const LATENT_TAG = "sim:latent";
export const VALUE_TAG = "sim:value";
const DAY_MS = 24 * 60 * 60 * 1000;
/** An abandoned call: its deadline, and how long its callee sleeps (always longer). */
const ABANDON_MS = 5_000;
const SLEEPER_MS = 60_000;

export interface WorkloadShape {
  groups: string[];
  roots: number;
  maxDepth: number;
  maxOps: number;
}

/** Draws the roots of one run; every detached execution gets a globally unique id. */
export function generateRoots(random: Random, shape: WorkloadShape): { roots: Root[]; detached: Root[] } {
  const detached: Root[] = [];
  let keys = 0;
  let detachedIds = 0;
  const program = (depth: number): Program => {
    const ops: Op[] = [];
    const count = random.int(1, shape.maxOps);
    for (let index = 0; index < count; index++) {
      const nested = depth < shape.maxDepth;
      const kind = random.weighted<Op["kind"]>([
        ["step", 6],
        ["run", nested ? 2 : 0],
        ["rpc", nested ? 2 : 0],
        ["beginRun", nested ? 1.5 : 0],
        ["beginRpc", nested ? 1.5 : 0],
        ["join", 1.5],
        ["sleep", 1],
        ["promise", 1],
        ["deadline", 1],
        ["abandon", 0.5],
        ["detached", nested ? 0.4 : 0],
        ["random", 1],
      ]);
      const group = random.pick(shape.groups);
      switch (kind) {
        case "step":
          ops.push({ kind, key: `k${keys++}`, input: random.int(0, 999), fails: random.bool(0.1) });
          break;
        case "run":
        case "beginRun":
          ops.push({ kind, program: program(depth + 1) });
          break;
        case "rpc":
        case "beginRpc":
          ops.push({ kind, program: program(depth + 1), group });
          break;
        case "detached": {
          const id = `detached-${detachedIds++}`;
          const child = program(depth + 1);
          detached.push({ id, group, program: child });
          ops.push({ kind, id, program: child, group });
          break;
        }
        case "sleep":
          ops.push({ kind, ms: random.pick([0, 10, 500, 5_000, 60_000]) });
          break;
        case "promise":
          ops.push({ kind, value: random.int(0, 999) });
          break;
        case "deadline":
          ops.push({ kind, ms: random.pick([1, 1_000, 20_000]) });
          break;
        case "abandon":
          ops.push({ kind, group });
          break;
        default:
          ops.push({ kind } as Op);
      }
    }
    return random.bool(0.15) ? { ops, throws: `boom-${keys++}` } : { ops };
  };
  const roots = Array.from({ length: shape.roots }, (_, index) => ({
    id: `root-${index}`,
    group: random.pick(shape.groups),
    program: program(0),
  }));
  return { roots, detached };
}

/** What a step does besides returning: recorded by the simulated process that ran it. */
export interface StepHooks {
  /** Records the side effect of step `id` (its promise id) with its arguments. */
  effect(id: string, args: unknown[]): void;
  /** Maybe crash the process right after the effect; true means "crashed, never return". */
  crashPoint(): boolean;
}

/**
 * The result of step `key` on `input` (pure). A recorded random number reaches
 * the step as an argument (checked for recording determinism) but not its result,
 * which the plain reference must be able to compute.
 */
export function stepResult(key: string, input: number): string {
  return `${key}:${input * 3 + 1}`;
}

// biome-ignore lint/suspicious/noExplicitAny: the SDK's and the plain context share this shape.
type Ctx = any;

/** The interpreter's functions for one process (or for the plain reference when `hooks` is absent). */
export function programFunctions(hooks?: StepHooks) {
  const step = (ctx: Ctx, key: string, input: number, fails: boolean, extra: number | null): unknown => {
    hooks?.effect(ctx.id as string, [key, input, fails, extra]);
    if (hooks?.crashPoint()) return new Promise(() => {});
    if (fails) throw new NonRetryableError(`${key} failed`);
    return stepResult(key, input);
  };

  async function node(ctx: Ctx, program: Program): Promise<unknown[]> {
    const results: unknown[] = [];
    const started: PromiseLike<unknown>[] = [];
    let extra: number | null = null;
    for (const op of program.ops) {
      switch (op.kind) {
        case "step":
          try {
            results.push(await ctx.run(step, op.key, op.input, op.fails, extra));
          } catch (error) {
            results.push(`!${(error as Error).message}`);
          }
          extra = null;
          break;
        case "run":
          results.push(await caught(ctx.run(node, op.program)));
          break;
        case "rpc":
          results.push(await caught(ctx.rpc("node", op.program, ctx.options({ target: op.group }))));
          break;
        case "beginRun":
          started.push(ctx.beginRun(node, op.program));
          break;
        case "beginRpc":
          started.push(ctx.beginRpc("node", op.program, ctx.options({ target: op.group })));
          break;
        case "join": {
          const next = started.shift();
          if (next !== undefined) results.push(await caught(next));
          break;
        }
        case "sleep":
          await ctx.sleep(op.ms);
          results.push("z");
          break;
        case "promise":
          results.push(await ctx.promise({ timeout: DAY_MS, tags: latentTags(op.value) }));
          break;
        case "deadline":
          try {
            results.push(await ctx.promise({ timeout: op.ms }));
          } catch (error) {
            results.push((error as Error).name);
          }
          break;
        case "abandon":
          try {
            results.push(
              await ctx.rpc("sleeper", SLEEPER_MS, ctx.options({ target: op.group, timeout: ABANDON_MS })),
            );
          } catch (error) {
            results.push((error as Error).name);
          }
          break;
        case "detached":
          ctx.detached(op.id, "node", op.program, ctx.options({ target: op.group }));
          results.push("d");
          break;
        case "random":
          extra = await ctx.math.random();
          break;
      }
    }
    for (const rest of started) results.push(await caught(rest));
    if (program.throws !== undefined) throw new NonRetryableError(program.throws);
    return results;
  }

  function* nodeGenerator(ctx: Ctx, program: Program): Generator<unknown, unknown[], unknown> {
    const results: unknown[] = [];
    const started: unknown[] = [];
    let extra: number | null = null;
    for (const op of program.ops) {
      switch (op.kind) {
        case "step":
          try {
            results.push(yield* ctx.run(step, op.key, op.input, op.fails, extra));
          } catch (error) {
            results.push(`!${(error as Error).message}`);
          }
          extra = null;
          break;
        case "run":
          results.push(yield* caughtYield(ctx.run(nodeGenerator, op.program)));
          break;
        case "rpc":
          results.push(yield* caughtYield(ctx.rpc("node", op.program, ctx.options({ target: op.group }))));
          break;
        case "beginRun":
          started.push(yield* ctx.beginRun(nodeGenerator, op.program));
          break;
        case "beginRpc":
          started.push(yield* ctx.beginRpc("node", op.program, ctx.options({ target: op.group })));
          break;
        case "join": {
          const next = started.shift();
          if (next !== undefined) results.push(yield* caughtYield(next as Iterable<unknown>));
          break;
        }
        case "sleep":
          yield* ctx.sleep(op.ms);
          results.push("z");
          break;
        case "promise":
          results.push(yield* ctx.promise({ timeout: DAY_MS, tags: latentTags(op.value) }));
          break;
        case "deadline":
          try {
            results.push(yield* ctx.promise({ timeout: op.ms }));
          } catch (error) {
            results.push((error as Error).name);
          }
          break;
        case "abandon":
          try {
            results.push(
              yield* ctx.rpc("sleeper", SLEEPER_MS, ctx.options({ target: op.group, timeout: ABANDON_MS })),
            );
          } catch (error) {
            results.push((error as Error).name);
          }
          break;
        case "detached":
          ctx.detached(op.id, "node", op.program, ctx.options({ target: op.group }));
          results.push("d");
          break;
        case "random":
          extra = (yield* ctx.math.random()) as number;
          break;
      }
    }
    for (const rest of started) results.push(yield* caughtYield(rest as Iterable<unknown>));
    if (program.throws !== undefined) throw new NonRetryableError(program.throws);
    return results;
  }

  // Called with a deadline far shorter than its sleep: its promise times out while its task waits,
  // so the sleep's settlement later meets a dead awaiter. Plain code knows the outcome up front.
  async function sleeper(ctx: Ctx, ms: number): Promise<string> {
    if (hooks === undefined) throw Object.assign(new Error("timed out"), { name: "TimeoutError" });
    await ctx.sleep(ms);
    return "woke";
  }

  function* sleeperGenerator(ctx: Ctx, ms: number): Generator<unknown, string, unknown> {
    yield* ctx.sleep(ms);
    return "woke";
  }

  return { step, node, nodeGenerator, sleeper, sleeperGenerator };
}

/** A call's value, or `!message` when it failed. */
async function caught(call: PromiseLike<unknown>): Promise<unknown> {
  try {
    return await call;
  } catch (error) {
    return `!${(error as Error).message}`;
  }
}

function* caughtYield(call: Iterable<unknown>): Generator<unknown, unknown, unknown> {
  try {
    return yield* call;
  } catch (error) {
    return `!${(error as Error).message}`;
  }
}

export function latentTags(value: number): Record<string, string> {
  return { [LATENT_TAG]: "true", [VALUE_TAG]: String(value) };
}
