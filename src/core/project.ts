/**
 * Projection (PROTOCOL.md §3.1, §3.2): what a record looks like at `now`, as
 * opposed to how it is stored. Every record that leaves the core goes through
 * here (C8), so two answers at the same instant never disagree.
 */
import { isTimer, type PromiseRecord, type PromiseState, type TaskRecord } from "../protocol/records.js";
import type { StoredPromise, StoredTask } from "./state.js";

/**
 * `at + durationMs`, saturating at the largest safe integer: a deadline "never"
 * must not overflow into an inexact instant.
 */
export function later(at: number, durationMs: number): number {
  return Math.min(at + durationMs, Number.MAX_SAFE_INTEGER);
}

/** True when the stored promise is pending but its deadline has passed. */
export function isTimedOut(promise: StoredPromise, now: number): boolean {
  return promise.state === "pending" && promise.timeoutAt <= now;
}

/** The state a promise shows at `now`. */
export function projectedState(promise: StoredPromise, now: number): PromiseState {
  if (!isTimedOut(promise, now)) return promise.state;
  return isTimer(promise.tags) ? "resolved" : "rejected_timedout";
}

export function isPendingAt(promise: StoredPromise, now: number): boolean {
  return projectedState(promise, now) === "pending";
}

/** The wire record of a promise at `now`; hidden fields never leave. */
export function projectPromise(promise: StoredPromise, now: number): PromiseRecord {
  const timedOut = isTimedOut(promise, now);
  const record: PromiseRecord = {
    id: promise.id,
    state: projectedState(promise, now),
    param: promise.param,
    value: promise.value,
    tags: promise.tags,
    timeoutAt: promise.timeoutAt,
    createdAt: promise.createdAt,
  };
  if (timedOut) record.settledAt = promise.timeoutAt;
  else if (promise.settledAt !== undefined) record.settledAt = promise.settledAt;
  return record;
}

/** The stored record as a wire record, without projection (`debug.snap`). */
export function storedPromiseRecord(promise: StoredPromise): PromiseRecord {
  return projectPromise(promise, Number.NEGATIVE_INFINITY);
}

/** The state a task shows at `now`: fulfilled as soon as its promise is not pending. */
export function projectedTaskState(task: StoredTask, promise: StoredPromise | undefined, now: number) {
  if (task.state !== "fulfilled" && promise !== undefined && !isPendingAt(promise, now)) return "fulfilled";
  return task.state;
}

export function projectTask(task: StoredTask, promise: StoredPromise | undefined, now: number): TaskRecord {
  const state = projectedTaskState(task, promise, now);
  if (state === "fulfilled") return { id: task.id, state, version: task.version, resumes: 0 };
  return storedTaskRecord(task);
}

/** The stored task as a wire record, without projection (`debug.snap`). */
export function storedTaskRecord(task: StoredTask): TaskRecord {
  const record: TaskRecord = {
    id: task.id,
    state: task.state,
    version: task.version,
    resumes: task.resumeIds.length,
  };
  if (task.state === "acquired") {
    record.ttl = task.ttl;
    record.pid = task.pid;
  }
  return record;
}
