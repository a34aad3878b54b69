/**
 * Retention: which settled records may be deleted, as a pure choice.
 *
 *   collect(reader, { settledBefore, limit, after }, now) -> { changes, more, cursor, kept }
 *
 * It owns the choice only. The store deletes what `changes` names, in the
 * caller's transaction; the caller (the server's retention loop, `pledge gc`)
 * owns the clock, the cut-off and the loop over batches (`more`, `cursor`).
 *
 * What deleting means for the protocol: a deleted record is gone, not hidden.
 * `promise.get` and `task.get` on its id answer 404, and a later
 * `promise.create` (or `task.create`, or a run of that id) with the same id
 * creates a NEW promise and starts afresh: idempotence by id holds only while
 * the record exists, so it is bounded by retention. Choose the retention period
 * longer than any client may retry or join an id.
 *
 * One call examines at most `limit` settled promises, oldest settlement first,
 * so one retention transaction stays short; `more` says that another call, from
 * `cursor`, may find more. Each examined promise is either deleted with what
 * hangs off it — its fulfilled task, its callback and listener sets, the
 * callbacks it registered as an awaiter on other promises, its queued `execute`
 * and `unblock` messages — or kept, because something still needs it.
 *
 * Reads go by the batch, never by the promise (a handful per call, whatever
 * `limit` is): an asynchronous store answers each new read by running the call
 * again (ADR 0001), so per-promise reads would make a batch quadratic.
 *
 * Invariants (K1 asserted here; tests cite each as K1…):
 *  K1  Only stored-settled promises with `settledAt < settledBefore` are deleted;
 *      a pending promise never is.
 *  K2  A task is deleted only with its promise, and only when fulfilled; a promise
 *      whose task is not fulfilled is kept.
 *  K3  A promise a live task still awaits is kept: one in the resume list of a
 *      pending, acquired or halted task (it settled while that task waited on it
 *      through a callback, and the task has not read it yet).
 *  K4  A promise whose parent (`resonate:parent`) is pending at `now` is kept: a
 *      running execution replays its children's results, and a deleted child
 *      would run again. (An execution that awaited a promise from outside its
 *      own call tree is protected by K3 only until it resumes; should it replay
 *      after that promise's retention, it finds the id free. Retain longer than
 *      executions live.)
 *  K5  A promise a schedule still needs is kept: the id a schedule's template
 *      always expands to (no `{{.timestamp}}`); deleting it would let the schedule
 *      fire it again.
 *  K6  Nothing that is kept loses anything: a deletion names only the deleted
 *      promise's own records, plus its id removed from other promises' callback sets.
 */
import { assert } from "../lib/assert.js";
import { TAG } from "../protocol/records.js";
import { isPendingAt } from "./project.js";
import {
  type Changes,
  emptyChanges,
  executeKey,
  type SettledCursor,
  type StateReader,
  type StoredPromise,
} from "./state.js";
import { expandTemplate } from "./transitions.js";

/** Most settled promises one retention transaction examines by default. */
export const COLLECT_LIMIT = 200;

/** Page size of the scans of live tasks, schedules and queued unblocks. */
const SCAN_PAGE = 1000;

export interface CollectOptions {
  /** Settled promises with `settledAt` strictly before this instant may go. */
  settledBefore: number;
  /** Most settled promises examined in this call. */
  limit: number;
  /** Continue after this position (the previous call's `cursor`). */
  after?: SettledCursor;
}

export interface CollectResult {
  /** The deletions, to apply in the same transaction. */
  changes: Changes;
  /** True when `limit` promises were examined: call again from `cursor`. */
  more: boolean;
  /** The last promise examined, where the next call continues. */
  cursor?: SettledCursor;
  /** Promises examined and kept because something still needs them (K2–K5). */
  kept: number;
}

export function collect(reader: StateReader, options: CollectOptions, now: number): CollectResult {
  const { settledBefore, limit, after } = options;
  assert(Number.isSafeInteger(now), "now is an integer instant");
  assert(Number.isSafeInteger(settledBefore), "settledBefore is an integer instant");
  assert(Number.isSafeInteger(limit) && limit > 0, `limit is a positive integer, got ${limit}`);
  const changes = emptyChanges();
  const candidates = reader.settledPromises({
    before: settledBefore,
    limit,
    ...(after !== undefined && { after }),
  });
  const last = candidates[candidates.length - 1];
  if (last === undefined) return { changes, more: false, kept: 0 };
  const cursor: SettledCursor = { settledAt: last.settledAt as number, id: last.id };
  for (const promise of candidates) {
    // K1, checked on what the store answered.
    assert(promise.state !== "pending", `K1 retention examined pending promise ${promise.id}`);
    assert(
      promise.settledAt !== undefined && promise.settledAt < settledBefore,
      `K1 ${promise.id} settled before the cut-off`,
    );
  }

  const needed = new Set([...awaitedByLiveTasks(reader), ...neededBySchedules(reader)]); // K3, K5
  const parentOf = (promise: StoredPromise): string | undefined => {
    const parentId = promise.tags[TAG.parent];
    return parentId === promise.id ? undefined : parentId;
  };
  const parentIds = [...new Set(candidates.flatMap((promise) => parentOf(promise) ?? []))];
  const pendingParents = new Set(
    parentIds.length === 0
      ? []
      : reader
          .promisesById(parentIds)
          .filter((parent) => isPendingAt(parent, now))
          .map((parent) => parent.id),
  );
  const unneeded = candidates.filter((promise) => {
    const parentId = parentOf(promise);
    return !needed.has(promise.id) && (parentId === undefined || !pendingParents.has(parentId)); // K4
  });
  const tasks = new Map(
    (unneeded.length === 0 ? [] : reader.tasksById(unneeded.map((promise) => promise.id))).map((task) => [
      task.id,
      task,
    ]),
  );
  for (const promise of unneeded) {
    const task = tasks.get(promise.id);
    if (task !== undefined && task.state !== "fulfilled") continue; // K2
    changes.deletedPromises.push(promise.id);
    if (task !== undefined) changes.deletedTasks.push(promise.id);
    // A settled promise's own sets were drained when it settled (and C11 registers
    // nothing on a settled one): cleared anyway, so nothing outlives its record.
    changes.callbacks.set(promise.id, []);
    changes.listeners.set(promise.id, []);
    // Deleting a key that is not queued changes nothing.
    changes.deletedOutbox.push(executeKey(promise.id));
  }
  const kept = candidates.length - changes.deletedPromises.length;
  if (changes.deletedPromises.length === 0)
    return { changes, more: candidates.length === limit, cursor, kept };

  // K6: the deleted ids leave the callback sets of the promises they awaited.
  const deleted = new Set(changes.deletedPromises);
  const awaitedIds = new Set(
    reader.callbacksByAwaiter(changes.deletedPromises).map((callback) => callback.awaited),
  );
  for (const awaited of awaitedIds) {
    if (deleted.has(awaited)) continue; // its own set is cleared above
    changes.callbacks.set(
      awaited,
      reader.callbacks(awaited).filter((awaiter) => !deleted.has(awaiter)),
    );
  }
  changes.deletedOutbox.push(...queuedUnblocks(reader, deleted));
  return { changes, more: candidates.length === limit, cursor, kept };
}

/** K3: ids in the resume list of a pending, acquired or halted task (suspended ones have none, S3). */
function awaitedByLiveTasks(reader: StateReader): string[] {
  const ids: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = reader.searchTasks({
      states: ["pending", "acquired", "halted"],
      limit: SCAN_PAGE,
      ...(after !== undefined && { after }),
    });
    for (const task of page) ids.push(...task.resumeIds);
    if (page.length < SCAN_PAGE) return ids;
    after = page[page.length - 1]?.id;
  }
}

/** K5: the id each schedule without `{{.timestamp}}` in its template fires, every time. */
function neededBySchedules(reader: StateReader): string[] {
  const ids: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = reader.searchSchedules({ limit: SCAN_PAGE, ...(after !== undefined && { after }) });
    for (const schedule of page)
      if (!schedule.promiseId.includes("{{.timestamp}}"))
        ids.push(expandTemplate(schedule.promiseId, schedule.id, schedule.nextRunAt));
    if (page.length < SCAN_PAGE) return ids;
    after = page[page.length - 1]?.id;
  }
}

/**
 * Keys of the queued `unblock` messages about the deleted promises. Unblock keys
 * (`unblock:<id>:notify:<address>`) form one contiguous range, scanned once per
 * batch: the outbox holds only undelivered messages, each for at most the unblock
 * TTL. The promise is read from the message, since an id may contain `:notify:`.
 */
function queuedUnblocks(reader: StateReader, deleted: ReadonlySet<string>): string[] {
  const prefix = "unblock:";
  const keys: string[] = [];
  let after = prefix;
  for (;;) {
    const page = reader.outbox({ after, limit: SCAN_PAGE });
    for (const entry of page) {
      if (!entry.key.startsWith(prefix)) return keys;
      const message = entry.message;
      if (message.kind === "unblock" && deleted.has(message.data.promise.id)) keys.push(entry.key);
    }
    const lastEntry = page[page.length - 1];
    if (lastEntry === undefined || page.length < SCAN_PAGE) return keys;
    after = lastEntry.key;
  }
}
