/**
 * Server events (`GET /events`, docs/events.md): what each committed change did,
 * for whoever listens — the dashboard, `pledge tail`. `describeChanges` turns one
 * step's `Changes` into events by comparing each record with the one it replaces;
 * the shell calls it inside the step's transaction, before `apply`, so a store
 * that replays a transaction (ADR 0001) computes the same events again. The
 * `EventHub` numbers them and hands them to subscribers once the batch committed.
 * How a subscriber buffers (and when a slow one is dropped) is `server/http`'s.
 *
 * Invariants:
 *  E1  An event is published only after the batch that made its change committed:
 *      the shell publishes from the answer of `processor.submit`, never from `run`.
 *  E2  With no subscriber nothing is computed: the shell reads `observed` once per
 *      item, before its transaction, and then makes no extra reads.
 *  E3  Every subscriber sees events in publication order, `seq` rising by one; a
 *      subscriber that throws is removed and never stops the others.
 *  E4  The hub keeps no history: a subscriber that joins later starts from there
 *      (the first frame tells it `lastSeq`).
 */
import { storedPromiseRecord, storedTaskRecord } from "../core/project.js";
import type { Changes, StateReader, StoredPromise, StoredSchedule, StoredTask } from "../core/state.js";
import type {
  EventCause,
  PromiseSummary,
  ScheduleSummary,
  ServerEvent,
  TaskEvent,
  TaskSummary,
  UnnumberedEvent,
} from "../protocol/events.js";
import type { TaskState } from "../protocol/records.js";

export type EventSubscriber = (event: ServerEvent) => void;

export class EventHub {
  private seq = 0;
  private readonly subscribers = new Set<EventSubscriber>();

  /** E2: whether anyone listens; read before a transaction to decide whether to describe it. */
  get observed(): boolean {
    return this.subscribers.size > 0;
  }

  /** The `seq` of the last event published (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  get size(): number {
    return this.subscribers.size;
  }

  /** Adds a subscriber; answers the function that removes it. */
  subscribe(subscriber: EventSubscriber): () => void {
    this.subscribers.add(subscriber);
    return () => {
      this.subscribers.delete(subscriber);
    };
  }

  /** Numbers and delivers events of a committed batch (E1, E3). */
  publish(events: readonly UnnumberedEvent[]): void {
    for (const event of events) {
      this.seq += 1;
      const numbered = { seq: this.seq, ...event } as ServerEvent;
      for (const subscriber of [...this.subscribers]) {
        try {
          subscriber(numbered);
        } catch {
          this.subscribers.delete(subscriber); // E3
        }
      }
    }
  }
}

/**
 * The events of one step: `reader` must still show the state before `changes`
 * (call it before `tx.apply(changes)`). Order: schedules created or fired, then
 * promises, then tasks, then deleted schedules — a cause before its effects.
 */
export function describeChanges(
  reader: StateReader,
  changes: Changes,
  at: number,
  cause: EventCause,
): UnnumberedEvent[] {
  const events: UnnumberedEvent[] = [];
  // After a reset nothing that was stored is there any more: every record is new.
  const before = changes.reset
    ? { promise: () => undefined, task: () => undefined, schedule: () => undefined }
    : {
        promise: (id: string) => reader.promise(id),
        task: (id: string) => reader.task(id),
        schedule: (id: string) => reader.schedule(id),
      };
  if (changes.reset) events.push({ kind: "server.reset", at, cause });
  for (const schedule of changes.schedules) {
    const previous = before.schedule(schedule.id);
    if (previous === undefined)
      events.push({ kind: "schedule.created", at, cause, schedule: scheduleSummary(schedule) });
    else if (previous.lastRunAt !== schedule.lastRunAt)
      events.push({ kind: "schedule.fired", at, cause, schedule: scheduleSummary(schedule) });
  }
  for (const promise of changes.promises) {
    const previous = before.promise(promise.id);
    const summary = promiseSummary(promise);
    if (previous === undefined) events.push({ kind: "promise.created", at, cause, promise: summary });
    if (promise.state !== "pending" && (previous === undefined || previous.state === "pending"))
      events.push({ kind: "promise.settled", at, cause, promise: summary });
  }
  for (const task of changes.tasks) {
    const previous = before.task(task.id);
    const kind = taskEventKind(previous?.state, task.state, cause);
    if (kind === undefined) continue;
    events.push({
      kind,
      at,
      cause,
      task: taskSummary(task),
      ...(previous !== undefined && { from: previous.state }),
    });
  }
  for (const id of changes.deletedSchedules) {
    if (before.schedule(id) !== undefined)
      events.push({ kind: "schedule.deleted", at, cause, schedule: { id } });
  }
  return events;
}

/**
 * Which transition a task write is, or undefined for one that changes nothing a
 * watcher cares about (a heartbeat, a resume noted on a running task).
 */
export function taskEventKind(
  from: TaskState | undefined,
  to: TaskState,
  cause: EventCause,
): TaskEvent["kind"] | undefined {
  if (from === undefined) return "task.created";
  if (from === to) return to === "pending" && cause === "timer" ? "task.retried" : undefined;
  switch (to) {
    case "acquired":
      return "task.claimed";
    case "suspended":
      return "task.suspended";
    case "halted":
      return "task.halted";
    case "fulfilled":
      return "task.fulfilled";
    case "pending":
      return from === "suspended" ? "task.resumed" : from === "halted" ? "task.continued" : "task.released";
  }
}

function promiseSummary(promise: StoredPromise): PromiseSummary {
  const { id, state, tags, timeoutAt, createdAt, settledAt } = storedPromiseRecord(promise);
  return settledAt === undefined
    ? { id, state, tags, timeoutAt, createdAt }
    : { id, state, tags, timeoutAt, createdAt, settledAt };
}

function taskSummary(task: StoredTask): TaskSummary {
  return storedTaskRecord(task);
}

function scheduleSummary(schedule: StoredSchedule): ScheduleSummary {
  const { id, cron, promiseId, nextRunAt, lastRunAt } = schedule;
  return lastRunAt === undefined
    ? { id, cron, promiseId, nextRunAt }
    : { id, cron, promiseId, nextRunAt, lastRunAt };
}
