/**
 * A simulated deployment: one server process over a store, worker processes
 * running the real SDK (`PledgeClient`: worker, engines, codec), and the fault
 * injector that crashes and restarts them, breaks their streams and moves the
 * clock. The project's simulator (`sim/`) and `simulate()` for users both
 * build on it.
 *
 * What it owns: process lifetimes and the fault plan. What it leaves to
 * others: what runs (the caller registers functions on each incarnation) and
 * what is checked (the caller observes the store and the traffic).
 *
 * Invariants:
 *  D1  A process's incarnation has its own network, client, timers and random
 *      stream; nothing of a crashed incarnation runs after the crash (kernel K3).
 *  D2  Faults happen only while `chaos` is on; `calm()` ends them for good, so
 *      liveness can be judged on a quiet system.
 *  D3  A crashed process is always restarted (after a delay), so "every
 *      execution completes" is a fair demand once the system is calm.
 */
import type { Changes, StoredPromise, StoredTask } from "../core/state.js";
import { assert } from "../lib/assert.js";
import { PledgeClient } from "../sdk/client.js";
import type { ShellConfig } from "../server/shell.js";
import type { Store, StoreTransaction } from "../store/store.js";
import { type Kernel, SimNode } from "./kernel.js";
import {
  emptyCounters,
  type FaultCounters,
  type NetworkFaults,
  type NetworkObserver,
  NO_NETWORK_FAULTS,
  SimNetwork,
  SimServer,
} from "./network.js";
import type { Random } from "./random.js";

export interface WorldFaults extends NetworkFaults {
  /** Per fault tick: probability that a random worker process crashes. */
  workerCrash: number;
  /** Per fault tick: probability that the server process crashes. */
  serverCrash: number;
  /** Per fault tick: probability that the clock jumps forward (up to twice the lease). */
  clockJump: number;
  /** Per fault tick: probability that a process's message stream breaks. */
  sseDisconnect: number;
  /** Probability that a step crashes its process right after its side effect (`crashPoint`). */
  crashInStep: number;
  /** Probability that a server timer fires up to 3 s late. */
  lateTimer: number;
}

export const NO_FAULTS: WorldFaults = {
  ...NO_NETWORK_FAULTS,
  workerCrash: 0,
  serverCrash: 0,
  clockJump: 0,
  sseDisconnect: 0,
  crashInStep: 0,
  lateTimer: 0,
};

/** Draws a fault plan whose rates differ per seed: some seeds are calm, some brutal, in each dimension. */
export function drawFaults(random: Random): WorldFaults {
  const level = (low: number, high: number) => random.pick([0, low, (low + high) / 2, high]);
  return {
    drop: level(0.01, 0.1),
    duplicate: level(0.01, 0.1),
    delay: level(0.01, 0.08),
    workerCrash: level(0.02, 0.2),
    serverCrash: level(0.01, 0.08),
    clockJump: level(0.01, 0.08),
    sseDisconnect: level(0.02, 0.15),
    crashInStep: level(0.02, 0.15),
    lateTimer: level(0.05, 0.5),
  };
}

/** Sees every write of the server's store as it is applied, with the state before it. */
export interface StoreObserver {
  promiseWritten?(before: StoredPromise | undefined, after: StoredPromise): void;
  taskWritten?(before: StoredTask | undefined, after: StoredTask): void;
  /** After the changes of one step were applied (read the rest through `tx`). */
  applied?(tx: StoreTransaction, changes: Changes): void;
}

/** Wraps a store so every applied change passes `observer` first (the checkers' tap on the disk). */
export function observeStore(store: Store, observer: StoreObserver): Store {
  return {
    get description() {
      return store.description;
    },
    get stats() {
      return store.stats;
    },
    ping: () => store.ping(),
    close: () => store.close(),
    transaction: (work) =>
      store.transaction((tx) =>
        work(
          Object.assign(Object.create(tx) as StoreTransaction, {
            apply(changes: Changes) {
              for (const promise of changes.promises)
                observer.promiseWritten?.(tx.promise(promise.id), promise);
              for (const task of changes.tasks) observer.taskWritten?.(tx.task(task.id), task);
              tx.apply(changes);
              observer.applied?.(tx, changes);
            },
          }),
        ),
      ),
  };
}

/** One simulated process running the SDK. */
export class SimProcess {
  readonly node: SimNode;
  network!: SimNetwork;
  client!: PledgeClient;
  /** This incarnation's own random stream, for what its script decides. */
  random!: Random;
  private pidValue = "";

  constructor(
    private readonly world: World,
    readonly name: string,
    readonly group: string,
    private readonly setup: (process: SimProcess) => void,
  ) {
    this.node = new SimNode(name);
    this.boot();
  }

  get pid(): string {
    return this.pidValue;
  }

  get alive(): boolean {
    return this.node.alive;
  }

  /**
   * A crash point inside a step, after its side effect and before its result is
   * recorded: during chaos, with the plan's `crashInStep` probability, the
   * process crashes here and this returns true (the caller then never returns).
   */
  crashPoint(): boolean {
    if (!this.node.alive || !this.world.random.bool(this.world.faults.crashInStep)) return false;
    this.world.counters.crashInStep += 1;
    this.world.crashProcess(this);
    return true;
  }

  /** Runs `run` after `delayMs` in this incarnation (nothing runs if it crashed meanwhile). */
  schedule(delayMs: number, run: () => void): void {
    this.world.kernel.schedule(this.node, delayMs, run);
  }

  crash(): void {
    this.network.kill();
    this.world.kernel.crash(this.node);
  }

  restart(): void {
    this.world.kernel.restart(this.node);
    this.boot();
  }

  private boot(): void {
    const { kernel } = this.world;
    const incarnation = this.node.incarnation;
    this.pidValue = `${this.name}-${incarnation}`;
    const random = kernel.random.fork(`${this.name}#${incarnation}`);
    this.network = new SimNetwork({
      kernel,
      server: this.world.server,
      node: this.node,
      group: this.group,
      pid: this.pidValue,
      random: random.fork("network"),
      faults: () => this.world.faults,
      counters: this.world.counters,
      ...(this.world.observer !== undefined && { observer: this.world.observer }),
    });
    const values = random.fork("values");
    this.random = random.fork("script");
    this.client = new PledgeClient({
      network: this.network,
      clock: kernel.clock,
      timers: kernel.timersFor(this.node),
      random: () => values.next(),
      group: this.group,
      pid: this.pidValue,
      ttl: this.world.ttlMs,
      concurrency: 16,
      onError: (error, taskId) =>
        kernel.trace(
          () =>
            `${this.name} task ${taskId} failed: ${error instanceof Error ? error.message : String(error)}`,
        ),
    });
    this.setup(this);
  }
}

export interface WorldOptions {
  kernel: Kernel;
  store: Store;
  shell: ShellConfig;
  /** Fault rates while chaos lasts. */
  faults: WorldFaults;
  /** Lease length the SDK asks for. */
  ttlMs: number;
  /** Mean interval between fault ticks. */
  faultTickMs?: number;
  /** False: no periodic fault ticks; the driver calls `faultTickNow()` (simulate paces them by activity). */
  periodicFaults?: boolean;
  observer?: NetworkObserver;
}

export class World {
  readonly kernel: Kernel;
  readonly server: SimServer;
  readonly counters: FaultCounters = emptyCounters();
  readonly processes: SimProcess[] = [];
  readonly random: Random;
  readonly ttlMs: number;
  readonly observer: NetworkObserver | undefined;
  private chaos = true;
  private readonly chaosNode = new SimNode("chaos");

  constructor(private readonly options: WorldOptions) {
    this.kernel = options.kernel;
    this.ttlMs = options.ttlMs;
    this.observer = options.observer;
    this.random = options.kernel.random.fork("faults");
    this.server = new SimServer({
      kernel: options.kernel,
      store: options.store,
      config: options.shell,
      timerLateness: () => {
        if (!this.random.bool(this.faults.lateTimer)) return 0;
        this.counters.lateTimer += 1;
        return this.random.int(1, 3_000);
      },
    });
    if (options.periodicFaults !== false) this.scheduleFaultTick();
  }

  /** The fault rates in force now (none once calm, D2). */
  get faults(): WorldFaults {
    return this.chaos ? this.options.faults : NO_FAULTS;
  }

  get calmed(): boolean {
    return !this.chaos;
  }

  /** Adds a process; `setup` runs on each of its incarnations (register functions, start work). */
  spawn(name: string, group: string, setup: (process: SimProcess) => void): SimProcess {
    const process = new SimProcess(this, name, group, setup);
    this.processes.push(process);
    return process;
  }

  /** One fault tick now, for a driver that paces faults itself; nothing once calm (D2). */
  faultTickNow(): void {
    if (this.chaos) this.faultTick();
  }

  /** Ends all faults (D2); crashed processes still come back (D3). */
  calm(): void {
    this.chaos = false;
    this.kernel.trace("calm: faults end");
  }

  crashProcess(process: SimProcess): void {
    process.crash();
    this.kernel.schedule(
      this.chaosNode,
      this.random.int(50, 10_000),
      () => process.restart(),
      `restarts ${process.name}`,
    );
  }

  private crashServer(): void {
    this.counters.serverCrash += 1;
    this.server.crash();
    this.kernel.schedule(
      this.chaosNode,
      this.random.int(10, 5_000),
      () => this.server.restart(),
      "restarts server",
    );
  }

  private scheduleFaultTick(): void {
    const mean = this.options.faultTickMs ?? 500;
    this.kernel.schedule(this.chaosNode, this.random.int(1, 2 * mean), () => {
      if (!this.chaos) return;
      this.faultTick();
      this.scheduleFaultTick();
    });
  }

  private faultTick(): void {
    const faults = this.faults;
    const live = this.processes.filter((process) => process.alive);
    if (live.length > 0 && this.random.bool(faults.workerCrash)) {
      this.counters.workerCrash += 1;
      this.crashProcess(this.random.pick(live));
    }
    if (this.server.alive && this.random.bool(faults.serverCrash)) this.crashServer();
    if (this.random.bool(faults.clockJump)) {
      this.counters.clockJump += 1;
      const jumpMs = this.random.int(1_000, 2 * this.ttlMs);
      this.kernel.trace(`clock jumps ${jumpMs} ms`);
      this.kernel.jump(jumpMs);
    }
    if (live.length > 0 && this.random.bool(faults.sseDisconnect)) {
      const process = this.random.pick(live);
      if (process.alive && process.network.breakStreams() > 0) {
        this.counters.sseDisconnect += 1;
        this.kernel.trace(`${process.name}'s stream breaks`);
      }
    }
    assert(this.chaos, "faults only during chaos (D2)");
  }
}
