/**
 * What a durable function receives as `ctx`. One context serves both engines:
 * every call returns a `Future` that an async function awaits and a generator
 * function delegates to with `yield*`; `beginRun` / `beginRpc` return a
 * `Started` handle (start now, await later).
 */
import type { Clock } from "../../lib/clock.js";
import { type CallOptions, type Options, options, splitOptions } from "../options.js";
import type { DurableFunction, Execution, Frame } from "./execution.js";
import { type Future, Started } from "./future.js";

export interface ContextInfo {
  /** This invocation's promise id. */
  id: string;
  /** The registered name of the running function. */
  func: string;
  /** The id of the task executing it, and the task's version (fencing token). */
  taskId: string;
  taskVersion: number;
  /** The invocation's deadline (ms since the epoch). */
  timeoutAt: number;
  /** The root of the execution tree. */
  origin: string;
}

/** What calling a durable function yields: a generator's return value, or an async function's awaited one. */
export type ResultOf<F> = F extends (...args: never[]) => Generator<unknown, infer R, unknown>
  ? R
  : F extends (...args: never[]) => infer R
    ? Awaited<R>
    : unknown;

export class Context {
  readonly date: { now: () => Future<number> };
  readonly math: { random: () => Future<number> };

  constructor(
    private readonly frame: Frame,
    private readonly execution: Execution,
    private readonly clock: Clock,
  ) {
    this.date = { now: () => execution.now(frame) as Future<number> };
    this.math = { random: () => execution.random(frame) as Future<number> };
  }

  get id(): string {
    return this.frame.id;
  }

  get info(): ContextInfo {
    return {
      id: this.frame.id,
      func: this.frame.func,
      taskId: this.execution.task.id,
      taskVersion: this.execution.task.version,
      timeoutAt: this.frame.timeoutAt,
      origin: this.frame.origin,
    };
  }

  options(values: CallOptions): Options {
    return options(values);
  }

  /** A local call: `fn(ctx, ...args)` runs in this process; its result is recorded. */
  run<F extends DurableFunction>(fn: F, ...rest: unknown[]): Future<ResultOf<F>>;
  run<T = unknown>(name: string, ...rest: unknown[]): Future<T>;
  run(fn: DurableFunction | string, ...rest: unknown[]): Future<unknown> {
    const { args, options } = splitOptions(rest);
    return this.execution.local(this.frame, this.resolve(fn), args, options);
  }

  beginRun<F extends DurableFunction>(fn: F, ...rest: unknown[]): Started<ResultOf<F>>;
  beginRun<T = unknown>(name: string, ...rest: unknown[]): Started<T>;
  beginRun(fn: DurableFunction | string, ...rest: unknown[]): Started<unknown> {
    return new Started(this.run(fn as string, ...rest));
  }

  /** A remote call: the function registered as `name` runs on a worker of the target group. */
  rpc<T = unknown>(name: string, ...rest: unknown[]): Future<T> {
    const { args, options } = splitOptions(rest);
    return this.execution.remote(this.frame, name, args, options) as Future<T>;
  }

  beginRpc<T = unknown>(name: string, ...rest: unknown[]): Started<T> {
    return new Started(this.rpc<T>(name, ...rest));
  }

  /** An independent remote execution with its own id; it is not awaited when this function returns. */
  detached<T = unknown>(id: string, name: string, ...rest: unknown[]): Started<T> {
    const { args, options } = splitOptions(rest);
    return new Started(this.execution.remote(this.frame, name, args, { ...options, id }, true) as Future<T>);
  }

  /** Sleeps `ms` milliseconds, or until a date; the process may stop meanwhile. */
  sleep(duration: number | { until: Date }): Future<void> {
    const until = typeof duration === "number" ? this.clock.now() + duration : duration.until.getTime();
    if (!Number.isFinite(until))
      throw new RangeError(`sleep: ${String(duration)} is not a duration or a date`);
    return this.execution.sleep(this.frame, Math.round(until)) as Future<void>;
  }

  /** A promise settled from outside (a person, a webhook): `future.id` names it. */
  promise<T = unknown>(
    settings: { id?: string; timeout?: number; tags?: Record<string, string> } = {},
  ): Future<T> {
    return this.execution.latent(this.frame, settings) as Future<T>;
  }

  getDependency<T = unknown>(name: string): T {
    return this.execution.dependency(name) as T;
  }

  private resolve(fn: DurableFunction | string): DurableFunction {
    return this.execution.lookup(fn);
  }
}
