/**
 * The top-level API of a Pledge instance (INTERFACES.md "SDK"), over any
 * `Network`: register functions, start or join executions, read and settle
 * promises, schedule functions. `index.ts` wires it embedded or remote.
 *
 * `run`, `beginRun`, `rpc` and `beginRpc` are idempotent by id: an id that exists
 * joins that execution, a settled one answers its stored value; never a second run.
 */
import type { Clock, Timers } from "../lib/clock.js";
import { type PromiseRecord, TAG, type Tags, type TaskRecord } from "../protocol/records.js";
import type { Response } from "../protocol/requests.js";
import { decode, encode, toError } from "./codec.js";
import { type DurableFunction, PromiseSettledError, type RegisteredFunction } from "./engine/execution.js";
import type { Network } from "./network/network.js";
import { type CallOptions, type Options, options, splitOptions } from "./options.js";
import { FunctionRegistry } from "./registry.js";
import { invocationSpan } from "./tracing.js";
import { Worker } from "./worker.js";

export interface ClientOptions {
  network: Network;
  clock: Clock;
  timers: Timers;
  random: () => number;
  group: string;
  pid: string;
  ttl: number;
  concurrency: number;
  onError?: (error: unknown, taskId: string) => void;
}

export interface Handle<T> {
  readonly id: string;
  /** Resolves with the execution's value, or rejects with its error. */
  result(): Promise<T>;
  /** Resolves when the execution has finished, whatever its outcome. */
  done(): Promise<void>;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** How often a waiting handle re-reads its promise, in case an `unblock` was lost. */
const WAIT_POLL_MS = 5_000;
/**
 * How long a handle on an execution this process runs waits for the worker alone
 * before it registers its listener anyway: a run that finishes sooner costs none,
 * and one settled from outside while it runs (cancelled, timed out, settled by
 * another process) is seen within this long, or at its next durable call.
 */
const LOCAL_WAIT_MS = 1_000;

export class PledgeClient {
  private readonly registry = new FunctionRegistry();
  private readonly dependencies = new Map<string, unknown>();
  private readonly waiters = new Map<string, Set<(record: PromiseRecord) => void>>();
  /** Per id run here, the first reads its waiters put off until the worker lets it go. */
  private readonly putOff = new Map<string, Set<() => void>>();
  private readonly worker: Worker;
  private started = false;

  constructor(private readonly settings: ClientOptions) {
    this.worker = new Worker({
      network: settings.network,
      registry: this.registry,
      dependencies: this.dependencies,
      clock: settings.clock,
      timers: settings.timers,
      random: settings.random,
      group: settings.group,
      pid: settings.pid,
      ttl: settings.ttl,
      concurrency: settings.concurrency,
      onUnblock: (record) => this.settled(record),
      onReleased: (id, record) => this.released(id, record),
      ...(settings.onError !== undefined && { onError: settings.onError }),
    });
  }

  /** `register(fn)` under its name, or `register(name, fn, { version })`. */
  register(
    nameOrFn: string | DurableFunction,
    fn?: DurableFunction,
    settings: { version?: number } = {},
  ): void {
    if (typeof nameOrFn === "string") {
      if (fn === undefined) throw new TypeError(`register ${nameOrFn}: the function is missing`);
      this.registry.register(nameOrFn, fn, settings.version);
    } else {
      this.registry.register(nameOrFn.name, nameOrFn, settings.version);
    }
    this.start();
  }

  options(values: CallOptions): Options {
    return options(values);
  }

  setDependency(name: string, value: unknown): void {
    this.dependencies.set(name, value);
  }

  /**
   * Internal, for `pledge/testing`'s `simulate`: what this client would run (every
   * registered function and version, the dependencies, its worker group). Not part
   * of the public API; it may change without notice.
   */
  registrations(): {
    functions: RegisteredFunction[];
    dependencies: ReadonlyMap<string, unknown>;
    group: string;
  } {
    return {
      functions: this.registry.entries(),
      dependencies: new Map(this.dependencies),
      group: this.settings.group,
    };
  }

  /** Runs `fn` here (or joins the execution with this id) and resolves with its value. */
  async run<T = unknown>(id: string, fn: DurableFunction | string, ...rest: unknown[]): Promise<T> {
    return (await this.beginRun<T>(id, fn, ...rest)).result();
  }

  async beginRun<T = unknown>(
    id: string,
    fn: DurableFunction | string,
    ...rest: unknown[]
  ): Promise<Handle<T>> {
    this.start();
    const name = typeof fn === "string" ? fn : this.nameFor(fn);
    const { args, options } = splitOptions(rest);
    const sentAt = this.settings.clock.now();
    const span = invocationSpan("run", id, name);
    const response = await this.send({
      kind: "task.create",
      data: {
        pid: this.settings.pid,
        ttl: this.settings.ttl,
        action: {
          kind: "promise.create",
          data: this.invocation(id, name, args, options, this.settings.network.anycast, span.tags),
        },
      },
    }).finally(() => span.end());
    if (response.status === 200) {
      const data = response.data as { task: TaskRecord; promise: PromiseRecord; preload: PromiseRecord[] };
      if (data.task.state === "acquired" && data.task.pid === this.settings.pid)
        this.worker.adopt(data.task, data.promise, data.preload, sentAt);
    } else if (response.status !== 409) {
      throw new Error(`run ${id}: ${String(response.data)}`);
    }
    return this.handle<T>(id);
  }

  /** Runs the function registered as `name` on a worker of the target group, and resolves with its value. */
  async rpc<T = unknown>(id: string, name: string, ...rest: unknown[]): Promise<T> {
    return (await this.beginRpc<T>(id, name, ...rest)).result();
  }

  async beginRpc<T = unknown>(id: string, name: string, ...rest: unknown[]): Promise<Handle<T>> {
    this.start();
    const { args, options } = splitOptions(rest);
    const target = options.target ?? this.settings.group;
    const address = /^[a-z][a-z0-9+.-]*:\/\//i.test(target) ? target : `poll://any@${target}`;
    const span = invocationSpan("rpc", id, name);
    const response = await this.send({
      kind: "promise.create",
      data: this.invocation(id, name, args, options, address, span.tags),
    }).finally(() => span.end());
    if (response.status !== 200) throw new Error(`rpc ${id}: ${String(response.data)}`);
    return this.handle<T>(id);
  }

  /** A handle on an existing execution or promise. */
  async get<T = unknown>(id: string): Promise<Handle<T>> {
    this.start();
    const response = await this.send({ kind: "promise.get", data: { id } });
    if (response.status !== 200) throw new Error(`get ${id}: ${String(response.data)}`);
    return this.handle<T>(id);
  }

  readonly promises = {
    get: async (id: string): Promise<PromiseRecord> =>
      this.promiseOf(await this.send({ kind: "promise.get", data: { id } }), id),
    create: async (
      id: string,
      settings: { timeout?: number; param?: unknown; tags?: Tags } = {},
    ): Promise<PromiseRecord> =>
      this.promiseOf(
        await this.send({
          kind: "promise.create",
          data: {
            id,
            timeoutAt: this.settings.clock.now() + (settings.timeout ?? DAY_MS),
            param: encode(settings.param, `param of ${id}`),
            tags: { [TAG.external]: "true", ...settings.tags },
          },
        }),
        id,
      ),
    resolve: async (id: string, value?: unknown) => this.settle(id, "resolved", value),
    reject: async (id: string, error?: unknown) => this.settle(id, "rejected", error),
    cancel: async (id: string, reason?: unknown) => this.settle(id, "rejected_canceled", reason),
  };

  /** Creates a schedule that runs `fn` on every cron occurrence (UTC). */
  async schedule(
    name: string,
    cron: string,
    fn: DurableFunction | string,
    ...rest: unknown[]
  ): Promise<void> {
    const func = typeof fn === "string" ? fn : this.nameFor(fn);
    const { args, options } = splitOptions(rest);
    const target = options.target ?? this.settings.group;
    const response = await this.send({
      kind: "schedule.create",
      data: {
        id: name,
        cron,
        promiseId: `${name}.{{.timestamp}}`,
        promiseTimeout: options.timeout ?? DAY_MS,
        promiseParam: encode({ func, args, version: this.versionOf(func, options) }, `arguments of ${func}`),
        promiseTags: { [TAG.target]: `poll://any@${target}`, [TAG.scope]: "global", ...options.tags },
      },
    });
    if (response.status !== 200) throw new Error(`schedule ${name}: ${String(response.data)}`);
  }

  async stop(): Promise<void> {
    await this.worker.stop();
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.worker.start();
  }

  /** The version a call asks for: the given one, the latest registered here, or 0 ("the latest", by the SDKs' convention). */
  private versionOf(name: string, options: CallOptions): number {
    return options.version ?? this.registry.get(name)?.version ?? 0;
  }

  private nameFor(fn: DurableFunction): string {
    const known = this.registry.nameOf(fn);
    if (known !== undefined) return known;
    this.registry.register(fn.name, fn);
    return fn.name;
  }

  /** The root promise of an invocation; `trace` holds its span's `traceparent`, when traced. */
  private invocation(
    id: string,
    name: string,
    args: unknown[],
    options: CallOptions,
    target: string,
    trace: Tags,
  ) {
    return {
      id,
      timeoutAt: this.settings.clock.now() + (options.timeout ?? DAY_MS),
      param: encode(
        { func: name, args, version: this.versionOf(name, options) },
        `arguments of ${name} (${id})`,
      ),
      tags: {
        [TAG.target]: target,
        [TAG.scope]: "global",
        [TAG.origin]: id,
        [TAG.branch]: id,
        [TAG.parent]: id,
        [TAG.prefix]: id,
        ...trace,
        ...options.tags,
      },
    };
  }

  private async settle(id: string, state: "resolved" | "rejected" | "rejected_canceled", value: unknown) {
    const record = this.promiseOf(
      await this.send({
        kind: "promise.settle",
        data: { id, state, value: encode(value, `value of ${id}`) },
      }),
      id,
    );
    // This process's own handles learn it now, listener or not (one run here has none).
    if (record.state !== "pending") this.settled(record);
    return record;
  }

  private promiseOf(response: Response, id: string): PromiseRecord {
    if (response.status !== 200) throw new Error(`promise ${id}: ${String(response.data)}`);
    return (response.data as { promise: PromiseRecord }).promise;
  }

  private send(request: Parameters<Network["send"]>[0]): Promise<Response> {
    return this.settings.network.send(request);
  }

  private handle<T>(id: string): Handle<T> {
    let waiting: Promise<PromiseRecord> | undefined;
    const settledRecord = () => {
      waiting ??= this.waitFor(id);
      return waiting;
    };
    return {
      id,
      result: async () => outcomeOf<T>(await settledRecord()),
      done: async () => {
        await settledRecord();
      },
    };
  }

  /**
   * Waits for `id` to settle: a listener on this process's address, re-read now and
   * then. An execution this process's worker runs needs neither at first: its
   * `task.fulfill` answers the settled promise. The listener is registered when the
   * worker lets it go otherwise (suspended, lost), or after `LOCAL_WAIT_MS`.
   */
  private waitFor(id: string): Promise<PromiseRecord> {
    return new Promise<PromiseRecord>((resolve, reject) => {
      let timer: unknown;
      let finished = false;
      const listeners = this.waiters.get(id) ?? new Set();
      const done = (record: PromiseRecord) => {
        finished = true;
        listeners.delete(done);
        if (listeners.size === 0) this.waiters.delete(id);
        this.putOff.get(id)?.delete(firstCheck);
        this.settings.timers.clearTimeout(timer);
        resolve(record);
      };
      listeners.add(done);
      this.waiters.set(id, listeners);
      const check = async () => {
        try {
          const response = await this.send({
            kind: "promise.register_listener",
            data: { awaited: id, address: this.settings.network.unicast },
          });
          if (response.status !== 200) throw new Error(`waiting for ${id}: ${String(response.data)}`);
          const record = (response.data as { promise: PromiseRecord }).promise;
          if (record.state !== "pending") return done(record);
          // Not re-armed once the handle has its answer from elsewhere meanwhile.
          if (!finished) timer = this.settings.timers.setTimeout(() => void check(), WAIT_POLL_MS);
        } catch (error) {
          listeners.delete(done);
          reject(error);
        }
      };
      const firstCheck = () => {
        this.putOff.get(id)?.delete(firstCheck);
        this.settings.timers.clearTimeout(timer);
        void check();
      };
      if (this.worker.holds(id)) {
        const putOff = this.putOff.get(id) ?? new Set();
        putOff.add(firstCheck);
        this.putOff.set(id, putOff);
        timer = this.settings.timers.setTimeout(firstCheck, LOCAL_WAIT_MS);
      } else void check();
    });
  }

  /** The worker let `id` go: settled by its own fulfil, or otherwise (then the put-off reads run). */
  private released(id: string, record: PromiseRecord | undefined): void {
    if (record !== undefined) this.settled(record);
    const putOff = this.putOff.get(id);
    this.putOff.delete(id);
    for (const firstCheck of putOff ?? []) firstCheck();
  }

  private settled(record: PromiseRecord): void {
    for (const waiter of [...(this.waiters.get(record.id) ?? [])]) waiter(record);
  }
}

function outcomeOf<T>(record: PromiseRecord): T {
  switch (record.state) {
    case "resolved":
      return decode(record.value) as T;
    case "rejected":
      throw toError(decode(record.value));
    case "rejected_canceled":
    case "rejected_timedout":
      throw new PromiseSettledError(record.id, record.state);
    case "pending":
      throw new Error(`promise ${record.id} is still pending`);
  }
}
