/**
 * Time as an injected edge (STYLE practice 3). The real twins live here; the
 * simulated ones in `testing/`.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export interface Timers {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = { now: () => Date.now() };

export const systemTimers: Timers = {
  setTimeout: (callback, delayMs) => {
    const handle = setTimeout(callback, delayMs);
    handle.unref?.();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Timers that keep the process alive, for loops that must run until stopped (an embedded server). */
export const keepAliveTimers: Timers = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** A clock that never goes backwards (§1.6: `now` is non-decreasing). */
export class MonotonicClock implements Clock {
  private last = Number.NEGATIVE_INFINITY;
  constructor(private readonly source: Clock) {}

  now(): number {
    this.last = Math.max(this.last, this.source.now());
    return this.last;
  }
}
