/**
 * A step's working copy of state: reads fall through to the store's reader,
 * writes stay here until the step ends and `changes()` hands them to the store.
 * This is what lets a settlement's cascade read its own writes while the step
 * remains a pure function of (reader, request, now).
 */
import type {
  Changes,
  OutboxEntry,
  StateReader,
  StoredPromise,
  StoredSchedule,
  StoredTask,
} from "./state.js";
import { emptyChanges } from "./state.js";

export class Working {
  private readonly promises = new Map<string, StoredPromise>();
  private readonly tasks = new Map<string, StoredTask>();
  private readonly schedules = new Map<string, StoredSchedule | null>();
  private readonly callbackSets = new Map<string, string[]>();
  private readonly listenerSets = new Map<string, string[]>();
  private readonly outboxPuts = new Map<string, OutboxEntry>();
  private readonly outboxDeletes = new Set<string>();
  private resetAll = false;
  // The store does not change during a step, so each record is read from it once.
  // Records handed out are shared: the core never mutates them, it writes new ones.
  private readonly readPromises = new Map<string, StoredPromise | undefined>();
  private readonly readTasks = new Map<string, StoredTask | undefined>();

  constructor(readonly reader: StateReader) {}

  promise(id: string): StoredPromise | undefined {
    if (this.promises.has(id)) return this.promises.get(id);
    if (this.resetAll) return undefined;
    if (!this.readPromises.has(id)) this.readPromises.set(id, this.reader.promise(id));
    return this.readPromises.get(id);
  }

  task(id: string): StoredTask | undefined {
    if (this.tasks.has(id)) return this.tasks.get(id);
    if (this.resetAll) return undefined;
    if (!this.readTasks.has(id)) this.readTasks.set(id, this.reader.task(id));
    return this.readTasks.get(id);
  }

  schedule(id: string): StoredSchedule | undefined {
    if (this.schedules.has(id)) return this.schedules.get(id) ?? undefined;
    if (this.resetAll) return undefined;
    return this.reader.schedule(id);
  }

  callbacks(awaited: string): string[] {
    const local = this.callbackSets.get(awaited);
    if (local) return [...local];
    return this.resetAll ? [] : this.reader.callbacks(awaited);
  }

  listeners(awaited: string): string[] {
    const local = this.listenerSets.get(awaited);
    if (local) return [...local];
    return this.resetAll ? [] : this.reader.listeners(awaited);
  }

  putPromise(promise: StoredPromise): void {
    this.promises.set(promise.id, promise);
  }

  putTask(task: StoredTask): void {
    this.tasks.set(task.id, task);
  }

  putSchedule(schedule: StoredSchedule): void {
    this.schedules.set(schedule.id, schedule);
  }

  deleteSchedule(id: string): void {
    this.schedules.set(id, null);
  }

  setCallbacks(awaited: string, awaiters: string[]): void {
    this.callbackSets.set(awaited, awaiters);
  }

  setListeners(awaited: string, addresses: string[]): void {
    this.listenerSets.set(awaited, addresses);
  }

  enqueue(entry: OutboxEntry): void {
    this.outboxDeletes.delete(entry.key);
    this.outboxPuts.set(entry.key, entry);
  }

  reset(): void {
    this.resetAll = true;
    this.promises.clear();
    this.tasks.clear();
    this.schedules.clear();
    this.callbackSets.clear();
    this.listenerSets.clear();
    this.outboxPuts.clear();
    this.outboxDeletes.clear();
  }

  /** Promises this step wrote. */
  writtenPromises(): StoredPromise[] {
    return [...this.promises.values()];
  }

  /** Messages this step queued, in the order they were first queued. */
  queuedMessages(): OutboxEntry[] {
    return [...this.outboxPuts.values()];
  }

  changes(): Changes {
    const changes = emptyChanges();
    changes.reset = this.resetAll;
    changes.promises = [...this.promises.values()];
    changes.tasks = [...this.tasks.values()];
    for (const [id, schedule] of this.schedules) {
      if (schedule) changes.schedules.push(schedule);
      else changes.deletedSchedules.push(id);
    }
    changes.callbacks = new Map(this.callbackSets);
    changes.listeners = new Map(this.listenerSets);
    changes.outbox = [...this.outboxPuts.values()];
    changes.deletedOutbox = [...this.outboxDeletes];
    return changes;
  }
}
