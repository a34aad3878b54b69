/**
 * How the PostgreSQL store writes a replay pass's applies: their net effect, in
 * one statement. A reset truncates first (what came before it is gone anyway);
 * then, per table, the last value each key was given wins, as applying the
 * changes one after another would leave it (the tables have no foreign keys).
 *
 * One statement whatever the batch holds: data-modifying CTEs, one per table and
 * kind of write. They run on one snapshot and must not touch the same row twice,
 * so the rows each writes are disjoint: a key is either deleted or upserted,
 * never both; a callback or listener set is replaced by deleting the members it
 * lost and inserting, if missing, the ones it has.
 */
import type pg from "pg";
import type { OutboxEntry, StoredPromise, StoredSchedule, StoredTask } from "../../core/state.js";
import { TAG } from "../../protocol/records.js";
import { addChanges, emptyNetEffect, type NetEffect } from "./net-effect.js";
import { prepared } from "./pipeline.js";
import type { ReplayPass } from "./replay.js";
import { encodedTagsJson, encodeText } from "./text.js";

function netEffect(pass: ReplayPass): NetEffect {
  const effect = emptyNetEffect();
  for (const { changes } of pass.unflushed()) addChanges(effect, changes);
  return effect;
}

const deleted = <V>(map: Map<string, V | null>) =>
  [...map].filter(([, value]) => value === null).map(([key]) => key);
const written = <V>(map: Map<string, V | null>) =>
  [...map.values()].filter((value): value is V => value !== null);

/** Builds one statement of data-modifying CTEs; `parameter` numbers its values. */
class Statement {
  readonly parameters: unknown[] = [];
  private readonly parts: string[] = [];

  parameter(value: unknown, type: string): string {
    this.parameters.push(value);
    return `$${this.parameters.length}::${type}`;
  }

  add(sql: string): void {
    this.parts.push(`w${this.parts.length} AS (${sql})`);
  }

  get text(): string | undefined {
    return this.parts.length === 0 ? undefined : `WITH ${this.parts.join(", ")} SELECT 1`;
  }
}

/**
 * The statements that write the pass's unflushed applies, to be sent in order: at
 * most two (a reset's truncation, then the rest), none when it applied nothing.
 */
export function flushQueries(pass: ReplayPass): pg.QueryConfig[] {
  if (pass.unflushed().length === 0) return [];
  const effect = netEffect(pass);
  const queries: pg.QueryConfig[] = [];
  if (effect.reset)
    queries.push({ text: "TRUNCATE promises, tasks, schedules, callbacks, listeners, outbox" });
  const statement = new Statement();
  writeTable(statement, "promises", "id", PROMISE_ROW, effect.promises, { jsonb: ["tags_index"] });
  writeTable(statement, "tasks", "id", TASK_ROW, effect.tasks);
  writeTable(statement, "schedules", "id", SCHEDULE_ROW, effect.schedules, { jsonb: ["promise_tags_index"] });
  writeSets(statement, "callbacks", "awaiter", effect.callbacks, (id) => id);
  writeSets(statement, "listeners", "address", effect.listeners, encodeText);
  touchAwaited(statement, effect);
  writeTable(statement, "outbox", "key", OUTBOX_ROW, effect.outbox, { encodeKey: encodeText });
  const text = statement.text;
  // Prepared: a handful of texts (which tables a batch writes), and planning these CTEs costs as much as running them.
  if (text !== undefined) queries.push(prepared(text, statement.parameters));
  return queries;
}

/** A column of a table written from records `R`: its name, its SQL array type, its value. */
type Column<R> = readonly [name: string, type: string, read: (record: R) => unknown];

const PROMISE_ROW: readonly Column<StoredPromise>[] = [
  ["id", "text[]", (promise) => promise.id],
  ["state", "text[]", (promise) => promise.state],
  ["param", "text[]", (promise) => JSON.stringify(promise.param)],
  ["value", "text[]", (promise) => JSON.stringify(promise.value)],
  ["tags", "text[]", (promise) => JSON.stringify(promise.tags)],
  ["branch", "text[]", (promise) => encodeBranch(promise.tags[TAG.branch])],
  ["timeout_at", "bigint[]", (promise) => promise.timeoutAt],
  ["created_at", "bigint[]", (promise) => promise.createdAt],
  ["settled_at", "bigint[]", (promise) => promise.settledAt ?? null],
  ["armed", "boolean[]", (promise) => promise.armed],
  ["tags_index", "text[]", (promise) => encodedTagsJson(promise.tags)],
];

const TASK_ROW: readonly Column<StoredTask>[] = [
  ["id", "text[]", (task) => task.id],
  ["state", "text[]", (task) => task.state],
  ["version", "bigint[]", (task) => task.version],
  ["resume_ids", "text[]", (task) => JSON.stringify(task.resumeIds)],
  ["pid", "text[]", (task) => task.pid ?? null],
  ["ttl", "bigint[]", (task) => task.ttl ?? null],
  ["expires_at", "bigint[]", (task) => task.expiresAt ?? null],
  ["retry_at", "bigint[]", (task) => task.retryAt ?? null],
  ["due_at", "bigint[]", (task) => task.retryAt ?? task.expiresAt ?? null],
];

const SCHEDULE_ROW: readonly Column<StoredSchedule>[] = [
  ["id", "text[]", (schedule) => schedule.id],
  ["cron", "text[]", (schedule) => schedule.cron],
  ["promise_id", "text[]", (schedule) => schedule.promiseId],
  ["promise_timeout", "bigint[]", (schedule) => schedule.promiseTimeout],
  ["promise_param", "text[]", (schedule) => JSON.stringify(schedule.promiseParam)],
  ["promise_tags", "text[]", (schedule) => JSON.stringify(schedule.promiseTags)],
  ["created_at", "bigint[]", (schedule) => schedule.createdAt],
  ["next_run_at", "bigint[]", (schedule) => schedule.nextRunAt],
  ["last_run_at", "bigint[]", (schedule) => schedule.lastRunAt ?? null],
  ["promise_tags_index", "text[]", (schedule) => encodedTagsJson(schedule.promiseTags)],
];

const OUTBOX_ROW: readonly Column<OutboxEntry>[] = [
  ["key", "text[]", (entry) => encodeText(entry.key)],
  ["address", "text[]", (entry) => encodeText(entry.address)],
  ["message", "text[]", (entry) => JSON.stringify(entry.message)],
  ["created_at", "bigint[]", (entry) => entry.createdAt],
];

/**
 * Upserts `records` into `table` (one row each, by its `key` column) and deletes
 * the `gone` keys: the two touch disjoint rows, as one statement requires.
 * `jsonb`: the columns stored as jsonb, sent as text.
 */
function writeTable<R>(
  statement: Statement,
  table: string,
  key: string,
  row: readonly Column<R>[],
  changed: Map<string, R | null>,
  options: { jsonb?: readonly string[]; encodeKey?: (key: string) => string } = {},
): void {
  const gone = deleted(changed).map(options.encodeKey ?? ((id) => id));
  if (gone.length > 0)
    statement.add(`DELETE FROM ${table} WHERE ${key} = ANY(${statement.parameter(gone, "text[]")})`);
  const kept = written(changed);
  if (kept.length === 0) return;
  const names = row.map(([name]) => name);
  const arrays = row.map(([, type, read]) => statement.parameter(kept.map(read), type));
  const selected = names.map((name) => (options.jsonb?.includes(name) ? `${name}::jsonb` : name));
  const updates = names.filter((name) => name !== key).map((name) => `${name} = excluded.${name}`);
  statement.add(
    `INSERT INTO ${table} (${names.join(", ")}) SELECT ${selected.join(", ")} ` +
      `FROM unnest(${arrays.join(", ")}) AS t(${names.join(", ")}) ` +
      `ON CONFLICT (${key}) DO UPDATE SET ${updates.join(", ")}`,
  );
}

/**
 * Makes every promise whose callback or listener set changed count as changed
 * (ADR 0003): a transaction that locks it afterwards, on a snapshot taken before
 * this one committed, then fails with 40001 instead of reading the set as it was.
 * A lock alone would not do: PostgreSQL lets a waiter whose row was only locked,
 * not changed, go on with its old snapshot, and so a settle that waited for a
 * concurrent registration drained the set without the registration. Promises the
 * flush writes anyway are left out (a row is written once per statement).
 */
function touchAwaited(statement: Statement, effect: NetEffect): void {
  const awaited = new Set([...effect.callbacks.keys(), ...effect.listeners.keys()]);
  for (const id of effect.promises.keys()) awaited.delete(id);
  if (awaited.size === 0) return;
  statement.add(`UPDATE promises SET id = id WHERE id = ANY(${statement.parameter([...awaited], "text[]")})`);
}

/** Replaces each written set whole: its lost members are deleted, its members inserted if missing. */
function writeSets(
  statement: Statement,
  table: "callbacks" | "listeners",
  column: "awaiter" | "address",
  sets: Map<string, string[]>,
  encode: (member: string) => string,
): void {
  if (sets.size === 0) return;
  const awaited: string[] = [];
  const members: string[] = [];
  for (const [key, set] of sets) {
    for (const member of set) {
      awaited.push(key);
      members.push(encode(member));
    }
  }
  const keys = statement.parameter([...sets.keys()], "text[]");
  const pairs = `unnest(${statement.parameter(awaited, "text[]")}, ${statement.parameter(members, "text[]")})`;
  statement.add(
    `DELETE FROM ${table} AS stored WHERE stored.awaited = ANY(${keys}) AND NOT EXISTS ` +
      `(SELECT 1 FROM ${pairs} AS kept(awaited, member) ` +
      `WHERE kept.awaited = stored.awaited AND kept.member = stored.${column})`,
  );
  if (awaited.length > 0)
    statement.add(`INSERT INTO ${table} (awaited, ${column}) SELECT * FROM ${pairs} ON CONFLICT DO NOTHING`);
}

function encodeBranch(branch: string | undefined): string | null {
  return branch === undefined ? null : encodeText(branch);
}
