/**
 * The simulator's invariants, checked as the run goes (every write to the
 * store, every answer, every side effect) and at the end. None of them knows
 * about a particular bug: each states a property of the whole system (issue 4
 * item 3, PROTOCOL.md §10 "Properties worth testing directly").
 *
 *  b  A settled promise never changes (state, value, settledAt), so it settles once.
 *  c  At most one valid claim per task: a write under version v is accepted only
 *     from the process whose acquire of v was answered, and never after a later
 *     version was acquired; versions only grow, by one, on pending → acquired.
 *  d  No step runs again after its settle was acknowledged to the process.
 *  g  §10 properties, on every write: every targeted promise has a task and every
 *     task a targeted promise; a settled promise's task is fulfilled and a task is
 *     fulfilled only because its promise settled; acquired ⇔ lease fields;
 *     pending ⇔ retry timer; every queued `execute` is addressed to its promise's
 *     `resonate:target`; every queued `unblock` names a settled promise; callbacks
 *     only for targeted awaiters on external awaited promises; listeners only on
 *     external promises; a suspended task is registered on some promise.
 *     Reads project (§3.1): no answer shows a promise pending at or past its
 *     deadline; and reads never go back: once an answer showed a promise
 *     settled, no later answer shows it pending.
 *  l  Leases last their ttl: an answered acquire leaves the task held until at
 *     least arrival + ttl, and so does an answered heartbeat for every task it
 *     names that the sender still holds; an `execute` reaches only a process
 *     of its task's target group.
 *  r  Recording determinism: every run of a step got the same arguments (a
 *     recorded random number included).
 * (a, e and f are checked by `run.ts`: they need the reference, the clock and
 * the request log.)
 */
import type { Changes, StoredPromise, StoredTask } from "../src/core/state.js";
import { isExternal, type OutgoingMessage, type PromiseRecord, TAG } from "../src/protocol/records.js";
import type { Request, Response } from "../src/protocol/requests.js";
import type { NetworkRequest } from "../src/sdk/network/network.js";
import type { StoreTransaction } from "../src/store/store.js";
import type { Kernel } from "../src/testing/kernel.js";
import type { FaultCounters, NetworkObserver } from "../src/testing/network.js";
import type { StoreObserver } from "../src/testing/world.js";

const FENCED = new Set(["task.fence", "task.suspend", "task.fulfill", "task.release"]);

export class Checker implements StoreObserver, NetworkObserver {
  /** Promise ids whose settle a process saw acknowledged (d). */
  private readonly acknowledgedSettles = new Set<string>();
  /** Arguments of each step's first run (r). */
  private readonly stepArguments = new Map<string, string>();
  /** Per task: the highest version whose acquire was answered, and by whom (c). */
  private readonly claims = new Map<string, { version: number; pid: string }>();
  /** Acknowledged requests, for the idempotence replays (f). */
  readonly log: { from: string; request: NetworkRequest; response: Response }[] = [];
  effects = 0;
  /** Where lease expiries are counted (the world's fault counters). */
  counters: FaultCounters | undefined;

  /** Ids some answer has shown settled (reads never go back). */
  private readonly seenSettled = new Set<string>();

  constructor(
    private readonly kernel: Kernel,
    /** Reads the server's store now (the simulated stores answer synchronously). */
    private readonly read: <T>(work: (tx: StoreTransaction) => T) => T,
    /** The worker group of a process, by pid. */
    private readonly groupOf: (pid: string) => string | undefined,
  ) {}

  private fail(invariant: string, message: string): void {
    this.kernel.fail(invariant, message);
  }

  // --- b, c (versions) and g, on every write -------------------------------------------

  promiseWritten(before: StoredPromise | undefined, after: StoredPromise): void {
    if (before === undefined || before.state === "pending") return;
    if (
      after.state !== before.state ||
      after.settledAt !== before.settledAt ||
      JSON.stringify(after.value) !== JSON.stringify(before.value)
    )
      this.fail(
        "b settled promises never change",
        `${after.id}: ${describe(before)} became ${describe(after)}`,
      );
  }

  taskWritten(before: StoredTask | undefined, after: StoredTask): void {
    if (before === undefined) return;
    if (
      this.counters !== undefined &&
      before.state === "acquired" &&
      after.state === "pending" &&
      before.expiresAt !== undefined &&
      before.expiresAt <= this.kernel.now
    )
      this.counters.leaseExpiry += 1;
    if (after.version < before.version)
      this.fail("c versions only grow", `${after.id}: v${before.version} → v${after.version}`);
    const bumped = after.version !== before.version;
    if (
      bumped &&
      !(before.state === "pending" && after.state === "acquired" && after.version === before.version + 1)
    )
      this.fail(
        "c versions only grow",
        `${after.id}: ${before.state} v${before.version} → ${after.state} v${after.version} (a version rises by one, on acquisition only)`,
      );
    if (before.state === "fulfilled" && after.state !== "fulfilled")
      this.fail("g a fulfilled task stays fulfilled", `${after.id} became ${after.state}`);
  }

  applied(tx: StoreTransaction, changes: Changes): void {
    for (const promise of changes.promises) this.checkPromiseAndTask(tx, promise.id);
    for (const task of changes.tasks) this.checkPromiseAndTask(tx, task.id);
    for (const entry of changes.outbox) {
      const message = entry.message;
      if (message.kind === "execute") {
        const promise = tx.promise(message.data.task.id);
        if (promise?.tags[TAG.target] !== entry.address)
          this.fail(
            "g execute goes to the target",
            `${entry.key} to ${entry.address}, target ${promise?.tags[TAG.target]}`,
          );
      } else {
        const promise = tx.promise(message.data.promise.id);
        if (promise === undefined || promise.state === "pending")
          this.fail("g unblock names a settled promise", `${entry.key}: ${promise?.state ?? "missing"}`);
      }
    }
    for (const [awaited, awaiters] of changes.callbacks) {
      if (awaiters.length === 0) continue;
      const record = tx.promise(awaited);
      if (record === undefined || !isExternal(record.tags))
        this.fail(
          "g callbacks only on external promises",
          `callback on ${awaited} (${record === undefined ? "missing" : "internal"})`,
        );
      for (const awaiter of awaiters)
        if (tx.task(awaiter) === undefined)
          this.fail("g callbacks only for targeted awaiters", `${awaiter} on ${awaited}`);
    }
    for (const [awaited, addresses] of changes.listeners) {
      if (addresses.length === 0) continue;
      const record = tx.promise(awaited);
      if (record === undefined || !isExternal(record.tags))
        this.fail("g listeners only on external promises", `listener on ${awaited}`);
    }
  }

  private checkPromiseAndTask(tx: StoreTransaction, id: string): void {
    const promise = tx.promise(id);
    const task = tx.task(id);
    if (promise === undefined) {
      if (task !== undefined) this.fail("g every task has a targeted promise", `task ${id} has no promise`);
      return;
    }
    const targeted = Object.hasOwn(promise.tags, TAG.target);
    if (targeted !== (task !== undefined))
      this.fail(
        "g every targeted promise has a task",
        `${id}: targeted ${targeted}, task ${task?.state ?? "none"}`,
      );
    if (task === undefined) return;
    if ((promise.state !== "pending") !== (task.state === "fulfilled"))
      this.fail("g fulfilled iff settled", `${id}: promise ${promise.state}, task ${task.state}`);
    const acquired = task.state === "acquired";
    if (acquired !== (task.pid !== undefined && task.expiresAt !== undefined && task.ttl !== undefined))
      this.fail("g acquired iff leased", `${id}: ${task.state} with pid ${task.pid}`);
    if ((task.state === "pending") !== (task.retryAt !== undefined))
      this.fail("g pending iff retry timer", `${id}: ${task.state}, retryAt ${task.retryAt}`);
  }

  /** A suspended task must be registered on some promise, or nothing could wake it (g). */
  checkSuspendedAreWakeable(tx: StoreTransaction): void {
    const registered = new Set(tx.allCallbacks().map((callback) => callback.awaiter));
    for (const task of tx.searchTasks({ states: ["suspended"], limit: Number.MAX_SAFE_INTEGER }))
      if (!registered.has(task.id))
        this.fail("g a suspended task can be woken", `${task.id} is suspended with no callback`);
  }

  // --- c (claims) and d, from the traffic ---------------------------------------------

  answered(from: string, request: Request, response: Response, arrivedAt: number): void {
    this.checkReads(response, arrivedAt);
    if (response.status !== 200) return;
    if (request.kind === "task.heartbeat") {
      for (const { id, version } of request.data.tasks) this.checkLease(from, id, version, arrivedAt);
      return;
    }
    if (request.kind === "task.acquire" || request.kind === "task.create") {
      const task = (response.data as { task?: { id: string; version: number; state: string; pid?: string } })
        .task;
      if (task === undefined || task.state !== "acquired" || task.pid !== from) return;
      this.checkLease(from, task.id, task.version, arrivedAt);
      const claim = this.claims.get(task.id);
      if (
        claim !== undefined &&
        claim.version >= task.version &&
        !(claim.version === task.version && claim.pid === from)
      )
        this.fail(
          "c one claim per task",
          `${task.id} v${task.version} acquired by ${from}, already v${claim.version} by ${claim.pid}`,
        );
      this.claims.set(task.id, { version: task.version, pid: from });
      return;
    }
    if (!FENCED.has(request.kind)) return;
    const { id, version } = request.data as { id: string; version: number };
    const claim = this.claims.get(id);
    if (claim === undefined || claim.version !== version || claim.pid !== from)
      this.fail(
        "c one claim per task",
        `${request.kind} ${id} v${version} from ${from} accepted; the valid claim is ${claim === undefined ? "none" : `v${claim.version} by ${claim.pid}`}`,
      );
  }

  /** l: an `execute` reaches only a process of its task's target group. */
  pushed(to: string, message: OutgoingMessage): void {
    if (message.kind !== "execute") return;
    const id = message.data.task.id;
    const target = this.read((tx) => tx.promise(id))?.tags[TAG.target];
    const group = target === undefined ? undefined : /^poll:\/\/(?:any|uni)@([^/]+)/.exec(target)?.[1];
    if (group === undefined || this.groupOf(to) !== group)
      this.fail(
        "l a task runs in its target group",
        `execute ${id} (target ${target}) sent to ${to} of ${this.groupOf(to)}`,
      );
  }

  /** §3.1 projection, and reads never go back. */
  private checkReads(response: Response, arrivedAt: number): void {
    for (const promise of promisesIn(response.data)) {
      if (promise.state === "pending" && promise.timeoutAt <= arrivedAt)
        this.fail(
          "g reads project timeouts",
          `${promise.id} read pending at ${arrivedAt}, its deadline ${promise.timeoutAt}`,
        );
      if (promise.state !== "pending") this.seenSettled.add(promise.id);
      else if (this.seenSettled.has(promise.id))
        this.fail("g reads never go back", `${promise.id} was read settled, then pending`);
    }
  }

  /** l: a held lease lasts at least its ttl from the request that granted or renewed it. */
  private checkLease(pid: string, id: string, version: number, arrivedAt: number): void {
    const task = this.read((tx) => tx.task(id));
    if (task === undefined || task.state !== "acquired" || task.version !== version || task.pid !== pid)
      return;
    const least = Math.min(arrivedAt + (task.ttl ?? 0), Number.MAX_SAFE_INTEGER);
    if ((task.expiresAt ?? 0) < least)
      this.fail(
        "l leases last their ttl",
        `${id} v${version} held by ${pid} until ${task.expiresAt}, less than ${least}`,
      );
  }

  acknowledged(from: string, request: NetworkRequest, response: Response): void {
    this.log.push({ from, request, response });
    if (response.status !== 200) return;
    if (request.kind === "task.fence" && request.data.action.kind === "promise.settle")
      this.acknowledgedSettles.add(request.data.action.data.id);
  }

  /** A step ran (its side effect happened) as promise `id` with `args`. */
  effect(id: string, args: unknown[]): void {
    this.effects += 1;
    this.kernel.trace(() => `step ${id} runs ${JSON.stringify(args)}`);
    if (this.acknowledgedSettles.has(id))
      this.fail("d no step runs after its settle was acknowledged", `step ${id} ran again`);
    const text = JSON.stringify(args);
    const first = this.stepArguments.get(id);
    if (first === undefined) this.stepArguments.set(id, text);
    else if (first !== text)
      this.fail("r recorded values replay", `step ${id} ran with ${first}, then with ${text}`);
  }
}

/** Every promise record an answer carries (a record, an action's, preload, a search page). */
function promisesIn(data: unknown): PromiseRecord[] {
  if (typeof data !== "object" || data === null) return [];
  const record = data as {
    promise?: PromiseRecord;
    preload?: PromiseRecord[];
    promises?: PromiseRecord[];
    action?: { data?: unknown };
  };
  return [
    ...(record.promise === undefined ? [] : [record.promise]),
    ...(record.preload ?? []),
    ...(record.promises ?? []),
    ...promisesIn(record.action?.data),
  ];
}

function describe(promise: PromiseRecord): string {
  return `${promise.state}@${promise.settledAt} ${JSON.stringify(promise.value)}`;
}
