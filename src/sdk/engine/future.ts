/**
 * The result of a durable call, awaitable by both engines: `await future` in an
 * async function, `yield* future` in a generator function. The same object is a
 * thenable and an iterable whose one yield hands the future to the generator
 * driver, which sends the value back.
 *
 * A future knows whether anybody awaits it (`then` called, or yielded), which is
 * how the runtime tells "blocked on another process" from "still working".
 *
 * Invariants:
 *  F1  A future settles at most once; later settle calls are ignored by assertion.
 *  F2  `remote` is true only while the future waits for a promise that another
 *      process settles (a remote call, a timer, a latent promise).
 */
import { assert } from "../../lib/assert.js";

export type FutureState<T> =
  | { status: "pending" }
  | { status: "resolved"; value: T }
  | { status: "rejected"; error: Error };

/** What the runtime tracks of a future, whatever its value type. */
export interface TrackedFuture {
  readonly id: string;
  readonly remote: boolean;
  readonly isAwaited: boolean;
  readonly settled: boolean;
}

export interface FutureObserver {
  /** Called the first time somebody awaits this future. */
  awaited(future: TrackedFuture): void;
  /** Called when the future settles. */
  settled(future: TrackedFuture): void;
}

export class Future<T> implements PromiseLike<T>, TrackedFuture {
  state: FutureState<T> = { status: "pending" };
  /** F2: waiting on a promise another process settles. */
  remote = false;
  isAwaited = false;
  private readonly promise: Promise<T>;
  private resolvePromise!: (value: T) => void;
  private rejectPromise!: (error: Error) => void;

  constructor(
    /** The durable promise id this future stands for. */
    readonly id: string,
    private readonly observer: FutureObserver,
  ) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolvePromise = resolve;
      this.rejectPromise = reject;
    });
    // A future nobody awaits must not report an unhandled rejection.
    this.promise.catch(() => {});
  }

  get settled(): boolean {
    return this.state.status !== "pending";
  }

  resolve(value: T): void {
    assert(this.state.status === "pending", `F1 future ${this.id} settles once`);
    this.state = { status: "resolved", value };
    this.remote = false;
    this.resolvePromise(value);
    this.observer.settled(this);
  }

  reject(error: Error): void {
    assert(this.state.status === "pending", `F1 future ${this.id} settles once`);
    this.state = { status: "rejected", error };
    this.remote = false;
    this.rejectPromise(error);
    this.observer.settled(this);
  }

  markAwaited(): void {
    if (this.isAwaited) return;
    this.isAwaited = true;
    this.observer.awaited(this);
  }

  // biome-ignore lint/suspicious/noThenProperty: a future is deliberately a thenable, so `await` works.
  then<R1 = T, R2 = never>(
    onResolved?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    this.markAwaited();
    return this.promise.then(onResolved, onRejected);
  }

  *[Symbol.iterator](): Generator<Future<T>, T, unknown> {
    return (yield this) as T;
  }
}

/**
 * What `beginRun` / `beginRpc` return: the call has started; `yield*` hands back
 * the future without waiting (generators), `await` waits for its value (async).
 */
export class Started<T> implements PromiseLike<T> {
  constructor(readonly future: Future<T>) {}

  // biome-ignore lint/suspicious/noThenProperty: awaiting a started call waits for its value.
  then<R1 = T, R2 = never>(
    onResolved?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.future.then(onResolved, onRejected);
  }

  // biome-ignore lint/correctness/useYield: returning the future without waiting is the point.
  *[Symbol.iterator](): Generator<never, Future<T>, unknown> {
    return this.future;
  }
}
