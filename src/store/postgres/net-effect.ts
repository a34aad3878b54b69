/**
 * The net effect of applies made one after another: per key, the last value it
 * was given (`null`: deleted), everything before a reset forgotten. The flush
 * writes it (flush.ts); a replay pass keeps one of its own applies, to answer
 * reads at its newest layer without walking the layers (replay.ts).
 */
import type { Changes, OutboxEntry, StoredPromise, StoredSchedule, StoredTask } from "../../core/state.js";
import { assert } from "../../lib/assert.js";

export interface NetEffect {
  /** A reset came first: what is stored counts for nothing. */
  reset: boolean;
  promises: Map<string, StoredPromise | null>;
  tasks: Map<string, StoredTask | null>;
  schedules: Map<string, StoredSchedule | null>;
  /** Whole sets, replacing what is stored. */
  callbacks: Map<string, string[]>;
  listeners: Map<string, string[]>;
  outbox: Map<string, OutboxEntry | null>;
}

export function emptyNetEffect(): NetEffect {
  return {
    reset: false,
    promises: new Map(),
    tasks: new Map(),
    schedules: new Map(),
    callbacks: new Map(),
    listeners: new Map(),
    outbox: new Map(),
  };
}

/** Adds one apply's `changes`, as the memory store's apply would take them. */
export function addChanges(effect: NetEffect, changes: Changes): void {
  if (changes.reset) {
    effect.reset = true;
    for (const map of [
      effect.promises,
      effect.tasks,
      effect.schedules,
      effect.callbacks,
      effect.listeners,
      effect.outbox,
    ])
      map.clear();
  }
  // Same order as one change's apply: upserts, then the deletions of that change.
  for (const promise of changes.promises) effect.promises.set(promise.id, promise);
  for (const task of changes.tasks) effect.tasks.set(task.id, task);
  for (const id of changes.deletedPromises) effect.promises.set(id, null);
  for (const id of changes.deletedTasks) effect.tasks.set(id, null);
  for (const schedule of changes.schedules) effect.schedules.set(schedule.id, schedule);
  for (const id of changes.deletedSchedules) effect.schedules.set(id, null);
  for (const [awaited, awaiters] of changes.callbacks) {
    if (awaiters.length > 1)
      assert(new Set(awaiters).size === awaiters.length, `callbacks of ${awaited} has duplicates`);
    effect.callbacks.set(awaited, awaiters);
  }
  for (const [awaited, addresses] of changes.listeners) {
    if (addresses.length > 1)
      assert(new Set(addresses).size === addresses.length, `listeners of ${awaited} has duplicates`);
    effect.listeners.set(awaited, addresses);
  }
  for (const key of changes.deletedOutbox) effect.outbox.set(key, null);
  for (const entry of changes.outbox) effect.outbox.set(entry.key, entry);
}
