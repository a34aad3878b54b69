/**
 * How the PostgreSQL store reads rows: column lists, row shapes, their mapping to
 * stored records, and the WHERE builder of its searches. Kept apart from
 * postgres-store.ts (transactions, replay, writes); no protocol logic here.
 */
import type { OutboxEntry, StoredPromise } from "../../core/state.js";
import { assert } from "../../lib/assert.js";
import { PROMISE_STATES, type PromiseState } from "../../protocol/records.js";
import { decodeText } from "./text.js";

export interface PromiseRow {
  id: string;
  state: string;
  param: string;
  value: string;
  tags: string;
  timeout_at: number;
  created_at: number;
  settled_at: number | null;
  armed: boolean;
}

export interface OutboxRow {
  key: string;
  address: string;
  message: string;
  created_at: number;
}

export const PROMISE_COLUMNS = "id, state, param, value, tags, timeout_at, created_at, settled_at, armed";
export const TASK_COLUMNS = "id, state, version, resume_ids, pid, ttl, expires_at, retry_at";
export const SCHEDULE_COLUMNS =
  "id, cron, promise_id, promise_timeout, promise_param, promise_tags, created_at, next_run_at, last_run_at";
export const OUTBOX_COLUMNS = "key, address, message, created_at";

const promiseStates: readonly string[] = PROMISE_STATES;

export function assertLimit(limit: number): void {
  assert(Number.isInteger(limit) && limit >= 0, `limit must be a non-negative integer, got ${limit}`);
}

export function promiseFromRow(row: PromiseRow): StoredPromise {
  assert(promiseStates.includes(row.state), `promise ${row.id} has state ${row.state}`);
  const promise: StoredPromise = {
    id: row.id,
    state: row.state as PromiseState,
    param: JSON.parse(row.param),
    value: JSON.parse(row.value),
    tags: JSON.parse(row.tags),
    timeoutAt: row.timeout_at,
    createdAt: row.created_at,
    armed: row.armed,
  };
  if (row.settled_at !== null) promise.settledAt = row.settled_at;
  return promise;
}

export function outboxFromRow(row: OutboxRow): OutboxEntry {
  return {
    key: decodeText(row.key),
    address: decodeText(row.address),
    message: JSON.parse(row.message),
    createdAt: row.created_at,
  };
}

/** Builds a WHERE clause and its parameters from optional conditions. */
export class Where {
  readonly parameters: unknown[] = [];
  private readonly conditions: string[] = [];

  add(condition: (parameter: string) => string, value: unknown): void {
    this.parameters.push(value);
    this.conditions.push(condition(`$${this.parameters.length}`));
  }

  limit(limit: number): string {
    assertLimit(limit);
    this.parameters.push(limit);
    return `$${this.parameters.length}`;
  }

  toString(): string {
    return this.conditions.length === 0 ? "" : `WHERE ${this.conditions.join(" AND ")}`;
  }
}
