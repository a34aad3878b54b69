/**
 * How the PostgreSQL store writes a replay pass's applies: their net effect, in
 * one statement. A reset truncates first (what came before it is gone anyway);
 * then, per table, the last value each key was given wins, as applying the
 * changes one after another would leave it (the tables have no foreign keys).
 *
 * One statement, so one round trip whatever the batch holds: data-modifying
 * CTEs, one per table and kind of write. They run on one snapshot and must not
 * touch the same row twice, so the rows each writes are disjoint: a key is
 * either deleted or upserted, never both; a callback or listener set is replaced
 * by deleting the members it lost and inserting, if missing, the ones it has.
 */
import type pg from "pg";
import type { OutboxEntry, StoredPromise, StoredSchedule, StoredTask } from "../../core/state.js";
import { assert } from "../../lib/assert.js";
import { TAG } from "../../protocol/records.js";
import type { ReplayPass } from "./replay.js";
import { encodedTagsJson, encodeText } from "./text.js";

interface NetEffect {
  reset: boolean;
  /** `null`: deleted. */
  promises: Map<string, StoredPromise | null>;
  tasks: Map<string, StoredTask | null>;
  schedules: Map<string, StoredSchedule | null>;
  /** Whole sets, replacing what is stored. */
  callbacks: Map<string, string[]>;
  listeners: Map<string, string[]>;
  outbox: Map<string, OutboxEntry | null>;
}

function netEffect(pass: ReplayPass): NetEffect {
  const effect: NetEffect = {
    reset: false,
    promises: new Map(),
    tasks: new Map(),
    schedules: new Map(),
    callbacks: new Map(),
    listeners: new Map(),
    outbox: new Map(),
  };
  for (const { changes } of pass.unflushed()) {
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

/** Writes the pass's unflushed applies, in at most two statements (a reset's truncation, then the rest). */
export async function flush(client: pg.PoolClient, pass: ReplayPass): Promise<void> {
  if (pass.unflushed().length === 0) return;
  const effect = netEffect(pass);
  if (effect.reset) await client.query("TRUNCATE promises, tasks, schedules, callbacks, listeners, outbox");
  const statement = new Statement();
  writePromises(statement, effect.promises);
  writeTasks(statement, effect.tasks);
  writeSchedules(statement, effect.schedules);
  writeSets(statement, "callbacks", "awaiter", effect.callbacks, (id) => id);
  writeSets(statement, "listeners", "address", effect.listeners, encodeText);
  writeOutbox(statement, effect.outbox);
  const text = statement.text;
  if (text !== undefined)
    await client.query({ name: preparedName(text), text, values: statement.parameters });
}

function writePromises(statement: Statement, promises: Map<string, StoredPromise | null>): void {
  const gone = deleted(promises);
  if (gone.length > 0)
    statement.add(`DELETE FROM promises WHERE id = ANY(${statement.parameter(gone, "text[]")})`);
  const kept = written(promises);
  if (kept.length === 0) return;
  const columns = [
    statement.parameter(
      kept.map((promise) => promise.id),
      "text[]",
    ),
    statement.parameter(
      kept.map((promise) => promise.state),
      "text[]",
    ),
    statement.parameter(
      kept.map((promise) => JSON.stringify(promise.param)),
      "text[]",
    ),
    statement.parameter(
      kept.map((promise) => JSON.stringify(promise.value)),
      "text[]",
    ),
    statement.parameter(
      kept.map((promise) => JSON.stringify(promise.tags)),
      "text[]",
    ),
    statement.parameter(
      kept.map((promise) => encodeBranch(promise.tags[TAG.branch])),
      "text[]",
    ),
    statement.parameter(
      kept.map((promise) => promise.timeoutAt),
      "bigint[]",
    ),
    statement.parameter(
      kept.map((promise) => promise.createdAt),
      "bigint[]",
    ),
    statement.parameter(
      kept.map((promise) => promise.settledAt ?? null),
      "bigint[]",
    ),
    statement.parameter(
      kept.map((promise) => promise.armed),
      "boolean[]",
    ),
    statement.parameter(
      kept.map((promise) => encodedTagsJson(promise.tags)),
      "text[]",
    ),
  ];
  statement.add(
    "INSERT INTO promises (id, state, param, value, tags, branch, timeout_at, created_at, settled_at, armed, tags_index) " +
      "SELECT id, state, param, value, tags, branch, timeout_at, created_at, settled_at, armed, tags_index::jsonb " +
      `FROM unnest(${columns.join(", ")}) ` +
      "AS t(id, state, param, value, tags, branch, timeout_at, created_at, settled_at, armed, tags_index) " +
      "ON CONFLICT (id) DO UPDATE SET " +
      "state = excluded.state, param = excluded.param, value = excluded.value, tags = excluded.tags, " +
      "tags_index = excluded.tags_index, branch = excluded.branch, timeout_at = excluded.timeout_at, " +
      "created_at = excluded.created_at, settled_at = excluded.settled_at, armed = excluded.armed",
  );
}

function writeTasks(statement: Statement, tasks: Map<string, StoredTask | null>): void {
  const gone = deleted(tasks);
  if (gone.length > 0)
    statement.add(`DELETE FROM tasks WHERE id = ANY(${statement.parameter(gone, "text[]")})`);
  const kept = written(tasks);
  if (kept.length === 0) return;
  const columns = [
    statement.parameter(
      kept.map((task) => task.id),
      "text[]",
    ),
    statement.parameter(
      kept.map((task) => task.state),
      "text[]",
    ),
    statement.parameter(
      kept.map((task) => task.version),
      "bigint[]",
    ),
    statement.parameter(
      kept.map((task) => JSON.stringify(task.resumeIds)),
      "text[]",
    ),
    statement.parameter(
      kept.map((task) => task.pid ?? null),
      "text[]",
    ),
    statement.parameter(
      kept.map((task) => task.ttl ?? null),
      "bigint[]",
    ),
    statement.parameter(
      kept.map((task) => task.expiresAt ?? null),
      "bigint[]",
    ),
    statement.parameter(
      kept.map((task) => task.retryAt ?? null),
      "bigint[]",
    ),
    statement.parameter(
      kept.map((task) => task.retryAt ?? task.expiresAt ?? null),
      "bigint[]",
    ),
  ];
  statement.add(
    "INSERT INTO tasks (id, state, version, resume_ids, pid, ttl, expires_at, retry_at, due_at) " +
      `SELECT * FROM unnest(${columns.join(", ")}) ON CONFLICT (id) DO UPDATE SET ` +
      "state = excluded.state, version = excluded.version, resume_ids = excluded.resume_ids, " +
      "pid = excluded.pid, ttl = excluded.ttl, expires_at = excluded.expires_at, " +
      "retry_at = excluded.retry_at, due_at = excluded.due_at",
  );
}

function writeSchedules(statement: Statement, schedules: Map<string, StoredSchedule | null>): void {
  const gone = deleted(schedules);
  if (gone.length > 0)
    statement.add(`DELETE FROM schedules WHERE id = ANY(${statement.parameter(gone, "text[]")})`);
  const kept = written(schedules);
  if (kept.length === 0) return;
  const columns = [
    statement.parameter(
      kept.map((schedule) => schedule.id),
      "text[]",
    ),
    statement.parameter(
      kept.map((schedule) => schedule.cron),
      "text[]",
    ),
    statement.parameter(
      kept.map((schedule) => schedule.promiseId),
      "text[]",
    ),
    statement.parameter(
      kept.map((schedule) => schedule.promiseTimeout),
      "bigint[]",
    ),
    statement.parameter(
      kept.map((schedule) => JSON.stringify(schedule.promiseParam)),
      "text[]",
    ),
    statement.parameter(
      kept.map((schedule) => JSON.stringify(schedule.promiseTags)),
      "text[]",
    ),
    statement.parameter(
      kept.map((schedule) => schedule.createdAt),
      "bigint[]",
    ),
    statement.parameter(
      kept.map((schedule) => schedule.nextRunAt),
      "bigint[]",
    ),
    statement.parameter(
      kept.map((schedule) => schedule.lastRunAt ?? null),
      "bigint[]",
    ),
    statement.parameter(
      kept.map((schedule) => encodedTagsJson(schedule.promiseTags)),
      "text[]",
    ),
  ];
  statement.add(
    "INSERT INTO schedules (id, cron, promise_id, promise_timeout, promise_param, promise_tags, created_at, " +
      "next_run_at, last_run_at, promise_tags_index) " +
      "SELECT id, cron, promise_id, promise_timeout, promise_param, promise_tags, created_at, next_run_at, " +
      `last_run_at, promise_tags_index::jsonb FROM unnest(${columns.join(", ")}) ` +
      "AS t(id, cron, promise_id, promise_timeout, promise_param, promise_tags, created_at, next_run_at, " +
      "last_run_at, promise_tags_index) " +
      "ON CONFLICT (id) DO UPDATE SET promise_tags_index = excluded.promise_tags_index, " +
      "cron = excluded.cron, promise_id = excluded.promise_id, promise_timeout = excluded.promise_timeout, " +
      "promise_param = excluded.promise_param, promise_tags = excluded.promise_tags, " +
      "created_at = excluded.created_at, next_run_at = excluded.next_run_at, last_run_at = excluded.last_run_at",
  );
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

function writeOutbox(statement: Statement, outbox: Map<string, OutboxEntry | null>): void {
  const gone = deleted(outbox);
  if (gone.length > 0)
    statement.add(
      `DELETE FROM outbox WHERE key = ANY(${statement.parameter(gone.map(encodeText), "text[]")})`,
    );
  const kept = written(outbox);
  if (kept.length === 0) return;
  const columns = [
    statement.parameter(
      kept.map((entry) => encodeText(entry.key)),
      "text[]",
    ),
    statement.parameter(
      kept.map((entry) => encodeText(entry.address)),
      "text[]",
    ),
    statement.parameter(
      kept.map((entry) => JSON.stringify(entry.message)),
      "text[]",
    ),
    statement.parameter(
      kept.map((entry) => entry.createdAt),
      "bigint[]",
    ),
  ];
  statement.add(
    "INSERT INTO outbox (key, address, message, created_at) " +
      `SELECT * FROM unnest(${columns.join(", ")}) ON CONFLICT (key) DO UPDATE SET ` +
      "address = excluded.address, message = excluded.message, created_at = excluded.created_at",
  );
}

/**
 * A name per distinct flush text, so that each connection parses and plans it once
 * (a handful of texts: which tables a batch writes). Planning these CTEs costs as
 * much as running them.
 */
const preparedNames = new Map<string, string>();
function preparedName(text: string): string {
  let name = preparedNames.get(text);
  if (name === undefined) {
    name = `pledge_flush_${preparedNames.size + 1}`;
    preparedNames.set(text, name);
  }
  return name;
}

function encodeBranch(branch: string | undefined): string | null {
  return branch === undefined ? null : encodeText(branch);
}
