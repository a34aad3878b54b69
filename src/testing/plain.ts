/**
 * A plain, non-durable twin of `ctx` (src/sdk/engine/context.ts): the reference
 * the simulator checks interruption transparency against (a durable function's
 * result under crashes equals its result run as plain code without faults).
 *
 * What it owns: calling a durable function, async or generator, with a
 * `PlainContext`; running every call at once in this process; the plain futures
 * that `await` and `yield*` both understand. It shares no code with the engine
 * (only its types): it goes through the SDK's codec and options alone, so what
 * plain code sees is what durable code sees. Faults, comparisons and seeds are
 * the simulator's; promises, tasks, leases, timers and suspension do not exist here.
 *
 * Invariants:
 *  P1  Ids depend only on program order, as in the engine (X1): a call takes
 *      `options.id ?? <frame id>.<n>` synchronously when it is made.
 *  P2  Every value crosses the SDK's codec as it would cross the wire: a result
 *      resolves as `decode(encode(value))`, an error rejects as
 *      `toError(decode(encode(toError(thrown))))`, an rpc's arguments arrive
 *      decoded; an argument JSON cannot carry throws at the call site.
 *  P3  A frame settles only after every child it started has settled, detached
 *      calls excepted (the engine's X3); a failure nobody awaited changes nothing.
 *  P4  `runPlain` returns only once all the work it started has settled,
 *      detached calls included, so nothing of a run goes on after it.
 *  P5  A call naming an id already used in this run shares that id's settlement
 *      and runs nothing again (a durable promise is created once).
 *  P6  Each function runs exactly once: no retries. The engine retries a leaf
 *      step that throws (retry.ts; `NonRetryableError` stops it); plain mode
 *      propagates the first throw, so a reference run needs steps that fail
 *      deterministically or not at all.
 */
import { assertSerializable, decode, encode, toError } from "../sdk/codec.js";
import type { ContextInfo, ResultOf } from "../sdk/engine/context.js";
import type { DurableFunction } from "../sdk/engine/execution.js";
import { type CallOptions, type Options, options, splitOptions } from "../sdk/options.js";
import { NonRetryableError } from "../sdk/retry.js";

/** How a plain call (or a whole run) ended, values and errors decoded (P2). */
export type PlainOutcome<T = unknown> = { state: "resolved"; value: T } | { state: "rejected"; error: Error };

/** What `ctx.promise(settings)` receives, as in the SDK. */
export interface PromiseSettings {
  id?: string;
  timeout?: number;
  tags?: Record<string, string>;
}

export interface PlainOptions {
  /** The root call's id; children are `<id>.<n>`. Default `plain`. */
  id?: string;
  /** The root function's name, for `ctx.info.func`; default `fn.name`. */
  func?: string;
  /** `ctx.info.timeoutAt` of every frame (best effort: plain calls never time out). */
  timeoutAt?: number;
  /** What `rpc`, `beginRpc`, `detached` and `run(name)` call, by name. */
  functions?: (name: string) => DurableFunction | undefined;
  /** Settles `ctx.promise`; default: it rejects, saying no settler was given. */
  external?: (settings: PromiseSettings, id: string) => PlainOutcome | PromiseLike<PlainOutcome>;
  /** Called for each `ctx.sleep` with what the function passed; the sleep resolves when it returns. */
  sleep?: (duration: number | { until: Date }, id: string) => void | PromiseLike<void>;
  /** `ctx.date.now()`; default 0. */
  now?: () => number;
  /** `ctx.math.random()`; default 0. */
  random?: () => number;
  /** What `ctx.getDependency` reads. */
  dependencies?: ReadonlyMap<string, unknown>;
}

/** The same message the engine uses, so a generator's misuse reads alike in both. */
const YIELD_MISUSE = "a durable function yields only durable calls: write yield* ctx.run(…)";

/** A plain call's result: `await future` or `yield* future`, as the SDK's `Future`. */
export class PlainFuture<T> implements PromiseLike<T> {
  private readonly promise: Promise<T>;

  constructor(
    /** The id the durable call would have. */
    readonly id: string,
    settlement: Promise<PlainOutcome>,
  ) {
    this.promise = settlement.then((outcome) => {
      if (outcome.state === "rejected") throw outcome.error;
      return outcome.value as T;
    });
    // A future nobody awaits must not report an unhandled rejection.
    this.promise.catch(() => {});
  }

  // biome-ignore lint/suspicious/noThenProperty: a future is deliberately a thenable, so `await` works.
  then<R1 = T, R2 = never>(
    onResolved?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.promise.then(onResolved, onRejected);
  }

  *[Symbol.iterator](): Generator<PlainFuture<T>, T, unknown> {
    return (yield this) as T;
  }
}

/** What `beginRun` / `beginRpc` / `detached` return, as the SDK's `Started`. */
export class PlainStarted<T> implements PromiseLike<T> {
  constructor(readonly future: PlainFuture<T>) {}

  // biome-ignore lint/suspicious/noThenProperty: awaiting a started call waits for its value.
  then<R1 = T, R2 = never>(
    onResolved?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.future.then(onResolved, onRejected);
  }

  // biome-ignore lint/correctness/useYield: returning the future without waiting is the point.
  *[Symbol.iterator](): Generator<never, PlainFuture<T>, unknown> {
    return this.future;
  }
}

/** A running invocation: the root, a `run` step, or the callee of an rpc. */
class PlainFrame {
  private seq = 0;
  /** Settlements of the children this frame started, awaited before it settles (P3). */
  readonly children: Promise<PlainOutcome>[] = [];

  constructor(
    readonly id: string,
    readonly func: string,
    /** The root or rpc callee whose "task" this frame runs in. */
    readonly taskId: string,
    readonly origin: string,
  ) {}

  nextId(): string {
    this.seq += 1;
    return `${this.id}.${this.seq}`;
  }
}

/** What one `runPlain` shares among its frames. */
class PlainRun {
  /** Every call's settlement by id (P5). */
  readonly calls = new Map<string, Promise<PlainOutcome>>();
  /** Every settlement started, detached ones too, drained before `runPlain` returns (P4). */
  readonly work: Promise<PlainOutcome>[] = [];

  constructor(
    readonly options: PlainOptions,
    readonly timeoutAt: number,
  ) {}
}

function resolved(value: unknown): PlainOutcome {
  try {
    return { state: "resolved", value: decode(encode(value, "the result")) };
  } catch (error) {
    // As the engine: a result JSON cannot carry fails the call with the SerializationError.
    return rejected(error);
  }
}

function rejected(thrown: unknown): PlainOutcome {
  return { state: "rejected", error: toError(decode(encode(toError(thrown), "the error"))) };
}

function settlementOf(outcome: PlainOutcome): PlainOutcome {
  return outcome.state === "resolved" ? resolved(outcome.value) : rejected(outcome.error);
}

function isGenerator(value: unknown): value is Generator<unknown, unknown, unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Generator).next === "function" &&
    typeof (value as Generator).throw === "function" &&
    typeof (value as Generator)[Symbol.iterator] === "function"
  );
}

/** Drives a generator function: each yielded future is awaited, its value sent back or its error thrown in. */
async function drive(generator: Generator<unknown, unknown, unknown>): Promise<unknown> {
  let input: { value: unknown } | { error: unknown } = { value: undefined };
  for (;;) {
    const step: IteratorResult<unknown, unknown> =
      "error" in input ? generator.throw(input.error) : generator.next(input.value);
    if (step.done) return step.value;
    if (!(step.value instanceof PlainFuture)) {
      input = { error: new TypeError(YIELD_MISUSE) };
      continue;
    }
    try {
      input = { value: await step.value };
    } catch (error) {
      input = { error };
    }
  }
}

/** Calls `fn(ctx, ...args)` at once (synchronously up to its first await), then waits for its children (P3). */
async function runFrame(
  run: PlainRun,
  frame: PlainFrame,
  fn: DurableFunction,
  args: unknown[],
): Promise<PlainOutcome> {
  let outcome: { value: unknown } | { error: unknown };
  try {
    const returned = fn(new PlainContext(run, frame), ...args);
    outcome = { value: isGenerator(returned) ? await drive(returned) : await returned };
  } catch (error) {
    outcome = { error };
  }
  // By index: a child may still start children of this frame while we wait.
  for (let index = 0; index < frame.children.length; index++) await frame.children[index];
  // Encoded after the children, as the engine does: the value is what it is once they are done.
  return "error" in outcome ? rejected(outcome.error) : resolved(outcome.value);
}

/** An rpc's arguments as the callee receives them: decoded from the encoded call (P2). */
function encodedArgs(func: string, args: unknown[], id: string): unknown[] {
  const param = decode(encode({ func, args }, `arguments of ${func} (${id})`)) as { args?: unknown[] };
  return param.args ?? [];
}

/** The plain twin of the SDK's `Context`: the same calls, run at once, nothing recorded. */
export class PlainContext {
  readonly date: { now: () => PlainFuture<number> };
  readonly math: { random: () => PlainFuture<number> };

  constructor(
    private readonly plainRun: PlainRun,
    private readonly frame: PlainFrame,
  ) {
    this.date = { now: () => this.builtin(() => plainRun.options.now?.() ?? 0) };
    this.math = { random: () => this.builtin(() => plainRun.options.random?.() ?? 0) };
  }

  get id(): string {
    return this.frame.id;
  }

  /** Best effort: there is no task, so `taskId` is the root's or rpc callee's id and `taskVersion` 1. */
  get info(): ContextInfo {
    return {
      id: this.frame.id,
      func: this.frame.func,
      taskId: this.frame.taskId,
      taskVersion: 1,
      timeoutAt: this.plainRun.timeoutAt,
      origin: this.frame.origin,
    };
  }

  options(values: CallOptions): Options {
    return options(values);
  }

  /** A local call: `fn` runs at once with a child context `<id>.<n>`, exactly once (P6). */
  run<F extends DurableFunction>(fn: F, ...rest: unknown[]): PlainFuture<ResultOf<F>>;
  run<T = unknown>(name: string, ...rest: unknown[]): PlainFuture<T>;
  run(fn: DurableFunction | string, ...rest: unknown[]): PlainFuture<unknown> {
    const { args, options } = splitOptions(rest);
    const resolvedFn = this.lookup(fn);
    const name = typeof fn === "string" ? fn : fn.name || "anonymous";
    const id = options.id ?? this.frame.nextId();
    // Checked, not round-tripped: the engine hands a local step the caller's own values.
    assertSerializable({ func: name, args }, `arguments of ${name} (${id})`);
    const child = new PlainFrame(id, name, this.frame.taskId, this.frame.origin);
    return this.call(id, () => runFrame(this.plainRun, child, resolvedFn, args));
  }

  beginRun<F extends DurableFunction>(fn: F, ...rest: unknown[]): PlainStarted<ResultOf<F>>;
  beginRun<T = unknown>(name: string, ...rest: unknown[]): PlainStarted<T>;
  beginRun(fn: DurableFunction | string, ...rest: unknown[]): PlainStarted<unknown> {
    return new PlainStarted(this.run(fn as string, ...rest));
  }

  /** A remote call: the function `options.functions(name)` gives runs at once, with decoded arguments. */
  rpc<T = unknown>(name: string, ...rest: unknown[]): PlainFuture<T> {
    const { args, options } = splitOptions(rest);
    return this.remote(options.id ?? this.frame.nextId(), name, args, false) as PlainFuture<T>;
  }

  beginRpc<T = unknown>(name: string, ...rest: unknown[]): PlainStarted<T> {
    return new PlainStarted(this.rpc<T>(name, ...rest));
  }

  /** An independent call with its own id: its parent does not wait for it (P3), `runPlain` does (P4). */
  detached<T = unknown>(id: string, name: string, ...rest: unknown[]): PlainStarted<T> {
    const { args } = splitOptions(rest);
    return new PlainStarted(this.remote(id, name, args, true) as PlainFuture<T>);
  }

  /** Resolves without waiting, once `options.sleep` (if any) returns. */
  sleep(duration: number | { until: Date }): PlainFuture<void> {
    const until = typeof duration === "number" ? duration : duration.until.getTime();
    if (!Number.isFinite(until))
      throw new RangeError(`sleep: ${String(duration)} is not a duration or a date`);
    const id = this.frame.nextId();
    const hook = this.plainRun.options.sleep;
    return this.call(id, async () => {
      await hook?.(duration, id);
      return resolved(undefined);
    }) as PlainFuture<void>;
  }

  /** A promise settled from outside: `options.external(settings, id)` settles it. */
  promise<T = unknown>(settings: PromiseSettings = {}): PlainFuture<T> {
    const id = settings.id ?? this.frame.nextId();
    const external = this.plainRun.options.external;
    return this.call(id, async () => {
      if (external === undefined)
        return rejected(
          new Error(`promise ${id}: no external settler was given; pass options.external to runPlain`),
        );
      return settlementOf(await external(settings, id));
    }) as PlainFuture<T>;
  }

  getDependency<T = unknown>(name: string): T {
    const dependencies = this.plainRun.options.dependencies;
    if (dependencies === undefined || !dependencies.has(name))
      throw new Error(`no dependency named ${name}; set it with setDependency`);
    return dependencies.get(name) as T;
  }

  private lookup(fn: DurableFunction | string): DurableFunction {
    if (typeof fn !== "string") return fn;
    const found = this.plainRun.options.functions?.(fn);
    if (found === undefined) throw new Error(`no function registered as ${fn}`);
    return found;
  }

  /** `date.now()` / `math.random()`: read once, in program order, as a step of their own. */
  private builtin(read: () => number): PlainFuture<number> {
    const id = this.frame.nextId();
    return this.call(id, async () => resolved(read())) as PlainFuture<number>;
  }

  private remote(id: string, name: string, args: unknown[], detached: boolean): PlainFuture<unknown> {
    const calleeArgs = encodedArgs(name, args, id);
    const origin = this.frame.origin;
    return this.call(
      id,
      async () => {
        const fn = this.plainRun.options.functions?.(name);
        // The engine's worker fails the task so, naming the function.
        if (fn === undefined)
          return rejected(new NonRetryableError(`cannot run ${id}: function ${name} is not registered here`));
        return runFrame(this.plainRun, new PlainFrame(id, name, id, origin), fn, calleeArgs);
      },
      detached,
    );
  }

  /** Starts a call (or joins the one already under `id`, P5) and makes it this frame's child unless detached. */
  private call(id: string, start: () => Promise<PlainOutcome>, detached = false): PlainFuture<unknown> {
    let settlement = this.plainRun.calls.get(id);
    if (settlement === undefined) {
      settlement = start().catch((error: unknown) => rejected(error));
      this.plainRun.calls.set(id, settlement);
      this.plainRun.work.push(settlement);
    }
    if (!detached) this.frame.children.push(settlement);
    return new PlainFuture(id, settlement);
  }
}

/**
 * Runs `fn(ctx, ...args)` as plain code: the reference a durable run is compared
 * with. Resolves with the root's outcome once all its work, detached calls
 * included, has settled (P4). Rejects only when `args` cannot be encoded, where
 * the client's `run` would throw too.
 */
export async function runPlain(
  fn: DurableFunction,
  args: readonly unknown[] = [],
  options: PlainOptions = {},
): Promise<PlainOutcome> {
  const id = options.id ?? "plain";
  const func = options.func ?? (fn.name || "anonymous");
  const run = new PlainRun(options, options.timeoutAt ?? Number.MAX_SAFE_INTEGER);
  // The root's arguments arrive decoded from its param, as a worker reads them.
  const rootArgs = encodedArgs(func, [...args], id);
  const outcome = runFrame(run, new PlainFrame(id, func, id, id), fn, rootArgs);
  run.calls.set(id, outcome);
  run.work.push(outcome);
  for (let index = 0; index < run.work.length; index++) await run.work[index];
  return outcome;
}
