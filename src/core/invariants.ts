/**
 * The core's invariants as executable checks, run on every write. They are
 * always on: a violation means the core is wrong, and continuing would corrupt
 * durable state, so the process stops.
 *
 *  S1  A stored promise is armed iff it is pending and external (C1).
 *  S2  acquired ⇔ pid, ttl, expiresAt set; pending ⇔ retryAt set; other states carry none.
 *  S3  Suspended and fulfilled tasks have an empty resume list; resume ids are unique.
 *  S4  A settled promise never changes state, value or settledAt.
 *  S5  A task's version rises by exactly one, and only on pending → acquired.
 *  S6  A fulfilled task never leaves fulfilled.
 */
import { assert } from "../lib/assert.js";
import { isExternal } from "../protocol/records.js";
import type { StoredPromise, StoredTask } from "./state.js";

export function checkPromise(promise: StoredPromise): void {
  assert(promise.id.length > 0, "promise id is non-empty");
  assert(
    promise.armed === (promise.state === "pending" && isExternal(promise.tags)),
    `S1 armed flag of ${promise.id}`,
  );
  assert(
    (promise.state === "pending") === (promise.settledAt === undefined),
    `settledAt iff settled: ${promise.id}`,
  );
  assert(
    Number.isSafeInteger(promise.timeoutAt) && Number.isSafeInteger(promise.createdAt),
    "integer instants",
  );
}

export function checkPromiseTransition(before: StoredPromise | undefined, after: StoredPromise): void {
  checkPromise(after);
  if (before === undefined || before.state === "pending") return;
  assert(
    after.state === before.state &&
      after.settledAt === before.settledAt &&
      JSON.stringify(after.value) === JSON.stringify(before.value),
    `S4 settled promise ${after.id} changed`,
  );
}

export function checkTask(task: StoredTask): void {
  const acquired = task.state === "acquired";
  assert(
    acquired === (task.pid !== undefined && task.ttl !== undefined && task.expiresAt !== undefined),
    `S2 lease fields of ${task.id} match state ${task.state}`,
  );
  assert((task.state === "pending") === (task.retryAt !== undefined), `S2 retry timer of ${task.id}`);
  if (!acquired) assert(task.pid === undefined && task.ttl === undefined, `S2 no holder on ${task.id}`);
  if (task.state === "suspended" || task.state === "fulfilled")
    assert(task.resumeIds.length === 0, `S3 empty resume list of ${task.id}`);
  assert(new Set(task.resumeIds).size === task.resumeIds.length, `S3 unique resume ids of ${task.id}`);
  assert(Number.isSafeInteger(task.version) && task.version >= 0, `version of ${task.id}`);
}

export function checkTaskTransition(before: StoredTask | undefined, after: StoredTask): void {
  checkTask(after);
  if (before === undefined) {
    assert(after.version <= 1, `new task ${after.id} starts at version 0 or 1`);
    return;
  }
  assert(
    before.state !== "fulfilled" || after.state === "fulfilled",
    `S6 fulfilled task ${after.id} left fulfilled`,
  );
  if (before.state === "pending" && after.state === "acquired")
    assert(after.version === before.version + 1, `S5 acquisition of ${after.id} bumps the version by one`);
  else assert(after.version === before.version, `S5 version of ${after.id} changes only on acquisition`);
}
