/**
 * One task's execution: runs the task's function from the top, replaying every
 * durable call whose promise is already settled (skip-when-done), until the
 * function is done or blocked on promises only another process can settle.
 *
 * Both engines share this runtime. An async function awaits `Future`s; a
 * generator function yields them and `drive` sends the values back. Frames are
 * the running function invocations (the task's root function and every local
 * `ctx.run` of a durable function); ids are `<frame id>.<n>` in call order.
 *
 * Execute until blocked (the engine's one await point): after any change, once
 * the event loop has drained, the execution is blocked when no request is in
 * flight, no frame is running (each pending frame awaits a pending future), and
 * some awaited future waits on another process. It then reports `suspended`
 * with those promise ids; the worker suspends the task (or, on a `300`, calls
 * `resume` with the fresh records and the same in-memory execution goes on).
 *
 * Invariants:
 *  X1  Ids depend only on program order: `nextId` is called synchronously when a
 *      durable call is made.
 *  X2  A recorded promise answers its call only if it records the same kind of
 *      call and the same function; otherwise the execution fails, naming the call.
 *  X3  A frame's promise settles only after every child it started has settled
 *      (detached calls excepted), and after the promise of every detached call
 *      it made was created: once a function's result is recorded, nothing it
 *      started can be lost with its process.
 *  X4  After `abandon`, nothing is written and no outcome is reported again.
 *  X5  A step's function starts only while the worker can be sure its lease
 *      is valid (`holdsLease`); otherwise the execution is abandoned. The
 *      server's fencing refuses a lapsed holder's writes, but not its side
 *      effects: without X5 a holder whose lease lapsed unnoticed could run a
 *      step that the task's next holder already ran and recorded.
 */
import { assert } from "../../lib/assert.js";
import type { Clock, Timers } from "../../lib/clock.js";
import {
  PRELOAD_FIELD,
  type PromiseRecord,
  SETTLE_ON_CREATE,
  TAG,
  type Tags,
  type Value,
} from "../../protocol/records.js";
import type { PromiseCreateData, Response } from "../../protocol/requests.js";
import { decode, encode, SerializationError, toError } from "../codec.js";
import { type Network, ProtocolRejection } from "../network/network.js";
import type { CallOptions } from "../options.js";
import { DEFAULT_RETRY, NonRetryableError, type RetryPolicy, retryDelay } from "../retry.js";
import { ExecutionTrace } from "../tracing.js";
import { Future, type FutureObserver, type TrackedFuture } from "./future.js";

// biome-ignore lint/suspicious/noExplicitAny: durable functions take any arguments.
export type DurableFunction = (ctx: any, ...args: any[]) => unknown;

export interface RegisteredFunction {
  name: string;
  version: number;
  fn: DurableFunction;
}

export interface Registry {
  /** The function registered under `name` at `version`, or its latest version. */
  get(name: string, version?: number): RegisteredFunction | undefined;
  /** The name a function was registered under, if it was. */
  nameOf(fn: DurableFunction): string | undefined;
}

export interface ExecutionEnvironment {
  network: Network;
  registry: Registry;
  dependencies: ReadonlyMap<string, unknown>;
  clock: Clock;
  timers: Timers;
  /** Source of `ctx.math.random()` on first execution (recorded, then replayed). */
  random: () => number;
  group: string;
  pid: string;
  /** Builds the context a frame's function receives. */
  context: (frame: Frame, execution: Execution) => unknown;
  /**
   * Whether this process can still be sure it holds the task's lease (X5). Default:
   * always (a caller that does not track leases relies on the server's fencing alone).
   */
  holdsLease?: (task: { id: string; version: number }) => boolean;
  /**
   * Whether a leaf step's two writes are folded into one (`pledge:settle`, ADR
   * 0005), shared by the executions of one worker: a server that refuses the field
   * turns it off for them all. Absent: never folded.
   */
  settleOnCreate?: { supported: boolean };
  /**
   * Whether fences ask for no preload (`pledge:preload`, ADR 0006): an execution
   * never reads a fence's preload. Shared like `settleOnCreate`. Absent: never asked.
   */
  preloadOptOut?: { supported: boolean };
}

/** The action of a fence this engine sends. */
type FenceRequestAction =
  | { kind: "promise.create"; data: PromiseCreateData }
  | { kind: "promise.settle"; data: { id: string; state: "resolved" | "rejected"; value: Value } };

export type Outcome =
  | { kind: "done"; state: "resolved" | "rejected"; value: Value }
  | { kind: "suspended"; awaited: string[] }
  | { kind: "abandoned"; reason: string };

/** The recorded promise at a call's position differs from the call the code makes now (X2). */
export class NondeterminismError extends Error {
  override name = "NondeterminismError";
}

/** A durable call whose promise was canceled or timed out. */
export class PromiseSettledError extends Error {
  constructor(
    readonly id: string,
    readonly state: "rejected_canceled" | "rejected_timedout",
  ) {
    super(state === "rejected_canceled" ? `promise ${id} was canceled` : `promise ${id} timed out`);
    this.name = state === "rejected_canceled" ? "CanceledError" : "TimeoutError";
  }
}

type CallKind = "local" | "remote" | "timer" | "latent";

/** A running function invocation: the task's root function or a local durable step. */
export class Frame {
  private seq = 0;
  /** Futures of the children this frame started, for structured concurrency (X3). */
  readonly children: Future<unknown>[] = [];
  /** Creations of the detached calls this frame made, still in flight (X3). */
  readonly creations: Promise<unknown>[] = [];
  /** Pending futures this frame awaits. */
  awaiting = 0;
  /** The frame's function has not returned yet (or is waiting for its children). */
  pending = true;
  /**
   * Makes the frame's own promise durable before a child's is written, when the
   * frame's creation was put off (a step that may turn out to be a leaf, ADR 0005).
   */
  checkpoint: (() => Promise<unknown>) | undefined;

  constructor(
    readonly id: string,
    readonly timeoutAt: number,
    readonly func: string,
    readonly branch: string,
    readonly origin: string,
  ) {}

  nextId(): string {
    this.seq += 1;
    return `${this.id}.${this.seq}`;
  }

  /** A retried attempt replays the same child ids. */
  restart(): void {
    this.seq = 0;
    this.children.length = 0;
    this.creations.length = 0;
  }
}

const DAY_MS = 24 * 60 * 60 * 1000;
const NEVER: RetryPolicy = { kind: "never" };
const BUILTIN_NOW = "pledge.date.now";
const BUILTIN_RANDOM = "pledge.math.random";

function isGenerator(value: unknown): value is Generator<unknown, unknown, unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Generator).next === "function" &&
    typeof (value as Generator).throw === "function" &&
    typeof (value as Generator)[Symbol.iterator] === "function"
  );
}

function paramOf(record: PromiseRecord): { func?: unknown } {
  const decoded = decode(record.param);
  return typeof decoded === "object" && decoded !== null ? (decoded as { func?: unknown }) : {};
}

function kindOf(record: PromiseRecord): CallKind {
  if (record.tags[TAG.timer] === "true") return "timer";
  if (Object.hasOwn(record.tags, TAG.target)) return "remote";
  if (record.tags[TAG.external] === "true") return "latent";
  return "local";
}

export class Execution implements FutureObserver {
  private readonly records = new Map<string, PromiseRecord>();
  private readonly futures = new Map<string, Future<unknown>>();
  private readonly frameOf = new Map<TrackedFuture, Frame>();
  private readonly frames = new Set<Frame>();
  private busy = 0;
  private checkScheduled = false;
  private finished = false;
  private report: ((outcome: Outcome) => void) | undefined;
  readonly root: Frame;
  /** Spans, when OpenTelemetry is installed (`../tracing.ts`); otherwise inert. */
  private readonly trace: ExecutionTrace;

  constructor(
    private readonly env: ExecutionEnvironment,
    readonly task: { id: string; version: number },
    private readonly rootRecord: PromiseRecord,
    preload: readonly PromiseRecord[],
  ) {
    for (const record of preload) this.records.set(record.id, record);
    const branch = rootRecord.tags[TAG.branch] ?? rootRecord.id;
    const origin = rootRecord.tags[TAG.origin] ?? rootRecord.id;
    const func = paramOf(rootRecord).func;
    this.root = new Frame(
      rootRecord.id,
      rootRecord.timeoutAt,
      typeof func === "string" ? func : "",
      branch,
      origin,
    );
    this.trace = new ExecutionTrace(rootRecord, task, this.root.func);
  }

  /** Runs the task's function until it is done or blocked. */
  start(): Promise<Outcome> {
    const outcome = this.nextOutcome();
    const param = decode(this.rootRecord.param) as
      | { func?: unknown; args?: unknown; version?: unknown }
      | undefined;
    const name = typeof param?.func === "string" ? param.func : undefined;
    const version = typeof param?.version === "number" ? param.version : undefined;
    const registered = name === undefined ? undefined : this.env.registry.get(name, version);
    if (registered === undefined) {
      const what =
        name === undefined ? "no function name in its param" : `function ${name} is not registered here`;
      this.finish(this.failure(new NonRetryableError(`cannot run ${this.task.id}: ${what}`)));
      return outcome;
    }
    const args = Array.isArray(param?.args) ? param.args : [];
    this.frames.add(this.root);
    void this.runFrame(this.root, registered.fn, args).then(
      (value) => this.finish({ kind: "done", ...this.success(value) }),
      (error: unknown) => this.finish(this.failure(toError(error))),
    );
    this.scheduleCheck();
    return outcome;
  }

  /** After a `300` on suspend: the awaited promises' fresh records; the execution goes on. */
  resume(records: readonly PromiseRecord[]): Promise<Outcome> {
    assert(!this.finished, "X4 a finished execution is not resumed");
    const outcome = this.nextOutcome();
    for (const record of records) this.learn(record);
    this.scheduleCheck();
    return outcome;
  }

  /** Stops the execution: nothing more is written, no outcome reported (X4). */
  abandon(reason: string): void {
    this.finish({ kind: "abandoned", reason });
  }

  // --- durable calls, used by the contexts ---------------------------------------------

  /** `ctx.run`: a local call; `fn` runs in this process, its promise records the result. */
  local(frame: Frame, fn: DurableFunction, args: unknown[], options: CallOptions): Future<unknown> {
    const name = this.env.registry.nameOf(fn) ?? (fn.name || "anonymous");
    return this.localCall(frame, name, fn, args, options);
  }

  /** `ctx.rpc` / `beginRpc`: a remote call, run by a worker of the target group. */
  remote(
    frame: Frame,
    name: string,
    args: unknown[],
    options: CallOptions,
    detached = false,
  ): Future<unknown> {
    const id = options.id ?? frame.nextId();
    const param = encode(
      { func: name, args, version: this.versionOf(name, options) },
      `arguments of ${name} (${id})`,
    );
    const target = this.address(options.target);
    const tags: Tags = {
      ...this.lineage(frame, id, id),
      [TAG.scope]: "global",
      [TAG.target]: target,
      ...options.tags,
    };
    return this.durableCall(frame, id, "remote", name, detached, () => ({
      id,
      timeoutAt: this.timeoutAt(frame, options.timeout, detached),
      param,
      tags,
    }));
  }

  /** `ctx.sleep`: a timer promise, resolved by the server at its deadline. */
  sleep(frame: Frame, until: number): Future<unknown> {
    const id = frame.nextId();
    return this.durableCall(frame, id, "timer", "sleep", false, () => ({
      id,
      timeoutAt: until,
      param: {},
      tags: { ...this.lineage(frame, id, frame.branch), [TAG.scope]: "global", [TAG.timer]: "true" },
    }));
  }

  /** `ctx.promise`: a latent promise, settled by anyone from outside. */
  latent(frame: Frame, options: { id?: string; timeout?: number; tags?: Tags }): Future<unknown> {
    const id = options.id ?? frame.nextId();
    return this.durableCall(frame, id, "latent", "promise", false, () => ({
      id,
      timeoutAt: this.timeoutAt(frame, options.timeout, false),
      param: {},
      tags: {
        ...this.lineage(frame, id, frame.branch),
        [TAG.scope]: "global",
        [TAG.external]: "true",
        ...options.tags,
      },
    }));
  }

  /** `ctx.date.now()`: the clock read once, recorded, identical on replay. */
  now(frame: Frame): Future<unknown> {
    return this.localCall(frame, BUILTIN_NOW, () => this.env.clock.now(), [], { retry: { kind: "never" } });
  }

  /** `ctx.math.random()`: drawn once, recorded, identical on replay. */
  random(frame: Frame): Future<unknown> {
    return this.localCall(frame, BUILTIN_RANDOM, () => this.env.random(), [], { retry: { kind: "never" } });
  }

  /** The version a call asks for: the given one, the latest registered here, or 0 ("the latest", by the SDKs' convention). */
  private versionOf(name: string, options: CallOptions): number {
    return options.version ?? this.env.registry.get(name)?.version ?? 0;
  }

  /** A function given by name is looked up in the registry; a function is used as it is. */
  lookup(fn: DurableFunction | string): DurableFunction {
    if (typeof fn !== "string") return fn;
    const registered = this.env.registry.get(fn);
    if (registered === undefined) throw new Error(`no function registered as ${fn}`);
    return registered.fn;
  }

  dependency(name: string): unknown {
    if (!this.env.dependencies.has(name))
      throw new Error(`no dependency named ${name}; set it with setDependency`);
    return this.env.dependencies.get(name);
  }

  // --- FutureObserver -------------------------------------------------------------------

  awaited(future: TrackedFuture): void {
    const frame = this.frameOf.get(future);
    if (frame !== undefined && !future.settled) frame.awaiting += 1;
    this.scheduleCheck();
  }

  settled(future: TrackedFuture): void {
    const frame = this.frameOf.get(future);
    if (frame !== undefined && future.isAwaited) frame.awaiting -= 1;
    assert(frame === undefined || frame.awaiting >= 0, "a frame awaits a non-negative number of futures");
    this.scheduleCheck();
  }

  // --- internals ------------------------------------------------------------------------

  private localCall(
    frame: Frame,
    name: string,
    fn: DurableFunction,
    args: unknown[],
    options: CallOptions,
  ): Future<unknown> {
    const id = options.id ?? frame.nextId();
    const param = encode(
      { func: name, args, version: this.versionOf(name, options) },
      `arguments of ${name} (${id})`,
    );
    const future = this.newFuture(id, frame);
    frame.children.push(future);
    const recorded = this.records.get(id);
    if (recorded !== undefined && !this.matches(recorded, "local", name, future)) return future;
    if (recorded !== undefined && recorded.state !== "pending") {
      this.settleFrom(future, recorded);
      return future;
    }
    const timeoutAt = this.timeoutAt(frame, options.timeout, false);
    const tags: Tags = {
      ...this.lineage(frame, id, frame.branch),
      [TAG.scope]: "local",
      ...options.tags,
      ...this.trace.call("run", name, id),
    };
    // Only the writes count as in flight: while the step's function runs, its
    // frame says whether it works or waits, so a nested function can block too.
    // A step not yet recorded is created settled, in one write, once it returns
    // (ADR 0005): it runs again after a crash either way. Only if it makes durable
    // calls of its own is it created first, pending, before the first of them.
    // "Not yet recorded" must be known without asking: only when the server
    // preloaded this branch whole, which a server that takes the extension does
    // for the task promise's branch; otherwise the create answers what is recorded (X2).
    const fold =
      recorded === undefined &&
      options.id === undefined &&
      frame.branch === this.rootRecord.tags[TAG.branch] &&
      this.env.settleOnCreate?.supported === true;
    void (async () => {
      if (recorded === undefined && !fold) {
        const created = await this.track(async () => {
          await this.checkpoint(frame);
          return this.fenceCreate({ id, timeoutAt, param, tags });
        });
        // Not preloaded (a remote child's record, say): the create answers what is recorded (X2).
        if (created === undefined || !this.matches(created, "local", name, future)) return;
        if (created.state !== "pending") {
          this.settleFrom(future, created);
          return;
        }
      }
      const child = new Frame(id, timeoutAt, name, frame.branch, frame.origin);
      let checkpointed: Promise<PromiseRecord | undefined> | undefined;
      if (fold)
        child.checkpoint = () =>
          (checkpointed ??= this.track(async () => {
            await this.checkpoint(frame);
            return this.fenceCreate({ id, timeoutAt, param, tags });
          }));
      if (!(this.env.holdsLease?.(this.task) ?? true)) {
        this.abandon(
          `task ${this.task.id} v${this.task.version}: the lease may have lapsed; ${id} not started`,
        );
        return;
      }
      const result = await this.attempts(child, fn, args, options);
      if (checkpointed !== undefined) {
        const created = await checkpointed;
        if (created === undefined || !this.matches(created, "local", name, future)) return;
        if (created.state !== "pending") {
          this.settleFrom(future, created);
          return;
        }
      }
      const settled =
        fold && checkpointed === undefined
          ? await this.track(async () => {
              await this.checkpoint(frame);
              return this.createSettled({ id, timeoutAt, param, tags }, result);
            })
          : await this.track(() => this.fenceSettle(id, result));
      if (settled !== undefined && this.matches(settled, "local", name, future))
        this.settleFrom(future, settled);
    })().catch((error: unknown) => {
      if (!future.settled && !this.finished) future.reject(toError(error));
    });
    return future;
  }

  /** Before a child of `frame` is written: `frame`'s own promise, if its creation was put off. */
  private async checkpoint(frame: Frame): Promise<void> {
    await frame.checkpoint?.();
  }

  /**
   * A leaf step's one write: its promise created settled with `result` (ADR 0005).
   * A server without the extension creates it pending (then it is settled here),
   * or refuses the field (then it is created and settled in two writes, and no
   * step of this worker asks again).
   */
  private async createSettled(
    data: PromiseCreateData,
    result: { state: "resolved" | "rejected"; value: Value },
  ): Promise<PromiseRecord | undefined> {
    const folded = await this.fence(
      {
        kind: "promise.create",
        data: { ...data, [SETTLE_ON_CREATE]: { state: result.state, value: result.value } },
      },
      { refusable: true },
    );
    if (folded === "refused") {
      if (this.env.settleOnCreate !== undefined) this.env.settleOnCreate.supported = false;
      const created = await this.fenceCreate(data);
      if (created === undefined || created.state !== "pending") return created;
      return this.fenceSettle(data.id, result);
    }
    if (folded === undefined || folded.state !== "pending") return folded;
    return this.fenceSettle(data.id, result);
  }

  private durableCall(
    frame: Frame,
    id: string,
    kind: CallKind,
    name: string,
    detached: boolean,
    data: () => PromiseCreateData,
  ): Future<unknown> {
    const future = this.newFuture(id, frame);
    if (!detached) frame.children.push(future);
    const recorded = this.records.get(id);
    if (recorded !== undefined && !this.matches(recorded, kind, name, future)) return future;
    if (recorded !== undefined && recorded.state !== "pending") {
      this.settleFrom(future, recorded);
      return future;
    }
    const creation = this.track(async () => {
      await this.checkpoint(frame);
      return this.fenceCreate(this.traced(kind, name, data()));
    })
      .then((created) => {
        if (created === undefined || !this.matches(created, kind, name, future)) return;
        this.learn(created);
        if (!future.settled) future.remote = true;
      })
      .catch((error: unknown) => {
        if (!future.settled && !this.finished) future.reject(toError(error));
      });
    if (detached) frame.creations.push(creation);
    return future;
  }

  /** Runs `fn` in `frame` under the call's retry policy; resolves with the settlement to record. */
  private async attempts(
    frame: Frame,
    fn: DurableFunction,
    args: unknown[],
    options: CallOptions,
  ): Promise<{ state: "resolved" | "rejected"; value: Value }> {
    for (let attempt = 1; ; attempt += 1) {
      frame.restart();
      this.frames.add(frame);
      frame.pending = true;
      try {
        return this.success(await this.runFrame(frame, fn, args));
      } catch (thrown) {
        const error = toError(thrown);
        // A function that made durable calls orchestrates: its failure replays
        // recorded children, so by default it is not retried (leaf steps are).
        const policy = options.retry ?? (frame.children.length > 0 ? NEVER : DEFAULT_RETRY);
        const delay =
          error instanceof NonRetryableError || error instanceof SerializationError || this.finished
            ? undefined
            : retryDelay(policy, attempt);
        if (delay === undefined) return this.failure(error);
        await this.track(() => new Promise<void>((resolve) => this.env.timers.setTimeout(resolve, delay)));
      }
    }
  }

  /** Calls the function with a context for `frame`, drives it if it is a generator, waits for its children. */
  private async runFrame(frame: Frame, fn: DurableFunction, args: unknown[]): Promise<unknown> {
    try {
      let outcome: { value: unknown } | { error: unknown };
      try {
        const returned = fn(this.env.context(frame, this), ...args);
        outcome = { value: isGenerator(returned) ? await this.drive(returned) : await returned };
      } catch (error) {
        outcome = { error };
      }
      // X3: a frame settles only after every child it started has settled, on
      // success and on failure alike.
      for (let index = 0; index < frame.children.length; index++) {
        const child = frame.children[index] as Future<unknown>;
        if (child.settled) continue;
        child.markAwaited();
        await child.then(
          () => undefined,
          () => undefined,
        );
      }
      // A detached call is not awaited, but its creation is (X3).
      await Promise.all(frame.creations);
      if ("error" in outcome) throw outcome.error;
      return outcome.value;
    } finally {
      frame.pending = false;
      this.frames.delete(frame);
      this.scheduleCheck();
    }
  }

  /** The generator engine: each yielded future is awaited and its outcome sent back. */
  private async drive(generator: Generator<unknown, unknown, unknown>): Promise<unknown> {
    let input: { value: unknown } | { error: unknown } = { value: undefined };
    for (;;) {
      const step: IteratorResult<unknown, unknown> =
        "error" in input ? generator.throw(input.error) : generator.next(input.value);
      if (step.done) return step.value;
      const yielded: unknown = step.value;
      if (!(yielded instanceof Future)) {
        input = {
          error: new TypeError("a durable function yields only durable calls: write yield* ctx.run(…)"),
        };
        continue;
      }
      try {
        input = { value: await yielded };
      } catch (error) {
        input = { error };
      }
    }
  }

  private matches(record: PromiseRecord, kind: CallKind, name: string, future: Future<unknown>): boolean {
    const recordedKind = kindOf(record);
    const recordedName =
      recordedKind === "local" || recordedKind === "remote" ? paramOf(record).func : undefined;
    const expectedName = kind === "local" || kind === "remote" ? name : undefined;
    if (recordedKind === kind && recordedName === expectedName) return true;
    const recorded = `${recordedKind}${recordedName === undefined ? "" : ` ${String(recordedName)}`}`;
    const now = `${kind}${expectedName === undefined ? "" : ` ${expectedName}`}`;
    const error = new NondeterminismError(
      `nondeterminism in ${this.task.id} at ${record.id}: the code now makes a ${now} call, ` +
        `but the recorded promise is a ${recorded} call; the function must make the same durable calls in the same order on replay`,
    );
    future.reject(error);
    // The execution fails as a whole: a caught NondeterminismError must not let results mix.
    this.finish(this.failure(error));
    return false;
  }

  private newFuture(id: string, frame: Frame): Future<unknown> {
    const existing = this.futures.get(id);
    assert(existing === undefined || existing.settled, `one live future per promise id (${id})`);
    const future = new Future<unknown>(id, this);
    this.futures.set(id, future);
    this.frameOf.set(future, frame);
    return future;
  }

  /** A record seen from the server: cache it, and settle the future waiting for it. */
  private learn(record: PromiseRecord): void {
    this.records.set(record.id, record);
    const future = this.futures.get(record.id);
    if (future !== undefined && !future.settled && record.state !== "pending")
      this.settleFrom(future, record);
  }

  private settleFrom(future: Future<unknown>, record: PromiseRecord): void {
    this.records.set(record.id, record);
    this.trace.settled(record);
    if (this.finished || future.settled) return;
    switch (record.state) {
      case "pending":
        return;
      case "resolved":
        future.resolve(decode(record.value));
        return;
      case "rejected":
        future.reject(toError(decode(record.value)));
        return;
      case "rejected_canceled":
      case "rejected_timedout":
        future.reject(new PromiseSettledError(record.id, record.state));
        return;
    }
  }

  private success(value: unknown): { state: "resolved"; value: Value } | { state: "rejected"; value: Value } {
    try {
      return { state: "resolved", value: encode(value, "the result") };
    } catch (error) {
      return { state: "rejected", value: encode(toError(error), "the error") };
    }
  }

  private failure(error: Error): { kind: "done"; state: "rejected"; value: Value } & { state: "rejected" } {
    return { kind: "done", state: "rejected", value: encode(error, "the error") };
  }

  private lineage(frame: Frame, id: string, branch: string): Tags {
    return {
      [TAG.origin]: frame.origin,
      [TAG.parent]: frame.id,
      [TAG.branch]: branch,
      [TAG.prefix]: id,
    };
  }

  private address(target: string | undefined): string {
    const group = target ?? this.env.group;
    return /^[a-z][a-z0-9+.-]*:\/\//i.test(group) ? group : `poll://any@${group}`;
  }

  private timeoutAt(frame: Frame, timeoutMs: number | undefined, detached: boolean): number {
    if (detached) return this.env.clock.now() + (timeoutMs ?? DAY_MS);
    if (timeoutMs === undefined) return frame.timeoutAt;
    return Math.min(frame.timeoutAt, this.env.clock.now() + timeoutMs);
  }

  /** A call's creation with its span's `traceparent` tag, when traced. */
  private traced(kind: CallKind, name: string, data: PromiseCreateData): PromiseCreateData {
    const tags = this.trace.call(kind, name, data.id);
    return Object.keys(tags).length === 0 ? data : { ...data, tags: { ...data.tags, ...tags } };
  }

  private async fenceCreate(data: PromiseCreateData): Promise<PromiseRecord | undefined> {
    return this.fence({ kind: "promise.create", data });
  }

  private async fenceSettle(
    id: string,
    result: { state: "resolved" | "rejected"; value: Value },
  ): Promise<PromiseRecord | undefined> {
    return this.fence({ kind: "promise.settle", data: { id, state: result.state, value: result.value } });
  }

  /**
   * A write under the task's lease; a lost lease abandons the execution (X4).
   * `refusable`: an inner `400` answers "refused" instead of failing the call (a
   * server that does not take an extension).
   */
  private async fence(action: FenceRequestAction): Promise<PromiseRecord | undefined>;
  private async fence(
    action: { kind: "promise.create"; data: PromiseCreateData },
    options: { refusable: true },
  ): Promise<PromiseRecord | "refused" | undefined>;
  private async fence(
    action: FenceRequestAction,
    options?: { refusable: true },
  ): Promise<PromiseRecord | "refused" | undefined> {
    if (this.finished) return undefined;
    const response = await this.sendFence(action);
    if (this.finished) return undefined;
    if (response.status !== 200) {
      this.abandon(
        `task ${this.task.id} v${this.task.version} is no longer held (${response.status}: ${String(response.data)})`,
      );
      return undefined;
    }
    const inner = (response.data as { action: { head: { status: number }; data: unknown } }).action;
    if (inner.head.status === 400 && options?.refusable === true) return "refused";
    if (inner.head.status !== 200) throw new Error(`${action.kind} ${action.data.id}: ${String(inner.data)}`);
    return (inner.data as { promise: PromiseRecord }).promise;
  }

  /**
   * A fence, asking for no preload where the server takes that (ADR 0006). A server
   * that refuses the field (a `400` naming it: a replacement behind the same URL, say)
   * gets the fence again without it, and no fence of this worker asks again.
   */
  private async sendFence(action: FenceRequestAction): Promise<Response> {
    const data = { id: this.task.id, version: this.task.version, action };
    const optOut = this.env.preloadOptOut;
    if (optOut?.supported !== true) return this.env.network.send({ kind: "task.fence", data });
    try {
      return await this.env.network.send({ kind: "task.fence", data: { ...data, [PRELOAD_FIELD]: false } });
    } catch (error) {
      // Only a refusal of the field itself: a fence refused for anything else fails as it would without it.
      if (
        !(error instanceof ProtocolRejection) ||
        error.status !== 400 ||
        !error.message.includes(PRELOAD_FIELD)
      )
        throw error;
      optOut.supported = false;
      return this.env.network.send({ kind: "task.fence", data });
    }
  }

  /** Counts `work` as in flight while it runs. */
  private async track<T>(work: () => Promise<T>): Promise<T> {
    this.busy += 1;
    try {
      return await work();
    } finally {
      this.busy -= 1;
      this.scheduleCheck();
    }
  }

  private nextOutcome(): Promise<Outcome> {
    assert(this.report === undefined, "one outcome is awaited at a time");
    return new Promise<Outcome>((resolve) => {
      this.report = resolve;
    });
  }

  private finish(outcome: Outcome): void {
    if (this.finished) return;
    this.trace.finish(outcome);
    if (outcome.kind !== "suspended") this.finished = true;
    const report = this.report;
    this.report = undefined;
    report?.(outcome);
  }

  private scheduleCheck(): void {
    if (this.checkScheduled || this.finished || this.report === undefined) return;
    this.checkScheduled = true;
    this.env.timers.setTimeout(() => {
      this.checkScheduled = false;
      this.checkBlocked();
    }, 0);
  }

  /** Blocked: nothing in flight, no frame running, and some awaited future waits on another process. */
  private checkBlocked(): void {
    if (this.finished || this.report === undefined || this.busy > 0) return;
    for (const frame of this.frames) if (frame.pending && frame.awaiting === 0) return;
    const awaited = [...this.futures.values()]
      .filter((future) => !future.settled && future.isAwaited && future.remote)
      .map((future) => future.id);
    if (awaited.length === 0) return;
    this.finish({ kind: "suspended", awaited: awaited.sort() });
  }
}
