/**
 * The protocol core: one pure transition.
 *
 *   step(reader, request, now, config) -> { response, changes, messages }
 *
 * No I/O, no clock, no randomness: `now` is an argument (P11, one instant per
 * request) and state is read through a synchronous `StateReader`. The caller (the
 * server shell, the simulator) owns the transaction: it applies `changes` in the
 * same transaction it read from, and hands `messages` to delivery only after the
 * commit is durable.
 *
 * `sweep` is the same for the server's own initiative (§3.6): the internal
 * transitions due at `now`, bounded per call (P6).
 *
 * Invariants:
 *  C1  A step that fails a check returns no changes and no messages.
 *  C2  Every record in a response is projected at `now` (C8 of the spec).
 */
import { assert, unreachable } from "../lib/assert.js";
import type { Request, Response, Snapshot } from "../protocol/requests.js";
import { storedPromiseRecord, storedTaskRecord } from "./project.js";
import {
  promiseCreate,
  promiseGet,
  promiseRegisterCallback,
  promiseRegisterListener,
  promiseSearch,
  promiseSettle,
} from "./promise-handlers.js";
import { ok } from "./responses.js";
import { scheduleCreate, scheduleDelete, scheduleGet, scheduleSearch } from "./schedule-handlers.js";
import { type Changes, emptyChanges, type OutboxEntry, type StateReader } from "./state.js";
import {
  taskAcquire,
  taskContinue,
  taskCreate,
  taskFence,
  taskFulfill,
  taskGet,
  taskHalt,
  taskHeartbeat,
  taskRelease,
  taskSearch,
  taskSuspend,
} from "./task-handlers.js";
import {
  type CoreConfig,
  expireLease,
  fireSchedule,
  MAX_OCCURRENCES_PER_STEP,
  materialize,
  retryDispatch,
  type StepContext,
} from "./transitions.js";
import { Working } from "./working.js";

export type { CoreConfig } from "./transitions.js";

export interface StepResult {
  response: Response;
  changes: Changes;
  /** Messages this step queued in the outbox, for delivery once committed. */
  messages: OutboxEntry[];
}

/** Request kinds the core does not handle: the shell owns its background loops. */
export type ShellRequestKind = "debug.start" | "debug.stop";

export function step(
  reader: StateReader,
  request: Exclude<Request, { kind: ShellRequestKind }>,
  now: number,
  config: CoreConfig,
): StepResult {
  assert(Number.isSafeInteger(now), "now is an integer instant");
  const working = new Working(reader);
  const ctx: StepContext = { working, now, config };
  const response = handle(ctx, request);
  // A refused request writes nothing (§1.3), not even the timeouts it materialised on
  // the way: projection answers the same, and the sweep persists armed ones later.
  if (response.status >= 400) return { response, changes: emptyChanges(), messages: [] };
  return { response, changes: working.changes(), messages: working.queuedMessages() };
}

function handle(ctx: StepContext, request: Exclude<Request, { kind: ShellRequestKind }>): Response {
  switch (request.kind) {
    case "promise.get":
      return promiseGet(ctx, request);
    case "promise.create":
      return promiseCreate(ctx, request);
    case "promise.settle":
      return promiseSettle(ctx, request);
    case "promise.register_callback":
      return promiseRegisterCallback(ctx, request);
    case "promise.register_listener":
      return promiseRegisterListener(ctx, request);
    case "promise.search":
      return promiseSearch(ctx, request);
    case "task.get":
      return taskGet(ctx, request);
    case "task.create":
      return taskCreate(ctx, request);
    case "task.acquire":
      return taskAcquire(ctx, request);
    case "task.fence":
      return taskFence(ctx, request);
    case "task.heartbeat":
      return taskHeartbeat(ctx, request);
    case "task.suspend":
      return taskSuspend(ctx, request);
    case "task.fulfill":
      return taskFulfill(ctx, request);
    case "task.release":
      return taskRelease(ctx, request);
    case "task.halt":
      return taskHalt(ctx, request);
    case "task.continue":
      return taskContinue(ctx, request);
    case "task.search":
      return taskSearch(ctx, request);
    case "schedule.get":
      return scheduleGet(ctx, request);
    case "schedule.create":
      return scheduleCreate(ctx, request);
    case "schedule.delete":
      return scheduleDelete(ctx, request);
    case "schedule.search":
      return scheduleSearch(ctx, request);
    case "debug.reset":
      ctx.working.reset();
      return ok({});
    case "debug.tick":
      runDue(ctx, DEBUG_TICK_LIMIT, Number.POSITIVE_INFINITY);
      return ok([]);
    case "debug.snap":
      return ok(snapshot(ctx.working.reader));
    default:
      return unreachable(request, "request kind");
  }
}

/** `debug.tick` fires everything due at its instant; harness scenarios are small. */
const DEBUG_TICK_LIMIT = 100_000;

/** Most items of each kind one background sweep step handles (P6). */
export const SWEEP_LIMIT = 500;

export interface SweepResult {
  changes: Changes;
  messages: OutboxEntry[];
  /** True when the limit was reached and more may be due: sweep again. */
  more: boolean;
}

/** The internal transitions due at `now` (§3.6), at most `limit` of each kind. */
export function sweep(
  reader: StateReader,
  now: number,
  config: CoreConfig,
  limit = SWEEP_LIMIT,
): SweepResult {
  const working = new Working(reader);
  const more = runDue({ working, now, config }, limit, MAX_OCCURRENCES_PER_STEP);
  return { changes: working.changes(), messages: working.queuedMessages(), more };
}

/**
 * Ends every lease at `now`, whatever its deadline (R5 with a dead holder): the
 * process that owned this store's leases is gone. Tasks return to pending and are
 * dispatched again. At most `limit` tasks per call; `more` says to call again.
 */
export function expireAllLeases(
  reader: StateReader,
  now: number,
  config: CoreConfig,
  limit = SWEEP_LIMIT,
): SweepResult {
  const working = new Working(reader);
  const acquired = reader.searchTasks({ states: ["acquired"], limit });
  for (const task of acquired) expireLease({ working, now, config }, task.id, true);
  return { changes: working.changes(), messages: working.queuedMessages(), more: acquired.length === limit };
}

/**
 * Fires what is due: schedule occurrences first (they create promises at their
 * own instants), then promise timeouts (R1 with cascades), then leases (R5) and
 * retries (R6). Each transition re-checks its guard, so order only matters for
 * efficiency (L7).
 */
function runDue(ctx: StepContext, limit: number, maxOccurrences: number): boolean {
  const due = ctx.working.reader.due(ctx.now, limit);
  let occurrencesLeft = false;
  for (const id of due.scheduleIds)
    occurrencesLeft = fireSchedule(ctx, id, maxOccurrences) || occurrencesLeft;
  for (const id of due.promiseIds) materialize(ctx, id);
  for (const id of due.taskIds) {
    expireLease(ctx, id);
    retryDispatch(ctx, id);
  }
  return (
    occurrencesLeft ||
    due.scheduleIds.length === limit ||
    due.promiseIds.length === limit ||
    due.taskIds.length === limit
  );
}

const SNAPSHOT_LIMIT = Number.MAX_SAFE_INTEGER;

/** `debug.snap` (§1.7): raw stored state in the reference server's shape. */
export function snapshot(reader: StateReader): Snapshot {
  const promises = reader.searchPromises({ limit: SNAPSHOT_LIMIT });
  const tasks = reader.searchTasks({ limit: SNAPSHOT_LIMIT });
  return {
    promises: promises.map(storedPromiseRecord),
    promiseTimeouts: promises.filter((p) => p.armed).map((p) => ({ id: p.id, timeout: p.timeoutAt })),
    callbacks: reader.allCallbacks().map(({ awaited, awaiter }) => ({ awaiter, awaited })),
    listeners: reader.allListeners().map(({ awaited, address }) => ({ id: awaited, address })),
    tasks: tasks.map(storedTaskRecord),
    taskTimeouts: tasks.flatMap((task): Snapshot["taskTimeouts"] =>
      task.state === "pending" && task.retryAt !== undefined
        ? [{ id: task.id, type: 0 as const, timeout: task.retryAt }]
        : task.state === "acquired" && task.expiresAt !== undefined
          ? [{ id: task.id, type: 1 as const, timeout: task.expiresAt }]
          : [],
    ),
    messages: reader
      .outbox({ limit: SNAPSHOT_LIMIT })
      .map((entry) => ({ address: entry.address, message: entry.message })),
  };
}
