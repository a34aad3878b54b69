/**
 * The PostgreSQL store: `Store` on `pg`. It answers exactly as the memory store
 * does (the shared suite and the differential test hold it to that) and holds no
 * protocol logic: it reads rows, writes whole rows, and copies two derived values
 * at write time (`branch`, `due_at`; see migrations.ts).
 *
 * `pg` is asynchronous and `work` is synchronous, so a transaction runs by replay
 * (ADR 0001, addendum; the mechanics live in replay.ts): BEGIN ISOLATION LEVEL
 * SERIALIZABLE on one pooled client, run `work` against the cache, and on a miss
 * flush the applies made before it, fetch the reads the pass missed (the first and
 * those it recorded speculating; point reads one query per kind), run `work`
 * again; when it completes, flush the rest and COMMIT. A serialization failure or
 * deadlock (40001, 40P01) rolls back and runs the whole batch again, a bounded
 * number of times.
 *
 * What it leaves to others: what to write (core/), batching (server/), retrying a
 * `StoreUnavailableError` (server/, the HTTP edge answers 503).
 *
 * Invariants:
 *  P1  `work`'s changes reach the database only inside the transaction that
 *      commits them; a failed attempt is rolled back whole.
 *  P2  A lost connection, a pool timeout or a conflict that outlives the retries
 *      surfaces as `StoreUnavailableError`, with nothing of the batch applied.
 *  P3  An error thrown by `work` itself rolls back and is rethrown unchanged.
 */
import pg from "pg";
import type {
  DueWork,
  OutboxEntry,
  OutboxQuery,
  PromiseQuery,
  ScheduleQuery,
  SettledQuery,
  StoredPromise,
  StoredSchedule,
  StoredTask,
  TaskQuery,
} from "../../core/state.js";
import { AssertionError, assert } from "../../lib/assert.js";
import { TAG } from "../../protocol/records.js";
import { type ScheduleRow, scheduleFromRow, type TaskRow, taskFromRow } from "../rows.js";
import {
  type StateCounts,
  type Store,
  StoreSchemaError,
  type StoreStats,
  type StoreTransaction,
  StoreUnavailableError,
} from "../store.js";
import { isConflict, isConnectionError, translateError } from "./errors.js";
import { MIGRATIONS, type Migration } from "./migrations.js";
import { type PointMethod, type Read, ReadMiss, ReplayCache, ReplayPass } from "./replay.js";
import {
  assertLimit,
  OUTBOX_COLUMNS,
  type OutboxRow,
  outboxFromRow,
  PROMISE_COLUMNS,
  type PromiseRow,
  promiseFromRow,
  SCHEDULE_COLUMNS,
  TASK_COLUMNS,
  Where,
} from "./row-reads.js";
import { decodeText, encodedTagsJson, encodeText } from "./text.js";

export interface PostgresStoreOptions {
  /** `postgres://user@host:port/database`. */
  url: string;
  /** Pool settings; `max` defaults to 10, `connectionTimeoutMillis` to 5000 (never wait forever). */
  pool?: Omit<pg.PoolConfig, "connectionString" | "types" | "options">;
  /** A schema to create and use (search_path); tests use a fresh one each. */
  schema?: string;
  /** Whole-batch attempts on a serialization conflict before giving up (default 10). */
  conflictAttempts?: number;
}

export interface PostgresStoreStats extends StoreStats {
  /** Attempts rolled back on a serialization conflict or deadlock and run again. */
  conflictRetries: number;
  /** Runs of `work` (a batch with k misses runs k + 1 times). */
  passes: number;
  /** Reads fetched after a miss. */
  fetches: number;
  /** Batches of reads fetched together after a pass missed (at most one per pass). */
  fetchRounds: number;
}

/** Backoff after the n-th conflict: uniformly random below min(first × 2^(n-1), most) ms ("full jitter"). */
const CONFLICT_BACKOFF_FIRST_MS = 2;
const CONFLICT_BACKOFF_MOST_MS = 200;
/** Arbitrary constant: the advisory lock that serialises migrations of one database. */
const MIGRATION_LOCK = 0x706c6467; // "pldg"

const INT8_OID = 20;
/** `bigint` columns hold milliseconds and versions, all safe integers: read them as numbers. */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => {
    if (oid === INT8_OID && format !== "binary") return (text: string) => Number(text);
    return pg.types.getTypeParser(oid, format as "text");
  }) as pg.CustomTypesConfig["getTypeParser"],
};

export async function openPostgresStore(options: PostgresStoreOptions): Promise<PostgresStore> {
  const description = describeUrl(options.url);
  if (options.schema !== undefined)
    assert(
      /^[a-z_][a-z0-9_]*$/.test(options.schema),
      `schema must be a lower-case identifier: ${options.schema}`,
    );
  const pool = new pg.Pool({
    max: 10,
    connectionTimeoutMillis: 5000,
    ...options.pool,
    connectionString: options.url,
    types,
    ...(options.schema !== undefined && { options: `-c search_path=${options.schema}` }),
  });
  // An idle client that loses its connection emits here; without a listener it would crash the process.
  pool.on("error", () => {});
  // So does a checked-out client between two queries of a transaction (PostgreSQL restarted, a backend
  // terminated): the error is kept by the client, its next query fails as a connection error (P2), and
  // the client is released as broken. Without this listener `pledge serve` died with PostgreSQL.
  pool.on("connect", (client) => client.on("error", () => {}));
  try {
    const schemaVersion = await applyMigrations(pool, {
      migrations: MIGRATIONS,
      description,
      ...(options.schema !== undefined && { schema: options.schema }),
    });
    return new PostgresStore(pool, description, schemaVersion.to, options.conflictAttempts ?? 10);
  } catch (error) {
    await pool.end().catch(() => {});
    throw translateError(error, description);
  }
}

/** The URL without its password, for logs. */
function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return "postgres://(unparsable URL)";
  }
}

export class PostgresStore implements Store {
  readonly stats: PostgresStoreStats = {
    commits: 0,
    conflictRetries: 0,
    passes: 0,
    fetches: 0,
    fetchRounds: 0,
  };
  private closed = false;
  private active = 0;

  constructor(
    private readonly pool: pg.Pool,
    readonly description: string,
    /** The schema version after opening. */
    readonly schemaVersion: number,
    private readonly conflictAttempts: number,
  ) {}

  async transaction<T>(work: (tx: StoreTransaction) => T): Promise<T> {
    if (this.closed) throw new Error(`${this.description} is closed`);
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.attempt(work);
      } catch (error) {
        if (error instanceof WorkFailure) throw error.error; // P3
        if (!isConflict(error)) throw translateError(error, this.description);
        if (attempt >= this.conflictAttempts) {
          throw new StoreUnavailableError(
            `${this.description}: serialization conflicts persisted through ${attempt} attempts; retry the request`,
            { cause: error },
          );
        }
        this.stats.conflictRetries += 1;
        // Exponential backoff with full jitter, so batches that conflicted spread out instead of meeting again.
        const ceilingMs = Math.min(CONFLICT_BACKOFF_FIRST_MS * 2 ** (attempt - 1), CONFLICT_BACKOFF_MOST_MS);
        await sleep(Math.random() * ceilingMs);
      }
    }
  }

  /** One attempt: a database transaction, with as many passes of `work` as misses need (P1). */
  private async attempt<T>(work: (tx: StoreTransaction) => T): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    this.active += 1;
    try {
      await client.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
      try {
        const result = await this.run(client, work);
        await client.query("COMMIT");
        this.stats.commits += 1;
        return result;
      } catch (error) {
        try {
          await client.query("ROLLBACK");
        } catch (rollbackError) {
          broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        }
        throw error;
      }
    } catch (error) {
      if (isConnectionError(error)) broken = error as Error;
      throw error;
    } finally {
      this.active -= 1;
      client.release(broken);
    }
  }

  private async run<T>(client: pg.PoolClient, work: (tx: StoreTransaction) => T): Promise<T> {
    const cache = new ReplayCache();
    for (;;) {
      const pass = new ReplayPass(cache);
      this.stats.passes += 1;
      let result: T | undefined;
      let failure: { error: unknown } | undefined;
      try {
        result = work(pass);
        assert(!isThenable(result), "transaction work returned a promise; work must be synchronous");
      } catch (error) {
        // After a miss the pass speculates: what `work` makes of guessed answers is dropped.
        if (error instanceof AssertionError && !pass.speculating) throw error;
        // R3: a miss wins over whatever `work` made of it.
        if (!(error instanceof ReadMiss) && pass.miss === undefined) failure = { error };
      } finally {
        pass.close();
      }
      if (failure !== undefined) throw new WorkFailure(failure.error); // P3, unwrapped by `transaction`
      await flush(client, pass);
      cache.markFlushed(pass);
      if (pass.miss === undefined) return result as T;
      const misses = pass.misses();
      const values = await fetchReads(client, misses);
      this.stats.fetches += misses.length;
      this.stats.fetchRounds += 1;
      for (const [index, read] of misses.entries()) cache.store(read, values[index]);
    }
  }

  async ping(): Promise<void> {
    if (this.closed) throw new StoreUnavailableError(`${this.description} is closed`);
    try {
      await this.pool.query("SELECT 1");
    } catch (error) {
      throw translateError(error, this.description, true);
    }
  }

  async countByState(): Promise<StateCounts> {
    if (this.closed) throw new StoreUnavailableError(`${this.description} is closed`);
    try {
      const promises = await this.pool.query<{ state: string; n: string }>(
        "SELECT state, count(*) AS n FROM promises GROUP BY state",
      );
      const tasks = await this.pool.query<{ state: string; n: string }>(
        "SELECT state, count(*) AS n FROM tasks GROUP BY state",
      );
      return { promises: countRows(promises.rows), tasks: countRows(tasks.rows) };
    } catch (error) {
      throw translateError(error, this.description, true);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

/** Carries an error thrown by `work` past the driver-error handling, so it is rethrown unchanged (P3). */
class WorkFailure {
  constructor(readonly error: unknown) {}
}

function encodeBranch(branch: string | undefined): string | null {
  return branch === undefined ? null : encodeText(branch);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isThenable(value: unknown): boolean {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/**
 * Brings the database to the newest of `migrations` in one transaction holding a
 * transaction-scoped advisory lock (M2), so replicas opening together take turns.
 * Refuses a database whose version is newer than the newest migration given.
 * Exported for the migration tests.
 */
export async function applyMigrations(
  pool: pg.Pool,
  options: { migrations: readonly Migration[]; description: string; schema?: string },
): Promise<{ from: number; to: number }> {
  const { migrations, description, schema } = options;
  migrations.forEach((migration, index) => {
    assert(migration.version === index + 1, `migration ${migration.name} has version ${migration.version}`);
  });
  const newest = migrations.length;
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    try {
      await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
      if (schema !== undefined)
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`);
      await client.query(
        "CREATE TABLE IF NOT EXISTS pledge_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
      );
      const current = await client.query<{ version: number | null }>(
        "SELECT max(version) AS version FROM pledge_migrations",
      );
      const from = current.rows[0]?.version ?? 0;
      if (from > newest) {
        throw new StoreSchemaError(
          `${description} has schema version ${from}, but this build of Pledge knows versions up to ${newest}; upgrade Pledge to open it`,
        );
      }
      for (const migration of migrations.slice(from)) {
        try {
          await client.query(migration.sql);
        } catch (error) {
          if (isConnectionError(error)) throw error;
          throw new StoreSchemaError(
            `${description}: migration ${migration.version} (${migration.name}) failed: ${(error as Error).message}`,
            { cause: error },
          );
        }
        await client.query("INSERT INTO pledge_migrations (version, name) VALUES ($1, $2)", [
          migration.version,
          migration.name,
        ]);
      }
      await client.query("COMMIT");
      return { from, to: Math.max(from, newest) };
    } catch (error) {
      await client.query("ROLLBACK").catch((rollbackError: Error) => {
        broken = rollbackError;
      });
      throw error;
    }
  } catch (error) {
    if (isConnectionError(error)) broken = error as Error;
    throw error;
  } finally {
    client.release(broken);
  }
}

// ---------------------------------------------------------------------------
// Writes

/**
 * Writes the pass's unflushed applies. Their net effect is written, in a few
 * statements rather than one per record: a reset truncates (what came before it
 * is gone anyway), then per table the last value each key was given wins, as
 * applying them one after another would leave it (tables have no foreign keys).
 */
async function flush(client: pg.PoolClient, pass: ReplayPass): Promise<void> {
  const layers = pass.unflushed();
  if (layers.length === 0) return;
  let reset = false;
  const promises = new Map<string, StoredPromise | null>();
  const tasks = new Map<string, StoredTask | null>();
  const schedules = new Map<string, StoredSchedule | null>();
  const callbacks = new Map<string, string[]>();
  const listeners = new Map<string, string[]>();
  const outbox = new Map<string, OutboxEntry | null>();
  for (const { changes } of layers) {
    if (changes.reset) {
      reset = true;
      for (const map of [promises, tasks, schedules, callbacks, listeners, outbox]) map.clear();
    }
    // Same order as one change's apply: upserts, then the deletions of that change.
    for (const promise of changes.promises) promises.set(promise.id, promise);
    for (const task of changes.tasks) tasks.set(task.id, task);
    for (const id of changes.deletedPromises) promises.set(id, null);
    for (const id of changes.deletedTasks) tasks.set(id, null);
    for (const schedule of changes.schedules) schedules.set(schedule.id, schedule);
    for (const id of changes.deletedSchedules) schedules.set(id, null);
    for (const [awaited, awaiters] of changes.callbacks) {
      if (awaiters.length > 1)
        assert(new Set(awaiters).size === awaiters.length, `callbacks of ${awaited} has duplicates`);
      callbacks.set(awaited, awaiters);
    }
    for (const [awaited, addresses] of changes.listeners) {
      if (addresses.length > 1)
        assert(new Set(addresses).size === addresses.length, `listeners of ${awaited} has duplicates`);
      listeners.set(awaited, addresses);
    }
    for (const key of changes.deletedOutbox) outbox.set(key, null);
    for (const entry of changes.outbox) outbox.set(entry.key, entry);
  }
  const deleted = <V>(map: Map<string, V | null>) =>
    [...map].filter(([, value]) => value === null).map(([key]) => key);
  const written = <V>(map: Map<string, V | null>) =>
    [...map.values()].filter((value): value is V => value !== null);

  if (reset) await client.query("TRUNCATE promises, tasks, schedules, callbacks, listeners, outbox");

  const goneP = deleted(promises);
  if (goneP.length > 0) await client.query("DELETE FROM promises WHERE id = ANY($1::text[])", [goneP]);
  const keptP = written(promises);
  if (keptP.length > 0) {
    await client.query(
      "INSERT INTO promises (id, state, param, value, tags, branch, timeout_at, created_at, settled_at, armed, tags_index) " +
        "SELECT id, state, param, value, tags, branch, timeout_at, created_at, settled_at, armed, tags_index::jsonb " +
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], " +
        "$8::bigint[], $9::bigint[], $10::boolean[], $11::text[]) " +
        "AS t(id, state, param, value, tags, branch, timeout_at, created_at, settled_at, armed, tags_index) " +
        "ON CONFLICT (id) DO UPDATE SET " +
        "state = excluded.state, param = excluded.param, value = excluded.value, tags = excluded.tags, " +
        "tags_index = excluded.tags_index, " +
        "branch = excluded.branch, timeout_at = excluded.timeout_at, created_at = excluded.created_at, " +
        "settled_at = excluded.settled_at, armed = excluded.armed",
      [
        keptP.map((promise) => promise.id),
        keptP.map((promise) => promise.state),
        keptP.map((promise) => JSON.stringify(promise.param)),
        keptP.map((promise) => JSON.stringify(promise.value)),
        keptP.map((promise) => JSON.stringify(promise.tags)),
        keptP.map((promise) => encodeBranch(promise.tags[TAG.branch])),
        keptP.map((promise) => promise.timeoutAt),
        keptP.map((promise) => promise.createdAt),
        keptP.map((promise) => promise.settledAt ?? null),
        keptP.map((promise) => promise.armed),
        keptP.map((promise) => encodedTagsJson(promise.tags)),
      ],
    );
  }

  const goneT = deleted(tasks);
  if (goneT.length > 0) await client.query("DELETE FROM tasks WHERE id = ANY($1::text[])", [goneT]);
  const keptT = written(tasks);
  if (keptT.length > 0) {
    await client.query(
      "INSERT INTO tasks (id, state, version, resume_ids, pid, ttl, expires_at, retry_at, due_at) " +
        "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], " +
        "$7::bigint[], $8::bigint[], $9::bigint[]) ON CONFLICT (id) DO UPDATE SET " +
        "state = excluded.state, version = excluded.version, resume_ids = excluded.resume_ids, " +
        "pid = excluded.pid, ttl = excluded.ttl, expires_at = excluded.expires_at, " +
        "retry_at = excluded.retry_at, due_at = excluded.due_at",
      [
        keptT.map((task) => task.id),
        keptT.map((task) => task.state),
        keptT.map((task) => task.version),
        keptT.map((task) => JSON.stringify(task.resumeIds)),
        keptT.map((task) => task.pid ?? null),
        keptT.map((task) => task.ttl ?? null),
        keptT.map((task) => task.expiresAt ?? null),
        keptT.map((task) => task.retryAt ?? null),
        keptT.map((task) => task.retryAt ?? task.expiresAt ?? null),
      ],
    );
  }

  const goneS = deleted(schedules);
  if (goneS.length > 0) await client.query("DELETE FROM schedules WHERE id = ANY($1::text[])", [goneS]);
  for (const schedule of written(schedules)) {
    await client.query(
      "INSERT INTO schedules (id, cron, promise_id, promise_timeout, promise_param, promise_tags, created_at, " +
        "next_run_at, last_run_at, promise_tags_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) " +
        "ON CONFLICT (id) DO UPDATE SET promise_tags_index = excluded.promise_tags_index, " +
        "cron = excluded.cron, promise_id = excluded.promise_id, promise_timeout = excluded.promise_timeout, " +
        "promise_param = excluded.promise_param, promise_tags = excluded.promise_tags, " +
        "created_at = excluded.created_at, next_run_at = excluded.next_run_at, last_run_at = excluded.last_run_at",
      [
        schedule.id,
        schedule.cron,
        schedule.promiseId,
        schedule.promiseTimeout,
        JSON.stringify(schedule.promiseParam),
        JSON.stringify(schedule.promiseTags),
        schedule.createdAt,
        schedule.nextRunAt,
        schedule.lastRunAt ?? null,
        encodedTagsJson(schedule.promiseTags),
      ],
    );
  }

  for (const [table, column, sets, encode] of [
    ["callbacks", "awaiter", callbacks, (id: string) => id],
    ["listeners", "address", listeners, encodeText],
  ] as const) {
    // Every set written is replaced whole: one delete of them all, one insert of the non-empty ones.
    if (sets.size === 0) continue;
    await client.query(`DELETE FROM ${table} WHERE awaited = ANY($1::text[])`, [[...sets.keys()]]);
    const awaited: string[] = [];
    const members: string[] = [];
    for (const [key, set] of sets) {
      for (const member of set) {
        awaited.push(key);
        members.push(encode(member));
      }
    }
    if (awaited.length > 0)
      await client.query(
        `INSERT INTO ${table} (awaited, ${column}) SELECT * FROM unnest($1::text[], $2::text[])`,
        [awaited, members],
      );
  }

  const goneO = deleted(outbox);
  if (goneO.length > 0)
    await client.query("DELETE FROM outbox WHERE key = ANY($1::text[])", [goneO.map(encodeText)]);
  const keptO = written(outbox);
  if (keptO.length > 0)
    await client.query(
      "INSERT INTO outbox (key, address, message, created_at) " +
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) ON CONFLICT (key) DO UPDATE SET " +
        "address = excluded.address, message = excluded.message, created_at = excluded.created_at",
      [
        keptO.map((entry) => encodeText(entry.key)),
        keptO.map((entry) => encodeText(entry.address)),
        keptO.map((entry) => JSON.stringify(entry.message)),
        keptO.map((entry) => entry.createdAt),
      ],
    );
}

// ---------------------------------------------------------------------------
// Reads

/**
 * Fetches the reads a pass missed, as of the database transaction's current state,
 * in order: point reads of one kind in one query, each other read on its own.
 */
async function fetchReads(client: pg.PoolClient, reads: readonly Read[]): Promise<unknown[]> {
  const values: unknown[] = new Array(reads.length);
  const byMethod = new Map<PointMethod, { index: number; key: string }[]>();
  const branches: { index: number; branch: string }[] = [];
  for (const [index, read] of reads.entries()) {
    if ("key" in read) {
      const group = byMethod.get(read.method) ?? [];
      group.push({ index, key: read.key });
      byMethod.set(read.method, group);
    } else if (read.method === "promisesInBranch" && reads.length > 1)
      branches.push({ index, branch: read.args[0] as string });
    else values[index] = await fetchRead(client, read);
  }
  if (branches.length > 0) {
    // Several branches in one query; each answer in id order, as `fetchRead` gives it.
    const encoded = new Map(branches.map((entry) => [encodeText(entry.branch), entry.branch]));
    const mates = new Map<string, StoredPromise[]>();
    for (const row of await client
      .query<PromiseRow & { branch: string }>(
        `SELECT branch, ${PROMISE_COLUMNS} FROM promises WHERE branch = ANY($1::text[]) ORDER BY branch, id`,
        [[...encoded.keys()]],
      )
      .then((result) => result.rows)) {
      const branch = encoded.get(row.branch);
      assert(branch !== undefined, `a promise of branch ${row.branch} was not asked for`);
      const list = mates.get(branch) ?? [];
      list.push(promiseFromRow(row));
      mates.set(branch, list);
    }
    for (const entry of branches) values[entry.index] = mates.get(entry.branch) ?? [];
  }
  for (const [method, group] of byMethod) {
    if (group.length === 1) {
      const [only] = group as [{ index: number; key: string }];
      values[only.index] = await fetchRead(client, { method, key: only.key });
      continue;
    }
    const found = await fetchPoints(
      client,
      method,
      group.map((entry) => entry.key),
    );
    for (const entry of group) values[entry.index] = found(entry.key);
  }
  return values;
}

/** Point reads of one kind for several keys in one query; the lookup answers as `fetchRead` would. */
async function fetchPoints(
  client: pg.PoolClient,
  method: PointMethod,
  keys: string[],
): Promise<(key: string) => unknown> {
  const rows = async <Row extends pg.QueryResultRow>(sql: string, parameters: unknown[]) =>
    (await client.query<Row>(sql, parameters)).rows;
  const single = <V>(entries: [string, V][]) => {
    const map = new Map(entries);
    return (key: string) => map.get(key);
  };
  const sets = (entries: { awaited: string; member: string }[]) => {
    const map = new Map<string, string[]>();
    for (const { awaited, member } of entries) {
      const members = map.get(awaited) ?? [];
      members.push(member);
      map.set(awaited, members);
    }
    return (key: string) => map.get(key) ?? [];
  };
  switch (method) {
    case "promise":
      return single(
        (
          await rows<PromiseRow>(`SELECT ${PROMISE_COLUMNS} FROM promises WHERE id = ANY($1::text[])`, [keys])
        ).map((row) => [row.id, promiseFromRow(row)]),
      );
    case "task":
      return single(
        (await rows<TaskRow>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = ANY($1::text[])`, [keys])).map(
          (row) => [row.id, taskFromRow(row)],
        ),
      );
    case "schedule":
      return single(
        (
          await rows<ScheduleRow>(`SELECT ${SCHEDULE_COLUMNS} FROM schedules WHERE id = ANY($1::text[])`, [
            keys,
          ])
        ).map((row) => [row.id, scheduleFromRow(row)]),
      );
    case "callbacks":
      // Same order as `fetchRead`: by awaiter within each awaited id.
      return sets(
        (
          await rows<{ awaited: string; awaiter: string }>(
            "SELECT awaited, awaiter FROM callbacks WHERE awaited = ANY($1::text[]) ORDER BY awaited, awaiter",
            [keys],
          )
        ).map((row) => ({ awaited: row.awaited, member: row.awaiter })),
      );
    case "listeners":
      return sets(
        (
          await rows<{ awaited: string; address: string }>(
            "SELECT awaited, address FROM listeners WHERE awaited = ANY($1::text[]) ORDER BY awaited, address",
            [keys],
          )
        ).map((row) => ({ awaited: row.awaited, member: decodeText(row.address) })),
      );
    case "outboxEntry": {
      const found = new Map(
        (
          await rows<OutboxRow>(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE key = ANY($1::text[])`, [
            keys.map(encodeText),
          ])
        ).map((row) => {
          const entry = outboxFromRow(row);
          return [entry.key, entry] as const;
        }),
      );
      return (key: string) => found.get(key);
    }
  }
}

/** Fetches one read the replay cache missed, as of the database transaction's current state. */
async function fetchRead(client: pg.PoolClient, read: Read): Promise<unknown> {
  const rows = async <Row extends pg.QueryResultRow>(sql: string, parameters: unknown[]) =>
    (await client.query<Row>(sql, parameters)).rows;
  if ("key" in read) {
    switch (read.method) {
      case "promise": {
        const [row] = await rows<PromiseRow>(`SELECT ${PROMISE_COLUMNS} FROM promises WHERE id = $1`, [
          read.key,
        ]);
        return row && promiseFromRow(row);
      }
      case "task": {
        const [row] = await rows<TaskRow>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = $1`, [read.key]);
        return row && taskFromRow(row);
      }
      case "schedule": {
        const [row] = await rows<ScheduleRow>(`SELECT ${SCHEDULE_COLUMNS} FROM schedules WHERE id = $1`, [
          read.key,
        ]);
        return row && scheduleFromRow(row);
      }
      case "callbacks":
        return (
          await rows<{ awaiter: string }>(
            "SELECT awaiter FROM callbacks WHERE awaited = $1 ORDER BY awaiter",
            [read.key],
          )
        ).map((row) => row.awaiter);
      case "listeners":
        return (
          await rows<{ address: string }>(
            "SELECT address FROM listeners WHERE awaited = $1 ORDER BY address",
            [read.key],
          )
        ).map((row) => decodeText(row.address));
      case "outboxEntry": {
        const [row] = await rows<OutboxRow>(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE key = $1`, [
          encodeText(read.key),
        ]);
        return row && outboxFromRow(row);
      }
    }
  }
  switch (read.method) {
    case "promisesInBranch":
      return (
        await rows<PromiseRow>(`SELECT ${PROMISE_COLUMNS} FROM promises WHERE branch = $1 ORDER BY id`, [
          encodeText(read.args[0] as string),
        ])
      ).map(promiseFromRow);
    case "searchPromises": {
      const query = read.args[0] as PromiseQuery;
      const where = new Where();
      if (query.idPrefix !== undefined) where.add((p) => `starts_with(id, ${p})`, query.idPrefix);
      if (query.states !== undefined) where.add((p) => `state = ANY(${p}::text[])`, query.states);
      if (query.tags !== undefined)
        where.add((p) => `tags_index @> ${p}::jsonb`, encodedTagsJson(query.tags));
      if (query.after !== undefined) where.add((p) => `id > ${p}`, query.after);
      const limit = where.limit(query.limit);
      return (
        await rows<PromiseRow>(
          `SELECT ${PROMISE_COLUMNS} FROM promises ${where} ORDER BY id LIMIT ${limit}`,
          where.parameters,
        )
      ).map(promiseFromRow);
    }
    case "searchTasks": {
      const query = read.args[0] as TaskQuery;
      const where = new Where();
      if (query.states !== undefined) where.add((p) => `state = ANY(${p}::text[])`, query.states);
      if (query.after !== undefined) where.add((p) => `id > ${p}`, query.after);
      const limit = where.limit(query.limit);
      return (
        await rows<TaskRow>(
          `SELECT ${TASK_COLUMNS} FROM tasks ${where} ORDER BY id LIMIT ${limit}`,
          where.parameters,
        )
      ).map(taskFromRow);
    }
    case "searchSchedules": {
      const query = read.args[0] as ScheduleQuery;
      const where = new Where();
      if (query.tags !== undefined)
        where.add((p) => `promise_tags_index @> ${p}::jsonb`, encodedTagsJson(query.tags));
      if (query.after !== undefined) where.add((p) => `id > ${p}`, query.after);
      const limit = where.limit(query.limit);
      return (
        await rows<ScheduleRow>(
          `SELECT ${SCHEDULE_COLUMNS} FROM schedules ${where} ORDER BY id LIMIT ${limit}`,
          where.parameters,
        )
      ).map(scheduleFromRow);
    }
    case "due": {
      const [now, limit] = read.args as [number, number];
      assertLimit(limit);
      const ids = async (sql: string) => (await rows<{ id: string }>(sql, [now, limit])).map((row) => row.id);
      const due: DueWork = {
        promiseIds: await ids(
          "SELECT id FROM promises WHERE armed AND timeout_at <= $1 ORDER BY timeout_at, id LIMIT $2",
        ),
        taskIds: await ids("SELECT id FROM tasks WHERE due_at <= $1 ORDER BY due_at, id LIMIT $2"),
        scheduleIds: await ids(
          "SELECT id FROM schedules WHERE next_run_at <= $1 ORDER BY next_run_at, id LIMIT $2",
        ),
      };
      return due;
    }
    case "nextDueAt": {
      const [row] = await rows<{ at: number | null }>(
        "SELECT min(at) AS at FROM (" +
          "SELECT min(timeout_at) AS at FROM promises WHERE armed " +
          "UNION ALL SELECT min(due_at) FROM tasks WHERE due_at IS NOT NULL " +
          "UNION ALL SELECT min(next_run_at) FROM schedules) AS deadlines",
        [],
      );
      return row?.at ?? undefined;
    }
    case "outbox": {
      const query = read.args[0] as OutboxQuery;
      const where = new Where();
      if (query.addressPrefixes !== undefined)
        where.add(
          (p) => `EXISTS (SELECT 1 FROM unnest(${p}::text[]) AS prefix WHERE starts_with(address, prefix))`,
          query.addressPrefixes.map(encodeText),
        );
      if (query.after !== undefined) where.add((p) => `key > ${p}`, encodeText(query.after));
      const limit = where.limit(query.limit);
      return (
        await rows<OutboxRow>(
          `SELECT ${OUTBOX_COLUMNS} FROM outbox ${where} ORDER BY key LIMIT ${limit}`,
          where.parameters,
        )
      ).map(outboxFromRow);
    }
    case "allCallbacks":
      return rows<{ awaited: string; awaiter: string }>(
        "SELECT awaited, awaiter FROM callbacks ORDER BY awaited, awaiter",
        [],
      );
    case "settledPromises": {
      const query = read.args[0] as SettledQuery;
      const where = new Where();
      where.add((p) => `settled_at IS NOT NULL AND settled_at < ${p}`, query.before);
      if (query.after !== undefined) {
        const { settledAt, id } = query.after;
        where.add((p) => `settled_at >= ${p}`, settledAt);
        // The parameter just added is the settledAt bound; the row comparison reuses it.
        const settledAtParameter = `$${where.parameters.length}`;
        where.add((p) => `(settled_at, id) > (${settledAtParameter}::bigint, ${p})`, id);
      }
      const limit = where.limit(query.limit);
      return (
        await rows<PromiseRow>(
          `SELECT ${PROMISE_COLUMNS} FROM promises ${where} ORDER BY settled_at, id LIMIT ${limit}`,
          where.parameters,
        )
      ).map(promiseFromRow);
    }
    case "promisesById":
      return (
        await rows<PromiseRow>(
          `SELECT ${PROMISE_COLUMNS} FROM promises WHERE id = ANY($1::text[]) ORDER BY id`,
          [read.args[0] as string[]],
        )
      ).map(promiseFromRow);
    case "tasksById":
      return (
        await rows<TaskRow>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = ANY($1::text[]) ORDER BY id`, [
          read.args[0] as string[],
        ])
      ).map(taskFromRow);
    case "callbacksByAwaiter":
      return rows<{ awaited: string; awaiter: string }>(
        "SELECT awaited, awaiter FROM callbacks WHERE awaiter = ANY($1::text[]) ORDER BY awaited, awaiter",
        [read.args[0] as string[]],
      );
    case "allListeners":
      return (
        await rows<{ awaited: string; address: string }>(
          "SELECT awaited, address FROM listeners ORDER BY awaited, address",
          [],
        )
      ).map((row) => ({ awaited: row.awaited, address: decodeText(row.address) }));
  }
}

/** `count(*)` is a bigint, which pg returns as text. */
function countRows(rows: readonly { state: string; n: string }[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const row of rows) counts[row.state] = Number(row.n);
  return counts;
}
