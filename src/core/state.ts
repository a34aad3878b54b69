/**
 * The core's view of storage: the stored shapes of promises, tasks, schedules and
 * queued messages, the synchronous `StateReader` a step reads through, and the
 * `Changes` a step produces. Stores implement the reader and apply the changes;
 * they hold no protocol logic (ADR 0001).
 *
 * Invariants (checked in `core/invariants.ts`, cited as S1…):
 *  S1  A stored promise is `armed` iff it is stored `pending` and external (C1).
 *  S2  A stored task is `acquired` iff `pid`, `ttl` and `expiresAt` are set, and
 *      `pending` iff `retryAt` is set (L3: the timer kind is a function of state).
 *  S3  Suspended and fulfilled tasks have an empty resume list.
 */
import type {
  OutgoingMessage,
  PromiseRecord,
  PromiseState,
  ScheduleRecord,
  Tags,
  TaskState,
} from "../protocol/records.js";

/** A promise as stored: its state is the stored one, not the projection (§3.1). */
export interface StoredPromise extends PromiseRecord {
  /** S1: the sweeper must fire this promise's deadline (R1). */
  armed: boolean;
}

export interface StoredTask {
  id: string;
  state: TaskState;
  version: number;
  /** Ordered, duplicate-free ids of awaited promises that settled (§2.3). */
  resumeIds: string[];
  pid?: string;
  ttl?: number;
  /** Lease deadline; acquired only. */
  expiresAt?: number;
  /** Next dispatch instant; pending only. */
  retryAt?: number;
}

export type StoredSchedule = ScheduleRecord;

/**
 * A queued outgoing message (P8: keyed, not a log). `execute` is keyed by task id,
 * `unblock` by promise id and address, so a newer message replaces an older one.
 */
export interface OutboxEntry {
  key: string;
  address: string;
  message: OutgoingMessage;
  createdAt: number;
}

export function executeKey(taskId: string): string {
  return `execute:${taskId}`;
}

export function unblockKey(promiseId: string, address: string): string {
  return `unblock:${promiseId}:notify:${address}`;
}

export interface PromiseQuery {
  /** Only ids starting with this prefix. */
  idPrefix?: string;
  /** Stored states to include; absent means all. */
  states?: readonly PromiseState[];
  /** Every key/value must be present in the promise's tags. */
  tags?: Tags;
  /** Only ids strictly greater than this. */
  after?: string;
  limit: number;
}

export interface TaskQuery {
  states?: readonly TaskState[];
  after?: string;
  limit: number;
}

export interface ScheduleQuery {
  /** Every key/value must be present in the schedule's `promiseTags`. */
  tags?: Tags;
  after?: string;
  limit: number;
}

/** Settled promises for retention (`core/retention.ts`), oldest settlement first. */
export interface SettledQuery {
  /** Only promises with `settledAt` strictly before this instant. */
  before: number;
  /** Only promises strictly after this position in (`settledAt`, id) order. */
  after?: SettledCursor;
  limit: number;
}

/** A position in the (`settledAt`, id) order of settled promises. */
export interface SettledCursor {
  settledAt: number;
  id: string;
}

export interface OutboxQuery {
  /** Only messages whose address starts with one of these prefixes. */
  addressPrefixes?: readonly string[];
  /** Only messages whose key is strictly greater than this. */
  after?: string;
  limit: number;
}

/** Ids whose timers are due at an instant, each list ordered by deadline then id. */
export interface DueWork {
  /** Armed promises with `timeoutAt <= now` (R1). */
  promiseIds: string[];
  /** Pending tasks with `retryAt <= now` (R6) and acquired tasks with `expiresAt <= now` (R5). */
  taskIds: string[];
  /** Schedules with `nextRunAt <= now` (R7). */
  scheduleIds: string[];
}

/**
 * Synchronous reads a step needs. Results are sorted by id unless stated, and are
 * fresh copies the caller may keep. An asynchronous store serves these from a
 * snapshot it loaded first (ADR 0001).
 */
export interface StateReader {
  promise(id: string): StoredPromise | undefined;
  task(id: string): StoredTask | undefined;
  schedule(id: string): StoredSchedule | undefined;
  /** Awaiter ids registered on `awaited`, sorted. */
  callbacks(awaited: string): string[];
  /** Listener addresses registered on `awaited`, sorted. */
  listeners(awaited: string): string[];
  /** Promises whose `resonate:branch` tag equals `branch`, sorted by id (preload, §3.8). */
  promisesInBranch(branch: string): StoredPromise[];
  searchPromises(query: PromiseQuery): StoredPromise[];
  searchTasks(query: TaskQuery): StoredTask[];
  searchSchedules(query: ScheduleQuery): StoredSchedule[];
  /** At most `limit` ids of each kind whose timers are due at `now`. */
  due(now: number, limit: number): DueWork;
  /**
   * The earliest armed timer of any kind, or undefined when none is armed. It only
   * arms the server's sweep: the PostgreSQL store may answer from a reading taken
   * outside the transaction, overlaid with what the transaction wrote (replay.ts),
   * which can be early or miss another replica's deadlines, never this one's.
   */
  nextDueAt(): number | undefined;
  /** The queued message with this key, if any. */
  outboxEntry(key: string): OutboxEntry | undefined;
  /** Queued messages, sorted by key. */
  outbox(query: OutboxQuery): OutboxEntry[];
  /** Every callback and listener, for `debug.snap`. */
  allCallbacks(): { awaited: string; awaiter: string }[];
  allListeners(): { awaited: string; address: string }[];
  /**
   * Stored-settled promises with `settledAt < before`, ordered by `settledAt` then
   * id, strictly after `after`, at most `limit` (retention).
   */
  settledPromises(query: SettledQuery): StoredPromise[];
  /** The stored promises among `ids`, sorted by id (retention reads many at once). */
  promisesById(ids: readonly string[]): StoredPromise[];
  /** The stored tasks among `ids`, sorted by id. */
  tasksById(ids: readonly string[]): StoredTask[];
  /** Every callback whose awaiter is among `awaiters`, sorted by awaited then awaiter. */
  callbacksByAwaiter(awaiters: readonly string[]): { awaited: string; awaiter: string }[];
}

/**
 * What one step changes. Records are written whole (upserts); callback and
 * listener sets are replaced per awaited promise; `reset` empties everything
 * before the rest applies. Deleted promises and tasks (retention, the only
 * writer of them) go after the upserts of the same change; a deletion removes
 * that one record, and whatever hangs off it is named explicitly (empty callback
 * and listener sets, outbox keys).
 */
export interface Changes {
  reset: boolean;
  promises: StoredPromise[];
  tasks: StoredTask[];
  schedules: StoredSchedule[];
  deletedSchedules: string[];
  /** Full callback set per awaited id after the step. */
  callbacks: Map<string, string[]>;
  /** Full listener set per awaited id after the step. */
  listeners: Map<string, string[]>;
  outbox: OutboxEntry[];
  deletedOutbox: string[];
  /** Promise records to remove (retention only). */
  deletedPromises: string[];
  /** Task records to remove (retention only). */
  deletedTasks: string[];
}

/*
 * The instant a stored record next needs the sweep, if any: an armed promise's
 * deadline, a task's retry or lease expiry, a schedule's next run. `nextDueAt`
 * is the least of these over every record.
 */
export const promiseDueAt = (promise: StoredPromise): number | undefined =>
  promise.armed ? promise.timeoutAt : undefined;
export const taskDueAt = (task: StoredTask): number | undefined => task.retryAt ?? task.expiresAt;
export const scheduleDueAt = (schedule: StoredSchedule): number | undefined => schedule.nextRunAt;

export function emptyChanges(): Changes {
  return {
    reset: false,
    promises: [],
    tasks: [],
    schedules: [],
    deletedSchedules: [],
    callbacks: new Map(),
    listeners: new Map(),
    outbox: [],
    deletedOutbox: [],
    deletedPromises: [],
    deletedTasks: [],
  };
}

export function isEmptyChanges(changes: Changes): boolean {
  return (
    !changes.reset &&
    changes.promises.length === 0 &&
    changes.tasks.length === 0 &&
    changes.schedules.length === 0 &&
    changes.deletedSchedules.length === 0 &&
    changes.callbacks.size === 0 &&
    changes.listeners.size === 0 &&
    changes.outbox.length === 0 &&
    changes.deletedOutbox.length === 0 &&
    changes.deletedPromises.length === 0 &&
    changes.deletedTasks.length === 0
  );
}
