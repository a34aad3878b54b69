/**
 * `task.*` handlers (PROTOCOL.md §5). Holder operations share the guard block
 * G1–G5 (`guardHeld`); every decision is taken on the projected task, which
 * materialise-on-touch makes equal to the stored one (C4, C5, C7).
 *
 * Invariants:
 *  K1  Acquisition is a compare-and-set on (pending, version) that bumps the
 *      version: at most one valid claim per version (C10).
 *  K2  A suspended task is registered on at least one pending awaited promise.
 */
import { assert } from "../lib/assert.js";
import { compareCodePoints } from "../lib/order.js";
import {
  isExternal,
  isTargeted,
  PRELOAD_FIELD,
  PROTOCOL_VERSION,
  type PromiseRecord,
  TAG,
  type TaskState,
} from "../protocol/records.js";
import type {
  FenceResponseData,
  Response,
  TaskAcquireRequest,
  TaskContinueRequest,
  TaskCreateRequest,
  TaskFenceRequest,
  TaskFulfillRequest,
  TaskGetRequest,
  TaskHaltRequest,
  TaskHeartbeatRequest,
  TaskReleaseRequest,
  TaskSearchRequest,
  TaskSuspendRequest,
} from "../protocol/requests.js";
import { later, projectedTaskState, projectPromise, projectTask } from "./project.js";
import { collectPage, promiseCreate, promiseSettle } from "./promise-handlers.js";
import { fail, ok } from "./responses.js";
import type { StoredPromise, StoredTask } from "./state.js";
import {
  createPromise,
  makePendingAndDispatch,
  materialize,
  type StepContext,
  settlePromise,
  writeTask,
} from "./transitions.js";

/**
 * Preload (§3.8): the task promise's branch-mates, projected, sorted by id, without
 * itself. The stored mates as the branch lists them, overlaid with what this very
 * step wrote (a fenced create): taken from the list rather than read again one by
 * one, so a store need not fetch (and lock, ADR 0003) rows only listed.
 */
function preload(ctx: StepContext, promise: StoredPromise): PromiseRecord[] {
  const branch = promise.tags[TAG.branch];
  if (branch === undefined) return [];
  const mates = new Map(ctx.working.reader.promisesInBranch(branch).map((mate) => [mate.id, mate]));
  for (const written of ctx.working.writtenPromises())
    if (written.tags[TAG.branch] === branch || mates.has(written.id)) mates.set(written.id, written);
  mates.delete(promise.id);
  return [...mates.keys()].sort(compareCodePoints).map((id) => {
    const mate = mates.get(id);
    assert(mate !== undefined, `preload mate ${id} is listed`);
    return projectPromise(mate, ctx.now);
  });
}

type Held = { ok: true; task: StoredTask; promise: StoredPromise } | { ok: false; response: Response };

/** G1–G5 for holder operations: the task exists, is `required`, its promise pending, the version matches. */
function guard(ctx: StepContext, id: string, version: number | undefined, required: TaskState): Held {
  const promise = materialize(ctx, id);
  const task = ctx.working.task(id);
  if (task === undefined) return { ok: false, response: fail(404, `task ${id} not found`) };
  if (promise === undefined) return { ok: false, response: fail(409, `task ${id} has no promise`) };
  if (task.state !== required)
    return { ok: false, response: fail(409, `task ${id} is ${task.state}, not ${required}`) };
  if (promise.state !== "pending")
    return { ok: false, response: fail(409, `promise ${id} is ${promise.state}`) };
  if (version !== undefined && task.version !== version)
    return { ok: false, response: fail(409, `task ${id} is at version ${task.version}, not ${version}`) };
  return { ok: true, task, promise };
}

function acquire(ctx: StepContext, task: StoredTask, pid: string, ttl: number): StoredTask {
  assert(task.state === "pending", `K1 only a pending task is acquired: ${task.id}`);
  const acquired: StoredTask = {
    id: task.id,
    state: "acquired",
    version: task.version + 1,
    resumeIds: [],
    pid,
    ttl,
    expiresAt: later(ctx.now, ttl),
  };
  writeTask(ctx, acquired);
  return acquired;
}

export function taskGet(ctx: StepContext, { data }: TaskGetRequest): Response {
  const promise = materialize(ctx, data.id);
  const task = ctx.working.task(data.id);
  if (task === undefined || promise === undefined) return fail(404, `task ${data.id} not found`);
  return ok({ task: projectTask(task, promise, ctx.now) });
}

export function taskCreate(ctx: StepContext, { data }: TaskCreateRequest): Response {
  const id = data.action.data.id;
  const existing = materialize(ctx, id);
  if (existing === undefined) {
    const promise = createPromise(ctx, data.action.data, ctx.now, { pid: data.pid, ttl: data.ttl });
    const task = ctx.working.task(id);
    assert(task !== undefined, `task.create made task ${id}`);
    return ok({
      task: projectTask(task, promise, ctx.now),
      promise: projectPromise(promise, ctx.now),
      preload: preload(ctx, promise),
    });
  }
  if (!isTargeted(existing.tags)) return fail(422, `promise ${id} exists and is not targeted`);
  const task = ctx.working.task(id);
  if (task === undefined) return fail(409, `promise ${id} is targeted but has no task`);
  const promise = projectPromise(existing, ctx.now);
  if (task.state === "fulfilled")
    return ok({ task: projectTask(task, existing, ctx.now), promise, preload: [] });
  if (task.state !== "pending") return fail(409, `task ${id} is ${task.state}`);
  const acquired = acquire(ctx, task, data.pid, data.ttl);
  return ok({ task: projectTask(acquired, existing, ctx.now), promise, preload: preload(ctx, existing) });
}

export function taskAcquire(ctx: StepContext, { data }: TaskAcquireRequest): Response {
  const held = guard(ctx, data.id, data.version, "pending");
  if (!held.ok) return held.response;
  const acquired = acquire(ctx, held.task, data.pid, data.ttl);
  return ok({
    task: projectTask(acquired, held.promise, ctx.now),
    promise: projectPromise(held.promise, ctx.now),
    preload: preload(ctx, held.promise),
  });
}

export function taskFence(ctx: StepContext, request: TaskFenceRequest): Response {
  const { data } = request;
  if (data.action.kind !== "invalid") materialize(ctx, data.action.data.id);
  const held = guard(ctx, data.id, data.version, "acquired");
  if (!held.ok) return held.response;
  const action = data.action;
  let kind: "promise.create" | "promise.settle";
  let inner: Response;
  if (action.kind === "invalid") {
    kind = action.innerKind;
    inner = fail(400, action.message);
  } else if (action.kind === "promise.create") {
    kind = action.kind;
    inner = promiseCreate(ctx, { kind, corrId: request.corrId, data: action.data });
  } else {
    kind = action.kind;
    inner = promiseSettle(ctx, { kind, corrId: request.corrId, data: action.data });
  }
  const head: FenceResponseData["action"]["head"] = {
    corrId: request.corrId,
    status: inner.status,
    version: PROTOCOL_VERSION,
    ...("error" in inner && { error: inner.error }),
  };
  const response: FenceResponseData = {
    action: { kind, head, data: inner.data },
    preload: data[PRELOAD_FIELD] === false ? [] : preload(ctx, held.promise),
  };
  return ok(response);
}

export function taskHeartbeat(ctx: StepContext, { data }: TaskHeartbeatRequest): Response {
  for (const ref of data.tasks) {
    const promise = materialize(ctx, ref.id);
    const task = ctx.working.task(ref.id);
    if (task === undefined || promise === undefined || promise.state !== "pending") continue;
    if (task.state !== "acquired" || task.version !== ref.version || task.pid !== data.pid) continue;
    assert(task.ttl !== undefined, `acquired task ${task.id} has a ttl`);
    writeTask(ctx, { ...task, expiresAt: later(ctx.now, task.ttl) });
  }
  return ok({});
}

export function taskSuspend(ctx: StepContext, { data }: TaskSuspendRequest): Response {
  const awaitedIds = data.actions.map((action) => action.data.awaited);
  for (const awaitedId of awaitedIds) materialize(ctx, awaitedId);
  const held = guard(ctx, data.id, data.version, "acquired");
  if (!held.ok) return held.response;
  const awaited: StoredPromise[] = [];
  for (const awaitedId of awaitedIds) {
    const promise = ctx.working.promise(awaitedId);
    if (promise === undefined) return fail(422, `awaited promise ${awaitedId} not found`);
    awaited.push(promise);
  }
  for (const promise of awaited)
    if (!isExternal(promise.tags))
      return fail(422, `awaited promise ${promise.id} is internal; only external promises can be awaited`);
  if (awaited.some((promise) => promise.state !== "pending")) {
    writeTask(ctx, { ...held.task, resumeIds: [] });
    return { status: 300, data: { preload: preload(ctx, held.promise) } };
  }
  for (const promise of awaited) {
    const awaiters = ctx.working.callbacks(promise.id);
    if (!awaiters.includes(data.id)) ctx.working.setCallbacks(promise.id, [...awaiters, data.id]);
  }
  writeTask(ctx, { id: data.id, state: "suspended", version: held.task.version, resumeIds: [] });
  return ok({});
}

export function taskFulfill(ctx: StepContext, { data }: TaskFulfillRequest): Response {
  const held = guard(ctx, data.id, data.version, "acquired");
  if (!held.ok) return held.response;
  const settled = settlePromise(ctx, held.promise, {
    state: data.action.data.state,
    value: data.action.data.value ?? {},
    settledAt: ctx.now,
  });
  return ok({ promise: projectPromise(settled, ctx.now) });
}

export function taskRelease(ctx: StepContext, { data }: TaskReleaseRequest): Response {
  const held = guard(ctx, data.id, data.version, "acquired");
  if (!held.ok) return held.response;
  makePendingAndDispatch(ctx, held.task, held.task.resumeIds);
  return ok({});
}

export function taskHalt(ctx: StepContext, { data }: TaskHaltRequest): Response {
  const promise = materialize(ctx, data.id);
  const task = ctx.working.task(data.id);
  if (task === undefined || promise === undefined) return fail(404, `task ${data.id} not found`);
  if (task.state === "fulfilled") return fail(409, `task ${data.id} is fulfilled`);
  if (task.state === "halted") return ok({});
  writeTask(ctx, { id: task.id, state: "halted", version: task.version, resumeIds: task.resumeIds });
  return ok({});
}

export function taskContinue(ctx: StepContext, { data }: TaskContinueRequest): Response {
  const promise = materialize(ctx, data.id);
  const task = ctx.working.task(data.id);
  if (task === undefined) return fail(404, `task ${data.id} not found`);
  if (task.state !== "halted") return fail(409, `task ${data.id} is ${task.state}, not halted`);
  if (promise === undefined) return fail(404, `promise ${data.id} not found`);
  if (promise.state !== "pending") return fail(409, `promise ${data.id} is ${promise.state}`);
  makePendingAndDispatch(ctx, task, task.resumeIds);
  return ok({});
}

export const DEFAULT_TASK_SEARCH_LIMIT = 100;

export function taskSearch(ctx: StepContext, { data }: TaskSearchRequest): Response {
  const limit = data.limit ?? DEFAULT_TASK_SEARCH_LIMIT;
  const wanted = data.state;
  // A stored task of any state but halted… may project to fulfilled; others project to themselves.
  const states: TaskState[] | undefined =
    wanted === undefined || wanted === "fulfilled" ? undefined : [wanted];
  const found = collectPage(
    (after, pageSize) =>
      ctx.working.reader.searchTasks({
        ...(states !== undefined && { states }),
        ...(after !== undefined && { after }),
        limit: pageSize,
      }),
    (task) =>
      wanted === undefined || projectedTaskState(task, ctx.working.promise(task.id), ctx.now) === wanted,
    data.cursor,
    limit,
  );
  return ok({
    tasks: found.items.map((task) => projectTask(task, ctx.working.promise(task.id), ctx.now)),
    ...(found.cursor !== undefined && { cursor: found.cursor }),
  });
}
