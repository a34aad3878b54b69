/**
 * Row shapes the SQL stores share, and their mapping back to stored records:
 * absent optional fields come back absent (never null), so every store answers
 * exactly as the memory store does.
 */

import type { StoredSchedule, StoredTask } from "../core/state.js";
import { assert } from "../lib/assert.js";
import { TASK_STATES, type TaskState } from "../protocol/records.js";

export interface TaskRow {
  id: string;
  state: string;
  version: number;
  resume_ids: string;
  pid: string | null;
  ttl: number | null;
  expires_at: number | null;
  retry_at: number | null;
}

export interface ScheduleRow {
  id: string;
  cron: string;
  promise_id: string;
  promise_timeout: number;
  promise_param: string;
  promise_tags: string;
  created_at: number;
  next_run_at: number;
  last_run_at: number | null;
}

const taskStates: readonly string[] = TASK_STATES;

export function taskFromRow(row: TaskRow): StoredTask {
  assert(taskStates.includes(row.state), `task ${row.id} has state ${row.state}`);
  const task: StoredTask = {
    id: row.id,
    state: row.state as TaskState,
    version: row.version,
    resumeIds: JSON.parse(row.resume_ids),
  };
  if (row.pid !== null) task.pid = row.pid;
  if (row.ttl !== null) task.ttl = row.ttl;
  if (row.expires_at !== null) task.expiresAt = row.expires_at;
  if (row.retry_at !== null) task.retryAt = row.retry_at;
  return task;
}

export function scheduleFromRow(row: ScheduleRow): StoredSchedule {
  const schedule: StoredSchedule = {
    id: row.id,
    cron: row.cron,
    promiseId: row.promise_id,
    promiseTimeout: row.promise_timeout,
    promiseParam: JSON.parse(row.promise_param),
    promiseTags: JSON.parse(row.promise_tags),
    createdAt: row.created_at,
    nextRunAt: row.next_run_at,
  };
  if (row.last_run_at !== null) schedule.lastRunAt = row.last_run_at;
  return schedule;
}
