/**
 * The reference store: plain maps, nothing survives the process. Every other
 * store must answer exactly as this one does (the shared suite and the
 * differential test hold them to it).
 *
 * Transactions apply each step's changes as they come; there is no rollback
 * because nothing here can fail after validation, and a failed assertion stops
 * the process anyway.
 */
import type {
  Changes,
  DueWork,
  OutboxEntry,
  OutboxQuery,
  PromiseQuery,
  ScheduleQuery,
  SettledQuery,
  StoredPromise,
  StoredSchedule,
  StoredTask,
  TaskQuery,
} from "../core/state.js";
import { promiseDueAt, scheduleDueAt, taskDueAt } from "../core/state.js";
import { compareCodePoints } from "../lib/order.js";
import { TAG, type Tags } from "../protocol/records.js";
import type { StateCounts, Store, StoreStats, StoreTransaction } from "./store.js";

const compareStrings = compareCodePoints;
const byId = (a: { id: string }, b: { id: string }) => compareCodePoints(a.id, b.id);
const after = (id: string, cursor: string | undefined) =>
  cursor === undefined || compareCodePoints(id, cursor) > 0;

function hasTags(tags: Tags, wanted: Tags | undefined): boolean {
  if (wanted === undefined) return true;
  return Object.entries(wanted).every(([key, value]) => Object.hasOwn(tags, key) && tags[key] === value);
}

export class MemoryStore implements Store, StoreTransaction {
  readonly description = "memory";
  readonly stats: StoreStats = { commits: 0 };
  private promises = new Map<string, StoredPromise>();
  private tasks = new Map<string, StoredTask>();
  private schedules = new Map<string, StoredSchedule>();
  private callbackSets = new Map<string, string[]>();
  private listenerSets = new Map<string, string[]>();
  private messages = new Map<string, OutboxEntry>();
  private closed = false;

  async transaction<T>(work: (tx: StoreTransaction) => T): Promise<T> {
    if (this.closed) throw new Error("memory store is closed");
    const result = work(this);
    this.stats.commits += 1;
    return result;
  }

  async ping(): Promise<void> {}

  async countByState(): Promise<StateCounts> {
    const counts: StateCounts = { promises: {}, tasks: {} };
    for (const promise of this.promises.values()) {
      counts.promises[promise.state] = (counts.promises[promise.state] ?? 0) + 1;
    }
    for (const task of this.tasks.values()) counts.tasks[task.state] = (counts.tasks[task.state] ?? 0) + 1;
    return counts;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  apply(changes: Changes): void {
    if (changes.reset) {
      this.promises.clear();
      this.tasks.clear();
      this.schedules.clear();
      this.callbackSets.clear();
      this.listenerSets.clear();
      this.messages.clear();
    }
    for (const promise of changes.promises) this.promises.set(promise.id, structuredClone(promise));
    for (const task of changes.tasks) this.tasks.set(task.id, structuredClone(task));
    for (const id of changes.deletedPromises) this.promises.delete(id);
    for (const id of changes.deletedTasks) this.tasks.delete(id);
    for (const schedule of changes.schedules) this.schedules.set(schedule.id, structuredClone(schedule));
    for (const id of changes.deletedSchedules) this.schedules.delete(id);
    for (const [awaited, awaiters] of changes.callbacks) {
      if (awaiters.length === 0) this.callbackSets.delete(awaited);
      else this.callbackSets.set(awaited, [...awaiters].sort(compareStrings));
    }
    for (const [awaited, addresses] of changes.listeners) {
      if (addresses.length === 0) this.listenerSets.delete(awaited);
      else this.listenerSets.set(awaited, [...addresses].sort(compareStrings));
    }
    for (const key of changes.deletedOutbox) this.messages.delete(key);
    for (const entry of changes.outbox) this.messages.set(entry.key, structuredClone(entry));
  }

  promise(id: string): StoredPromise | undefined {
    const promise = this.promises.get(id);
    return promise && structuredClone(promise);
  }

  task(id: string): StoredTask | undefined {
    const task = this.tasks.get(id);
    return task && structuredClone(task);
  }

  schedule(id: string): StoredSchedule | undefined {
    const schedule = this.schedules.get(id);
    return schedule && structuredClone(schedule);
  }

  callbacks(awaited: string): string[] {
    return [...(this.callbackSets.get(awaited) ?? [])];
  }

  listeners(awaited: string): string[] {
    return [...(this.listenerSets.get(awaited) ?? [])];
  }

  promisesInBranch(branch: string): StoredPromise[] {
    return [...this.promises.values()]
      .filter((promise) => promise.tags[TAG.branch] === branch)
      .sort(byId)
      .map((promise) => structuredClone(promise));
  }

  searchPromises(query: PromiseQuery): StoredPromise[] {
    return [...this.promises.values()]
      .filter(
        (promise) =>
          (query.idPrefix === undefined || promise.id.startsWith(query.idPrefix)) &&
          (query.states === undefined || query.states.includes(promise.state)) &&
          after(promise.id, query.after) &&
          hasTags(promise.tags, query.tags),
      )
      .sort(byId)
      .slice(0, query.limit)
      .map((promise) => structuredClone(promise));
  }

  searchTasks(query: TaskQuery): StoredTask[] {
    return [...this.tasks.values()]
      .filter(
        (task) =>
          (query.states === undefined || query.states.includes(task.state)) && after(task.id, query.after),
      )
      .sort(byId)
      .slice(0, query.limit)
      .map((task) => structuredClone(task));
  }

  searchSchedules(query: ScheduleQuery): StoredSchedule[] {
    return [...this.schedules.values()]
      .filter((schedule) => after(schedule.id, query.after) && hasTags(schedule.promiseTags, query.tags))
      .sort(byId)
      .slice(0, query.limit)
      .map((schedule) => structuredClone(schedule));
  }

  due(now: number, limit: number): DueWork {
    const due = <T>(items: Iterable<T>, deadline: (item: T) => number | undefined, id: (item: T) => string) =>
      [...items]
        .flatMap((item) => {
          const at = deadline(item);
          return at !== undefined && at <= now ? [{ at, id: id(item) }] : [];
        })
        .sort((a, b) => a.at - b.at || compareStrings(a.id, b.id))
        .slice(0, limit)
        .map((item) => item.id);
    return {
      promiseIds: due(
        this.promises.values(),
        (promise) => (promise.armed ? promise.timeoutAt : undefined),
        (promise) => promise.id,
      ),
      taskIds: due(
        this.tasks.values(),
        (task) => task.retryAt ?? task.expiresAt,
        (task) => task.id,
      ),
      scheduleIds: due(
        this.schedules.values(),
        (schedule) => schedule.nextRunAt,
        (schedule) => schedule.id,
      ),
    };
  }

  nextDueAt(): number | undefined {
    let next: number | undefined;
    const consider = (at: number | undefined) => {
      if (at !== undefined && (next === undefined || at < next)) next = at;
    };
    for (const promise of this.promises.values()) consider(promiseDueAt(promise));
    for (const task of this.tasks.values()) consider(taskDueAt(task));
    for (const schedule of this.schedules.values()) consider(scheduleDueAt(schedule));
    return next;
  }

  outboxEntry(key: string): OutboxEntry | undefined {
    const entry = this.messages.get(key);
    return entry && structuredClone(entry);
  }

  outbox(query: OutboxQuery): OutboxEntry[] {
    return [...this.messages.values()]
      .filter(
        (entry) =>
          after(entry.key, query.after) &&
          (query.addressPrefixes === undefined ||
            query.addressPrefixes.some((prefix) => entry.address.startsWith(prefix))),
      )
      .sort((a, b) => compareStrings(a.key, b.key))
      .slice(0, query.limit)
      .map((entry) => structuredClone(entry));
  }

  allCallbacks(): { awaited: string; awaiter: string }[] {
    return [...this.callbackSets.entries()]
      .sort(([a], [b]) => compareStrings(a, b))
      .flatMap(([awaited, awaiters]) => awaiters.map((awaiter) => ({ awaited, awaiter })));
  }

  allListeners(): { awaited: string; address: string }[] {
    return [...this.listenerSets.entries()]
      .sort(([a], [b]) => compareStrings(a, b))
      .flatMap(([awaited, addresses]) => addresses.map((address) => ({ awaited, address })));
  }

  settledPromises(query: SettledQuery): StoredPromise[] {
    const { before, after: cursor } = query;
    return [...this.promises.values()]
      .filter(
        (promise) =>
          promise.settledAt !== undefined &&
          promise.settledAt < before &&
          (cursor === undefined ||
            promise.settledAt > cursor.settledAt ||
            (promise.settledAt === cursor.settledAt && compareStrings(promise.id, cursor.id) > 0)),
      )
      .sort((a, b) => (a.settledAt as number) - (b.settledAt as number) || compareStrings(a.id, b.id))
      .slice(0, query.limit)
      .map((promise) => structuredClone(promise));
  }

  promisesById(ids: readonly string[]): StoredPromise[] {
    return [...new Set(ids)]
      .flatMap((id) => {
        const promise = this.promises.get(id);
        return promise === undefined ? [] : [structuredClone(promise)];
      })
      .sort(byId);
  }

  tasksById(ids: readonly string[]): StoredTask[] {
    return [...new Set(ids)]
      .flatMap((id) => {
        const task = this.tasks.get(id);
        return task === undefined ? [] : [structuredClone(task)];
      })
      .sort(byId);
  }

  callbacksByAwaiter(awaiters: readonly string[]): { awaited: string; awaiter: string }[] {
    const wanted = new Set(awaiters);
    return this.allCallbacks().filter(({ awaiter }) => wanted.has(awaiter));
  }
}
