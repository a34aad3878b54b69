/**
 * Transitions shared by the handlers and the sweeper (PROTOCOL.md §3.5, §3.6):
 * promise creation, settlement and its cascade (task fulfilment, listener drain
 * R3, callback drain R4), timeout materialisation (R1), lease expiry (R5),
 * dispatch (R6) and schedule firing (R7).
 *
 * Read discipline (L1) is materialise-on-touch: every handler first settles, by
 * timeout, each promise its request names; every record leaving the core is
 * projected anyway (C8). A settlement's whole cascade runs inside the step that
 * settles (Pledge's decisions), and dispatch is eager (R6 at `retryAt = now`).
 *
 * Invariants:
 *  T1  Every write goes through `writePromise` / `writeTask`, which check S1–S6.
 *  T2  An execute names the task's current version (C9) and its promise's target.
 *  T3  No transition dispatches, resumes or re-leases a task whose promise is not
 *      pending at `now` (C5, C6).
 */
import { assert } from "../lib/assert.js";
import {
  isExternal,
  isTargeted,
  isTimer,
  type SettlableState,
  TAG,
  type Value,
} from "../protocol/records.js";
import type { PromiseCreateData } from "../protocol/requests.js";
import { nextOccurrence } from "./cron.js";
import { checkPromiseTransition, checkTaskTransition } from "./invariants.js";
import { isPendingAt, isTimedOut, later, projectPromise } from "./project.js";
import { executeKey, type StoredPromise, type StoredTask, unblockKey } from "./state.js";
import type { Working } from "./working.js";

export interface CoreConfig {
  /** Interval between dispatches of a pending task (R6). */
  retryTimeoutMs: number;
  /** Put in `execute` messages' `head.serverUrl` when set. */
  serverUrl?: string;
}

/** Everything a step needs besides the request: its working state, its one `now`, its settings. */
export interface StepContext {
  readonly working: Working;
  readonly now: number;
  readonly config: CoreConfig;
}

export function writePromise(ctx: StepContext, promise: StoredPromise): void {
  checkPromiseTransition(ctx.working.promise(promise.id), promise);
  ctx.working.putPromise(promise);
}

export function writeTask(ctx: StepContext, task: StoredTask): void {
  checkTaskTransition(ctx.working.task(task.id), task);
  ctx.working.putTask(task);
}

/** R1 on touch: a stored-pending promise past its deadline is settled by timeout now. */
export function materialize(ctx: StepContext, id: string): StoredPromise | undefined {
  const promise = ctx.working.promise(id);
  if (promise === undefined || !isTimedOut(promise, ctx.now)) return promise;
  return settlePromise(ctx, promise, {
    state: isTimer(promise.tags) ? "resolved" : "rejected_timedout",
    value: {},
    settledAt: promise.timeoutAt,
  });
}

/**
 * Creates a promise as `promise.create` would at instant `at` (the request's
 * `now`, or a schedule occurrence), with its task when targeted. With `claim`
 * (`task.create`), a live task is born acquired at version 1 and nothing is
 * sent, since the caller is the worker. Returns the stored promise. The caller
 * has checked that the id is free.
 */
export function createPromise(
  ctx: StepContext,
  data: PromiseCreateData,
  at: number,
  claim?: { pid: string; ttl: number },
): StoredPromise {
  assert(ctx.working.promise(data.id) === undefined, `promise ${data.id} is created once`);
  const tags = data.tags ?? {};
  const live = data.timeoutAt > at;
  const promise: StoredPromise = live
    ? {
        id: data.id,
        state: "pending",
        param: data.param ?? {},
        value: {},
        tags,
        timeoutAt: data.timeoutAt,
        createdAt: at,
        armed: isExternal(tags),
      }
    : {
        id: data.id,
        state: isTimer(tags) ? "resolved" : "rejected_timedout",
        param: data.param ?? {},
        value: {},
        tags,
        timeoutAt: data.timeoutAt,
        createdAt: data.timeoutAt,
        settledAt: data.timeoutAt,
        armed: false,
      };
  writePromise(ctx, promise);
  if (!isTargeted(tags)) return promise;
  if (!live) {
    writeTask(ctx, { id: data.id, state: "fulfilled", version: 0, resumeIds: [] });
    return promise;
  }
  if (claim !== undefined) {
    writeTask(ctx, {
      id: data.id,
      state: "acquired",
      version: 1,
      resumeIds: [],
      pid: claim.pid,
      ttl: claim.ttl,
      expiresAt: later(at, claim.ttl),
    });
    return promise;
  }
  const delayTag = tags[TAG.delay];
  const delay = delayTag === undefined ? at : Number.parseInt(delayTag, 10);
  const retryAt = Math.max(delay, at);
  const task: StoredTask = { id: data.id, state: "pending", version: 0, resumeIds: [], retryAt };
  writeTask(ctx, task);
  // A schedule creates promises at past occurrences: no execute for one already dead now (C5).
  if (retryAt === at && isPendingAt(promise, ctx.now)) dispatch(ctx, task, at);
  return promise;
}

/**
 * R6 at instant `at`: queue `execute(id, version)` to the promise's target and
 * re-arm the retry timer. Gated on the projected promise (C5, T3).
 */
export function dispatch(ctx: StepContext, task: StoredTask, at: number): void {
  assert(task.state === "pending", `only a pending task is dispatched: ${task.id}`);
  const promise = ctx.working.promise(task.id);
  assert(promise !== undefined, `task ${task.id} has a promise`);
  assert(isPendingAt(promise, at), `T3 no dispatch of ${task.id} whose promise is settled`);
  const target = promise.tags[TAG.target];
  assert(target !== undefined, `T2 dispatched task ${task.id} is targeted`);
  writeTask(ctx, { ...task, retryAt: later(at, ctx.config.retryTimeoutMs) });
  const head = ctx.config.serverUrl === undefined ? {} : { serverUrl: ctx.config.serverUrl };
  ctx.working.enqueue({
    key: executeKey(task.id),
    address: target,
    message: { kind: "execute", head, data: { task: { id: task.id, version: task.version } } },
    createdAt: ctx.now,
  });
}

/** Makes a pending-eligible task pending with `retryAt = now` and dispatches it at once. */
export function makePendingAndDispatch(ctx: StepContext, task: StoredTask, resumeIds: string[]): void {
  const pending: StoredTask = {
    id: task.id,
    state: "pending",
    version: task.version,
    resumeIds,
    retryAt: ctx.now,
  };
  writeTask(ctx, pending);
  dispatch(ctx, pending, ctx.now);
}

/**
 * Settles a pending promise and runs its cascade (§3.5): disarm, fulfil the
 * same-id task, drain listeners (R3) and callbacks (R4). Returns the settled promise.
 */
export function settlePromise(
  ctx: StepContext,
  promise: StoredPromise,
  settlement: { state: SettlableState | "rejected_timedout"; value: Value; settledAt: number },
): StoredPromise {
  assert(promise.state === "pending", `only a pending promise settles: ${promise.id}`);
  const settled: StoredPromise = {
    ...promise,
    state: settlement.state,
    value: settlement.value,
    settledAt: settlement.settledAt,
    armed: false,
  };
  writePromise(ctx, settled);
  fulfilTask(ctx, settled.id);
  drainListeners(ctx, settled);
  drainCallbacks(ctx, settled);
  return settled;
}

function fulfilTask(ctx: StepContext, id: string): void {
  const task = ctx.working.task(id);
  if (task === undefined || task.state === "fulfilled") return;
  writeTask(ctx, { id, state: "fulfilled", version: task.version, resumeIds: [] });
}

/** R3: one `unblock` per listener address, carrying the settled record. */
function drainListeners(ctx: StepContext, settled: StoredPromise): void {
  const addresses = ctx.working.listeners(settled.id);
  if (addresses.length === 0) return;
  ctx.working.setListeners(settled.id, []);
  const record = projectPromise(settled, ctx.now);
  for (const address of addresses) {
    ctx.working.enqueue({
      key: unblockKey(settled.id, address),
      address,
      message: { kind: "unblock", head: {}, data: { promise: record } },
      createdAt: ctx.now,
    });
  }
}

/** R4: wake or buffer each awaiter's task; a logically dead awaiter is left asleep (C6). */
function drainCallbacks(ctx: StepContext, settled: StoredPromise): void {
  const awaiters = ctx.working.callbacks(settled.id);
  if (awaiters.length === 0) return;
  ctx.working.setCallbacks(settled.id, []);
  for (const awaiterId of awaiters) {
    const awaiter = materialize(ctx, awaiterId);
    const task = ctx.working.task(awaiterId);
    if (awaiter === undefined || task === undefined || task.state === "fulfilled") continue;
    assert(isPendingAt(awaiter, ctx.now), `C6 awaiter ${awaiterId} with a live task is pending`);
    if (task.state === "suspended") {
      makePendingAndDispatch(ctx, task, [settled.id]);
    } else if (!task.resumeIds.includes(settled.id)) {
      writeTask(ctx, { ...task, resumeIds: [...task.resumeIds, settled.id] });
    }
  }
}

/**
 * R5: an expired lease returns the task to pending and re-dispatches it (gated,
 * C5). With `holderGone`, the lease counts as expired now whatever its deadline:
 * its holder is known to be dead (an embedded process reopening its own file).
 */
export function expireLease(ctx: StepContext, id: string, holderGone = false): void {
  const promise = materialize(ctx, id);
  const task = ctx.working.task(id);
  if (task === undefined || task.state !== "acquired" || task.expiresAt === undefined) return;
  if ((!holderGone && task.expiresAt > ctx.now) || promise === undefined || !isPendingAt(promise, ctx.now))
    return;
  makePendingAndDispatch(ctx, task, task.resumeIds);
}

/** R6 as a timer: a pending task whose retry instant has come is dispatched again (gated, C5). */
export function retryDispatch(ctx: StepContext, id: string): void {
  const promise = materialize(ctx, id);
  const task = ctx.working.task(id);
  if (task === undefined || task.state !== "pending" || task.retryAt === undefined) return;
  if (task.retryAt > ctx.now || promise === undefined || !isPendingAt(promise, ctx.now)) return;
  dispatch(ctx, task, ctx.now);
}

/** Most occurrences one background sweep step fires per schedule; the next step goes on. */
export const MAX_OCCURRENCES_PER_STEP = 1000;

/**
 * R7: fire every occurrence `t` with `nextRunAt <= t <= now` (at most
 * `maxOccurrences`), creating each promise at `t`. Returns true when occurrences
 * due at `now` are left for another step.
 */
export function fireSchedule(ctx: StepContext, id: string, maxOccurrences: number): boolean {
  const schedule = ctx.working.schedule(id);
  if (schedule === undefined) return false;
  let occurrence = schedule.nextRunAt;
  let lastRunAt = schedule.lastRunAt;
  let fired = 0;
  while (occurrence <= ctx.now && fired < maxOccurrences) {
    const promiseId = expandTemplate(schedule.promiseId, schedule.id, occurrence);
    if (ctx.working.promise(promiseId) === undefined) {
      createPromise(
        ctx,
        {
          id: promiseId,
          timeoutAt: later(occurrence, schedule.promiseTimeout),
          param: schedule.promiseParam,
          tags: schedule.promiseTags,
        },
        occurrence,
      );
      // Created in the past: bring it to `now` (its deadline or retry may already be due).
      materialize(ctx, promiseId);
      retryDispatch(ctx, promiseId);
    }
    lastRunAt = occurrence;
    occurrence = nextOccurrence(schedule.cron, occurrence);
    fired += 1;
  }
  if (fired === 0) return false;
  ctx.working.putSchedule({ ...schedule, lastRunAt: lastRunAt as number, nextRunAt: occurrence });
  return occurrence <= ctx.now;
}

/** `{{.id}}` and `{{.timestamp}}` in one pass, so placeholders inside the schedule id stay literal. */
export function expandTemplate(template: string, scheduleId: string, timestamp: number): string {
  return template.replace(/\{\{\.(id|timestamp)\}\}/g, (_, name: string) =>
    name === "id" ? scheduleId : String(timestamp),
  );
}
