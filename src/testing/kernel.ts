/**
 * The simulator's kernel: one simulated clock, one queue of events, and the
 * processes ("nodes") that own them. Everything a simulated run does happens as
 * an event popped from this queue; between two events the kernel lets every
 * promise continuation run to completion and nothing else, so the run is a pure
 * function of the seed (STYLE practice 4).
 *
 * What it owns: time (`now`, jumps), ordering (earliest first, ties in
 * scheduling order), node lifetimes (an event belongs to one incarnation of a
 * node and is dropped if that incarnation died), the trace, and the failure
 * that ends a run. What it leaves to others: what the events do (network,
 * worlds, workloads) and which faults to inject (`world.ts`).
 *
 * Invariants:
 *  K1  Time never goes backwards: an event scheduled in the past runs at `now`.
 *  K2  Events run in (time, scheduling order); two runs that schedule the same
 *      events in the same order run them in the same order.
 *  K3  An event runs only if the incarnation that scheduled it is still alive:
 *      a crashed process does nothing, ever again, and a restarted one starts
 *      with no timers and no messages of its predecessor.
 *  K4  Between two events every microtask has run (one `setImmediate` hop, the
 *      only macrotask a simulated run schedules), so an event sees the complete
 *      consequences of the events before it.
 *  K5  Time cannot stall: a run whose events keep landing on one instant
 *      (a loop that reschedules itself at once forever) fails as a liveness
 *      violation instead of hanging.
 */
import { assert } from "../lib/assert.js";
import type { Clock, Timers } from "../lib/clock.js";
import { Random } from "./random.js";

/** A simulated process. Its `incarnation` grows on each restart. */
export class SimNode {
  incarnation = 1;
  alive = true;
  constructor(readonly name: string) {}
}

/** A trace line, built only when somebody reads the trace. */
export type Label = string | (() => string);

interface SimEvent {
  at: number;
  seq: number;
  node: SimNode;
  incarnation: number;
  label: Label | undefined;
  run: () => void;
  canceled: boolean;
}

/** The first violated invariant of a run; it stops the run. */
export class SimulationFailure extends Error {
  override name = "SimulationFailure";
  constructor(
    readonly invariant: string,
    message: string,
    readonly at: number,
  ) {
    super(`${invariant}: ${message}`);
  }
}

export interface KernelOptions {
  seed: number;
  /** Simulated epoch of the run (ms since the Unix epoch). */
  startMs?: number;
  /** Receives each trace line as it is written (the `--trace` output). */
  onTrace?: (line: string) => void;
}

/** K5: this many events in a row at one instant means time stalled. */
const STALL_EVENTS = 100_000;

/** Default simulated start: 2030-01-01T00:00:00Z, far from 0 so instants look real. */
const DEFAULT_START_MS = Date.UTC(2030, 0, 1);

export class Kernel {
  readonly random: Random;
  readonly seed: number;
  readonly startMs: number;
  private nowMs: number;
  private readonly queue: SimEvent[] = [];
  private seq = 0;
  private failure: SimulationFailure | undefined;
  private readonly onTrace: ((line: string) => void) | undefined;
  /** Events run so far (the simulator's "steps"). */
  steps = 0;
  private eventsThisInstant = 0;

  constructor(options: KernelOptions) {
    this.seed = options.seed;
    this.random = new Random(options.seed);
    this.startMs = options.startMs ?? DEFAULT_START_MS;
    this.nowMs = this.startMs;
    this.onTrace = options.onTrace;
  }

  get now(): number {
    return this.nowMs;
  }

  /** The clock every node reads (one clock; skew is modelled by the faults, not here). */
  readonly clock: Clock = { now: () => this.nowMs };

  /** Moves time forward by `ms` at once (a clock jump): every timer due meanwhile fires next. */
  jump(ms: number): void {
    assert(ms >= 0, "K1 clock jumps go forward");
    this.nowMs += ms;
  }

  /** Schedules `run` on behalf of `node`'s current incarnation, `delayMs` from now. */
  schedule(node: SimNode, delayMs: number, run: () => void, label?: Label): unknown {
    assert(Number.isFinite(delayMs), "event delays are finite");
    const event: SimEvent = {
      at: this.nowMs + Math.max(0, Math.round(delayMs)),
      seq: this.seq++,
      node,
      incarnation: node.incarnation,
      label,
      run,
      canceled: false,
    };
    this.push(event);
    return event;
  }

  cancel(handle: unknown): void {
    if (handle !== undefined && handle !== null) (handle as SimEvent).canceled = true;
  }

  /** Timers owned by `node`: they die with its incarnation (K3). */
  timersFor(node: SimNode): Timers {
    return {
      setTimeout: (callback, delayMs) => this.schedule(node, delayMs, callback),
      clearTimeout: (handle) => this.cancel(handle),
    };
  }

  /** The processor's "next turn" for `node`. */
  deferFor(node: SimNode): (callback: () => void) => void {
    return (callback) => {
      this.schedule(node, 0, callback);
    };
  }

  /** Ends `node`'s incarnation: its events and timers are dropped (K3). */
  crash(node: SimNode): void {
    if (!node.alive) return;
    node.alive = false;
    this.trace(`${node.name} crashed`);
  }

  /** Starts a new incarnation of a crashed node. */
  restart(node: SimNode): void {
    assert(!node.alive, `restart of ${node.name}, which is alive`);
    node.incarnation += 1;
    node.alive = true;
    this.trace(`${node.name} restarted (incarnation ${node.incarnation})`);
  }

  /** Records a violated invariant; the run stops at the next event boundary. */
  fail(invariant: string, message: string): void {
    this.failure ??= new SimulationFailure(invariant, message, this.nowMs);
    this.trace(`FAILED ${invariant}: ${message}`);
  }

  get failed(): SimulationFailure | undefined {
    return this.failure;
  }

  /** Whether trace lines are wanted (build costly ones only then). */
  get tracing(): boolean {
    return this.onTrace !== undefined;
  }

  trace(line: Label): void {
    if (this.onTrace === undefined) return;
    this.onTrace(`${this.nowMs - this.startMs} ${typeof line === "string" ? line : line()}`);
  }

  /** Whether any live event is queued. */
  get pending(): boolean {
    return this.queue.some((event) => this.live(event));
  }

  /** Runs the next live event and everything it set off (K4); false when none is left. */
  async step(): Promise<boolean> {
    for (;;) {
      const event = this.pop();
      if (event === undefined) return false;
      if (!this.live(event)) continue;
      if (event.at > this.nowMs) this.eventsThisInstant = 0;
      else if (++this.eventsThisInstant > STALL_EVENTS) {
        this.fail("e liveness", `simulated time stalled: ${STALL_EVENTS} events at one instant`);
        return false;
      }
      this.nowMs = Math.max(this.nowMs, event.at); // K1
      this.steps += 1;
      const label = event.label;
      if (label !== undefined)
        this.trace(() => `${event.node.name} ${typeof label === "string" ? label : label()}`);
      event.run();
      await settle();
      return true;
    }
  }

  /** Runs events while `keepGoing()` holds, the queue has events and no invariant failed. */
  async runWhile(keepGoing: () => boolean): Promise<void> {
    while (this.failure === undefined && keepGoing()) {
      if (!(await this.step())) return;
    }
  }

  private live(event: SimEvent): boolean {
    return !event.canceled && event.node.alive && event.node.incarnation === event.incarnation;
  }

  // A binary min-heap on (at, seq) (K2).
  private push(event: SimEvent): void {
    const queue = this.queue;
    queue.push(event);
    let index = queue.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(event, queue[parent] as SimEvent)) break;
      queue[index] = queue[parent] as SimEvent;
      index = parent;
    }
    queue[index] = event;
  }

  private pop(): SimEvent | undefined {
    const queue = this.queue;
    const top = queue[0];
    const last = queue.pop();
    if (top === undefined || last === undefined || queue.length === 0) return top;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= queue.length) break;
      const right = left + 1;
      const child =
        right < queue.length && before(queue[right] as SimEvent, queue[left] as SimEvent) ? right : left;
      if (!before(queue[child] as SimEvent, last)) break;
      queue[index] = queue[child] as SimEvent;
      index = child;
    }
    queue[index] = last;
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** Lets every queued microtask (and those they queue) run (K4). */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
