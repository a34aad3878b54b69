/**
 * The worker: claims tasks, runs their executions until done or blocked, and
 * reports back. It acquires a task with a lease of `ttl` ms, heartbeats every
 * ttl/2 while it holds any, suspends a blocked execution with one callback per
 * awaited promise (dropping it from memory on `200`, continuing it on `300`),
 * and fulfils a finished one. At most `concurrency` tasks are in flight; more
 * executes wait their turn.
 *
 * Invariants:
 *  W1  A task is held (in `held`) from a successful acquire until its fulfil,
 *      suspend, release or loss; heartbeats name exactly the held tasks.
 *  W2  An `execute` for a task already held here is ignored.
 *  W3  `stop()` releases every held task, so another worker can take it at once.
 *  W4  `validUntil` never exceeds the lease the server holds for us: it starts at
 *      the acquire's send time + ttl (the server set expiresAt = arrival + ttl),
 *      and a heartbeat sent at t moves it to t + ttl only if its answer came
 *      back before `validUntil` (so the heartbeat arrived while the lease was
 *      live and extended it). Heartbeats are always answered 200, matched or
 *      not (PROTOCOL.md §5.5), so this bound is all a worker can know.
 *  W5  Every task that leaves `held` is reported once to `onReleased`, with the
 *      settled promise only when its own `task.fulfill` answered one; `stop()`
 *      reports what it held, and an acquire answered after it gives its task back.
 */
import type { Clock, Timers } from "../lib/clock.js";
import {
  type OutgoingMessage,
  PRELOAD_OPT_OUT_EXTENSION,
  type PromiseRecord,
  SETTLE_ON_CREATE_EXTENSION,
  type TaskRecord,
} from "../protocol/records.js";
import type { Response } from "../protocol/requests.js";
import { Context } from "./engine/context.js";
import { Execution, type ExecutionEnvironment, type Outcome, type Registry } from "./engine/execution.js";
import type { Network } from "./network/network.js";

export interface WorkerOptions {
  network: Network;
  registry: Registry;
  dependencies: ReadonlyMap<string, unknown>;
  clock: Clock;
  timers: Timers;
  random: () => number;
  group: string;
  pid: string;
  /** Lease length in ms. */
  ttl: number;
  /** Most tasks in flight at once. */
  concurrency: number;
  /** Called with each `unblock` message (the client resolves waiting handles). */
  onUnblock?: (promise: PromiseRecord) => void;
  /**
   * Called when this worker stops holding a task: with its promise as `task.fulfill`
   * answered it, or undefined when it stopped otherwise (suspended, lost, abandoned,
   * stopped); the client then asks the server (W5).
   */
  onReleased?: (id: string, settled: PromiseRecord | undefined) => void;
  /** Called when a task's execution fails in a way the worker cannot report (logged by the caller). */
  onError?: (error: unknown, taskId: string) => void;
}

interface Held {
  version: number;
  /** Until when this process can be sure its lease holds (W4); undefined while acquiring. */
  validUntil?: number;
  execution?: Execution;
  /** A `task.create` answered with this task ours while our own acquire was in flight. */
  adopted?: { task: TaskRecord; promise: PromiseRecord; preload: PromiseRecord[]; validUntil: number };
}

/**
 * Whether this worker uses a protocol extension: while the server says it takes it
 * (`Network.supports`), until one refusal turns it off (ADR 0005).
 */
class ExtensionSwitch {
  private refused = false;

  constructor(
    private readonly network: Network,
    private readonly extension: string,
  ) {}

  get supported(): boolean {
    return !this.refused && (this.network.supports?.(this.extension) ?? false);
  }

  set supported(value: boolean) {
    this.refused = !value;
  }
}

export class Worker {
  private readonly held = new Map<string, Held>();
  private readonly waiting: { id: string; version: number }[] = [];
  private unsubscribe: (() => void) | undefined;
  private heartbeatTimer: unknown;
  private stopped = false;
  private readonly environment: ExecutionEnvironment;

  constructor(private readonly options: WorkerOptions) {
    this.environment = {
      network: options.network,
      registry: options.registry,
      dependencies: options.dependencies,
      clock: options.clock,
      timers: options.timers,
      random: options.random,
      group: options.group,
      pid: options.pid,
      context: (frame, execution) => new Context(frame, execution, options.clock),
      settleOnCreate: new ExtensionSwitch(options.network, SETTLE_ON_CREATE_EXTENSION),
      preloadOptOut: new ExtensionSwitch(options.network, PRELOAD_OPT_OUT_EXTENSION),
      holdsLease: (task) => {
        const held = this.held.get(task.id);
        return (
          held !== undefined &&
          held.version === task.version &&
          held.validUntil !== undefined &&
          options.clock.now() < held.validUntil
        );
      },
    };
  }

  start(): void {
    this.unsubscribe = this.options.network.subscribe((message) => this.receive(message));
    this.scheduleHeartbeat();
  }

  /**
   * Runs a task this process already holds (a `task.create` answered with it
   * acquired); `sentAt` is when that request was first sent (W4).
   */
  adopt(task: TaskRecord, promise: PromiseRecord, preload: PromiseRecord[], sentAt: number): void {
    if (this.stopped) return;
    const validUntil = sentAt + this.options.ttl;
    const current = this.held.get(task.id);
    if (current !== undefined) {
      // Our acquire for an `execute` is in flight and will lose to this claim (409):
      // keep the claim, so the acquire's failure runs it instead of dropping the task.
      if (current.execution === undefined) current.adopted = { task, promise, preload, validUntil };
      return;
    }
    this.held.set(task.id, { version: task.version, validUntil });
    void this.execute(task, promise, preload);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe?.();
    this.options.timers.clearTimeout(this.heartbeatTimer);
    const held = [...this.held.entries()];
    this.held.clear();
    for (const [id] of held) this.options.onReleased?.(id, undefined);
    await Promise.allSettled(
      held.map(async ([id, { version, execution }]) => {
        execution?.abandon("the worker stopped");
        await this.options.network.send({ kind: "task.release", data: { id, version } });
      }),
    );
  }

  private receive(message: OutgoingMessage): void {
    if (this.stopped) return;
    if (message.kind === "unblock") {
      this.options.onUnblock?.(message.data.promise);
      return;
    }
    const { id, version } = message.data.task;
    if (this.held.has(id) || this.waiting.some((queued) => queued.id === id)) return; // W2
    this.waiting.push({ id, version });
    this.drain();
  }

  private drain(): void {
    while (!this.stopped && this.held.size < this.options.concurrency && this.waiting.length > 0) {
      const next = this.waiting.shift() as { id: string; version: number };
      if (this.held.has(next.id)) continue;
      this.held.set(next.id, { version: next.version + 1 });
      void this.acquire(next.id, next.version);
    }
  }

  private async acquire(id: string, version: number): Promise<void> {
    try {
      const sentAt = this.options.clock.now();
      const response = await this.options.network.send({
        kind: "task.acquire",
        data: { id, version, pid: this.options.pid, ttl: this.options.ttl },
      });
      if (this.stopped) {
        // Stopped while the acquire was out (W3): what it won goes straight back.
        if (response.status === 200) {
          const won = (response.data as { task: TaskRecord }).task;
          await this.options.network
            .send({ kind: "task.release", data: { id, version: won.version } })
            .catch(() => {});
        }
        return;
      }
      if (response.status !== 200) {
        const adopted = this.held.get(id)?.adopted;
        if (adopted !== undefined) {
          // This process claimed it meanwhile through task.create: run that claim.
          this.held.set(id, { version: adopted.task.version, validUntil: adopted.validUntil });
          await this.execute(adopted.task, adopted.promise, adopted.preload);
          return;
        }
        // Someone else claimed it, it moved on, or (a retried acquire that was applied) it is ours at a
        // version we did not see: in every case, not ours to run; the server re-dispatches if needed.
        this.release(id);
        return;
      }
      const data = response.data as { task: TaskRecord; promise: PromiseRecord; preload: PromiseRecord[] };
      this.held.set(id, { version: data.task.version, validUntil: sentAt + this.options.ttl });
      await this.execute(data.task, data.promise, data.preload);
    } catch (error) {
      this.options.onError?.(error, id);
      this.release(id);
    }
  }

  private async execute(task: TaskRecord, promise: PromiseRecord, preload: PromiseRecord[]): Promise<void> {
    let fulfilled: PromiseRecord | undefined;
    try {
      if (promise.state !== "pending") return;
      const execution = new Execution(
        this.environment,
        { id: task.id, version: task.version },
        promise,
        preload,
      );
      const held = this.held.get(task.id);
      if (held === undefined) return;
      held.execution = execution;
      let outcome: Outcome = await execution.start();
      for (;;) {
        if (outcome.kind === "abandoned") return;
        if (outcome.kind === "done") {
          const response = await this.options.network.send({
            kind: "task.fulfill",
            data: {
              id: task.id,
              version: task.version,
              action: {
                kind: "promise.settle",
                data: { id: task.id, state: outcome.state, value: outcome.value },
              },
            },
          });
          fulfilled = fulfilledPromise(response, task.id);
          return;
        }
        const response = await this.options.network.send({
          kind: "task.suspend",
          data: {
            id: task.id,
            version: task.version,
            actions: outcome.awaited.map((awaited) => ({
              kind: "promise.register_callback" as const,
              data: { awaited, awaiter: task.id },
            })),
          },
        });
        if (response.status !== 300) {
          execution.abandon(response.status === 200 ? "suspended" : `suspend answered ${response.status}`);
          return;
        }
        // Something awaited settled meanwhile: read it and go on with the same execution.
        const records = await Promise.all(outcome.awaited.map((id) => this.read(id)));
        outcome = await execution.resume(records.filter((record) => record !== undefined));
      }
    } catch (error) {
      this.options.onError?.(error, task.id);
    } finally {
      this.release(task.id, fulfilled);
    }
  }

  private async read(id: string): Promise<PromiseRecord | undefined> {
    const response = await this.options.network.send({ kind: "promise.get", data: { id } });
    return response.status === 200 ? (response.data as { promise: PromiseRecord }).promise : undefined;
  }

  /** W4: a heartbeat answered while our bound still held extended every lease it named. */
  private extendLeases(tasks: { id: string; version: number }[], sentAt: number): void {
    const now = this.options.clock.now();
    for (const { id, version } of tasks) {
      const held = this.held.get(id);
      if (held === undefined || held.version !== version || held.validUntil === undefined) continue;
      if (now < held.validUntil) held.validUntil = Math.max(held.validUntil, sentAt + this.options.ttl);
    }
  }

  /** Whether this worker holds the task `id` (acquiring, running or finishing it). */
  holds(id: string): boolean {
    return this.held.has(id);
  }

  private release(id: string, settled?: PromiseRecord): void {
    // Not held any more: `stop()` let it go, and reported it, already (W5).
    if (!this.held.delete(id)) return;
    this.options.onReleased?.(id, settled);
    this.drain();
  }

  private scheduleHeartbeat(): void {
    if (this.stopped) return;
    this.heartbeatTimer = this.options.timers.setTimeout(
      () => {
        const tasks = [...this.held.entries()].map(([id, { version }]) => ({ id, version }));
        const sentAt = this.options.clock.now();
        const beat =
          tasks.length === 0
            ? Promise.resolve()
            : this.options.network
                .send({ kind: "task.heartbeat", data: { pid: this.options.pid, tasks } })
                .then((response) => {
                  if (response.status === 200) this.extendLeases(tasks, sentAt);
                });
        void beat.catch(() => {}).finally(() => this.scheduleHeartbeat());
      },
      Math.max(1, Math.floor(this.options.ttl / 2)),
    );
  }
}

/** The settled promise a `task.fulfill` of task `id` answered, if it answered one. */
function fulfilledPromise(response: Response, id: string): PromiseRecord | undefined {
  if (response.status !== 200) return undefined;
  const promise = (response.data as { promise?: PromiseRecord } | undefined)?.promise;
  return typeof promise === "object" && promise !== null && promise.id === id && promise.state !== "pending"
    ? promise
    : undefined;
}
