/**
 * The SQLite store: `Store` on better-sqlite3. It answers exactly as the memory
 * store does (the shared suite holds it to that) and holds no protocol logic:
 * it reads rows, writes whole rows, and copies two derived values at write time
 * (`branch`, `due_at`; see migrations.ts) so that the timer and branch reads
 * walk an index.
 *
 * What it leaves to others: every decision about what to write (core/), when
 * to commit and how to batch steps into one transaction (server/), retrying a
 * `StoreUnavailableError` (server/). better-sqlite3 is synchronous, so a
 * transaction runs `work` whole between BEGIN IMMEDIATE and COMMIT and nothing
 * else can interleave; the promise `transaction` returns is already settled.
 *
 * Ownership (INTERFACES.md, Stores): a SQLite file has one owner process. The
 * owner holds SQLite's own exclusive lock on the file for as long as it is
 * open (`locking_mode = EXCLUSIVE`, taken by the opening transaction). The OS
 * drops that lock when the process dies, however it dies, so it is the mutex:
 * no stale-lock races, and a reused pid cannot hold a file hostage. Beside the
 * database, `<path>.lock` records `{ pid, url, startedAt }` for the error a
 * second opener gets; finding that file when we obtain the lock means the last
 * owner died without closing (`tookOverStaleLock`). The exclusive lock also
 * means other processes cannot read the file while it is owned; they go
 * through the owner's HTTP API instead.
 *
 * Ordering: SQLite's BINARY collation compares UTF-8 bytes, which orders by
 * code point; that is Pledge's one order (src/lib/order.ts), which the memory
 * store and the core use too. Strings reach the store well-formed: the edge
 * refuses lone surrogates, which UTF-8 cannot carry.
 *
 * Invariants:
 *  Q1  `work` runs inside exactly one open transaction, and the handle answers
 *      only while that transaction is open.
 *  Q2  An error of the unreachable kind (busy, I/O, full, …) rolls back the whole
 *      transaction and surfaces as `StoreUnavailableError`; nothing was applied.
 *  Q3  Every statement is prepared once, at open.
 */
import fs from "node:fs";
import Database from "better-sqlite3";
import type {
  Changes,
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
import { assert } from "../../lib/assert.js";
import { PROMISE_STATES, type PromiseState, TAG } from "../../protocol/records.js";
import { type ScheduleRow, scheduleFromRow, type TaskRow, taskFromRow } from "../rows.js";
import {
  type StateCounts,
  type Store,
  StoreSchemaError,
  type StoreStats,
  type StoreTransaction,
  StoreUnavailableError,
} from "../store.js";
import { MIGRATIONS, type Migration } from "./migrations.js";

export interface SqliteStoreOptions {
  /** A file path, or `:memory:` (the simulator's choice: no file, no lock). */
  path: string;
  /** `PRAGMA synchronous`: `full` (default) survives power loss; `normal` may lose the last commits. */
  sync?: "full" | "normal";
  /** Where the owner can be reached over HTTP, recorded in the lock file; see `setOwnerUrl`. */
  ownerUrl?: string;
}

/** A second process (or a second open in this one) tried to open a file that has a live owner. */
export class SqliteOwnedError extends Error {
  override name = "SqliteOwnedError";
  constructor(
    message: string,
    readonly ownerPid?: number,
    readonly ownerUrl?: string,
  ) {
    super(message);
  }
}

/** How long an opener waits for the file's lock before it reports the owner. */
const OWNERSHIP_WAIT_MS = 250;
/** How long a statement waits on a lock once we own the file (nobody else should hold one). */
const BUSY_TIMEOUT_MS = 5000;

/** Primary result codes that mean "not reachable right now", not "wrong" (Q2). */
const UNAVAILABLE_CODES = [
  "SQLITE_BUSY",
  "SQLITE_LOCKED",
  "SQLITE_IOERR",
  "SQLITE_FULL",
  "SQLITE_CANTOPEN",
  "SQLITE_PROTOCOL",
  "SQLITE_NOMEM",
  "SQLITE_READONLY",
];

export function openSqliteStore(options: SqliteStoreOptions): SqliteStore {
  return new SqliteStore(options);
}

export class SqliteStore implements Store {
  readonly description: string;
  readonly stats: StoreStats = { commits: 0 };
  /** The file's previous owner died (or exited) without closing it; its leases are dead. */
  readonly tookOverStaleLock: boolean;
  /** The schema version after opening (the newest migration this build knows). */
  readonly schemaVersion: number;
  private readonly db: Database.Database;
  private readonly statements: Statements;
  private readonly handle: SqliteTransaction;
  private readonly lockPath: string | undefined;
  private ownerUrl: string | undefined;
  private startedAt = "";
  private closed = false;

  constructor(options: SqliteStoreOptions) {
    const { path } = options;
    this.description = `sqlite:${path}`;
    this.ownerUrl = options.ownerUrl;
    const inMemory = path === ":memory:";
    this.lockPath = inMemory ? undefined : `${path}.lock`;

    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (error) {
      // better-sqlite3 reports a missing directory as a TypeError before SQLite runs.
      if (isSqliteError(error) || !(error instanceof Error))
        throw translateOpenError(error, this.description);
      throw new StoreUnavailableError(`${this.description} cannot be opened: ${error.message}`, {
        cause: error,
      });
    }
    try {
      db.pragma(`busy_timeout = ${OWNERSHIP_WAIT_MS}`);
      // Exclusive locking before the first read: no shared-memory index, and the
      // lock, once taken, is kept until close.
      if (!inMemory) db.pragma("locking_mode = EXCLUSIVE");
      if (!inMemory) {
        const mode = db.pragma("journal_mode = WAL", { simple: true });
        assert(mode === "wal", `journal_mode is ${String(mode)} after asking for wal`);
      }
      db.pragma(`synchronous = ${options.sync === "normal" ? "NORMAL" : "FULL"}`);
      db.pragma("temp_store = MEMORY");
      db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`); // trim the WAL after a checkpoint
      this.schemaVersion = applyMigrations(db, { migrations: MIGRATIONS, description: this.description }).to;
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      this.statements = prepareStatements(db);
    } catch (error) {
      db.close();
      if (this.lockPath !== undefined && isSqliteError(error) && isBusyCode(error.code)) {
        throw ownedError(path, this.lockPath);
      }
      throw translateOpenError(error, this.description);
    }
    this.db = db;
    this.handle = new SqliteTransaction(this.statements);

    if (this.lockPath === undefined) {
      this.tookOverStaleLock = false;
    } else {
      // We hold the database's exclusive lock, so any lock file left here is stale.
      this.tookOverStaleLock = fs.existsSync(this.lockPath);
      this.startedAt = new Date().toISOString();
      try {
        this.writeLockFile();
      } catch (error) {
        db.close();
        throw error;
      }
    }
  }

  /** Records the URL where the owner serves HTTP (after it binds), for the next opener's error. */
  setOwnerUrl(url: string): void {
    assert(!this.closed, "setOwnerUrl on a closed store");
    this.ownerUrl = url;
    if (this.lockPath !== undefined) this.writeLockFile();
  }

  /** `PRAGMA synchronous` as SQLite reports it now (benchmarks print it). */
  get synchronous(): "off" | "normal" | "full" | "extra" {
    const level = this.db.pragma("synchronous", { simple: true });
    const names = ["off", "normal", "full", "extra"] as const;
    const name = typeof level === "number" ? names[level] : undefined;
    assert(name !== undefined, `PRAGMA synchronous answered ${String(level)}`);
    return name;
  }

  async transaction<T>(work: (tx: StoreTransaction) => T): Promise<T> {
    if (this.closed) throw new Error(`${this.description} is closed`);
    assert(!this.handle.active, "store.transaction called from inside another transaction's work");
    const { begin, commit } = this.statements;
    let result: T;
    try {
      begin.run();
      this.handle.active = true;
      result = work(this.handle);
      assert(!isThenable(result), "transaction work returned a promise; work must be synchronous");
      commit.run();
    } catch (error) {
      this.rollback();
      throw translateError(error, this.description);
    } finally {
      this.handle.active = false;
    }
    this.stats.commits += 1;
    return result;
  }

  async ping(): Promise<void> {
    if (this.closed) throw new StoreUnavailableError(`${this.description} is closed`);
    try {
      this.statements.ping.get();
    } catch (error) {
      throw translateError(error, this.description);
    }
  }

  async countByState(): Promise<StateCounts> {
    if (this.closed) throw new StoreUnavailableError(`${this.description} is closed`);
    try {
      return {
        promises: countRows(this.statements.countPromises.all()),
        tasks: countRows(this.statements.countTasks.all()),
      };
    } catch (error) {
      throw translateError(error, this.description);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Remove the lock file while we still hold the database lock, so we can never
    // delete the file of an owner that came after us.
    try {
      if (this.lockPath !== undefined) fs.rmSync(this.lockPath, { force: true });
    } finally {
      this.db.close();
    }
  }

  private rollback(): void {
    if (!this.db.inTransaction) return; // SQLite already rolled back (some I/O errors do).
    try {
      this.statements.rollback.run();
    } catch {
      // The connection is unusable; the next BEGIN reports why. The original error wins.
    }
  }

  private writeLockFile(): void {
    assert(this.lockPath !== undefined, "lock file of an in-memory store");
    const owner: LockFile =
      this.ownerUrl === undefined
        ? { pid: process.pid, startedAt: this.startedAt }
        : { pid: process.pid, url: this.ownerUrl, startedAt: this.startedAt };
    // Write then rename, so a reader never sees half a file.
    const temporary = `${this.lockPath}.${process.pid}.tmp`;
    fs.writeFileSync(temporary, `${JSON.stringify(owner)}\n`);
    fs.renameSync(temporary, this.lockPath);
  }
}

interface LockFile {
  pid: number;
  url?: string;
  startedAt: string;
}

function readLockFile(lockPath: string): LockFile | undefined {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(lockPath, "utf8"));
    if (typeof parsed !== "object" || parsed === null) return undefined;
    const { pid, url, startedAt } = parsed as Record<string, unknown>;
    if (typeof pid !== "number" || !Number.isInteger(pid) || pid <= 0) return undefined;
    const owner: LockFile = { pid, startedAt: typeof startedAt === "string" ? startedAt : "" };
    if (typeof url === "string") owner.url = url;
    return owner;
  } catch {
    return undefined; // absent, half-written by hand, or not ours
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"; // alive, but not ours to signal
  }
}

function ownedError(path: string, lockPath: string): SqliteOwnedError {
  const owner = readLockFile(lockPath);
  if (owner === undefined || !isAlive(owner.pid)) {
    return new SqliteOwnedError(
      `sqlite:${path} is in use by another process that did not record itself in ${lockPath}; stop it and retry`,
    );
  }
  const who = owner.pid === process.pid ? `process ${owner.pid} (this process)` : `process ${owner.pid}`;
  if (owner.url === undefined) {
    return new SqliteOwnedError(
      `sqlite:${path} is owned by ${who}, which serves no HTTP; stop it, or restart it serving HTTP (pledge serve, or the listen option) and point your client at its URL`,
      owner.pid,
    );
  }
  return new SqliteOwnedError(
    `sqlite:${path} is owned by ${who}, reachable at ${owner.url}; stop it or point your client at that URL (pledge … --url ${owner.url})`,
    owner.pid,
    owner.url,
  );
}

/** better-sqlite3's error class (its type declarations name only the constructor). */
type SqliteError = InstanceType<typeof Database.SqliteError>;

function isSqliteError(error: unknown): error is SqliteError {
  return error instanceof Database.SqliteError;
}

function isBusyCode(code: string): boolean {
  return code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED");
}

function isThenable(value: unknown): boolean {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

function countRows(rows: unknown[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const row of rows as { state: string; n: number }[]) counts[row.state] = row.n;
  return counts;
}

/** Q2: unreachable-kind SQLite errors become `StoreUnavailableError`; anything else passes through. */
function translateError(error: unknown, description: string): unknown {
  if (!isSqliteError(error)) return error;
  const code = error.code;
  if (!UNAVAILABLE_CODES.some((prefix) => code === prefix || code.startsWith(`${prefix}_`))) return error;
  return new StoreUnavailableError(`${description}: ${error.message} (${code})`, { cause: error });
}

function translateOpenError(error: unknown, description: string): unknown {
  if (isSqliteError(error) && (error.code === "SQLITE_NOTADB" || error.code.startsWith("SQLITE_CORRUPT"))) {
    return new StoreSchemaError(`${description} is not a usable SQLite database: ${error.message}`, {
      cause: error,
    });
  }
  return translateError(error, description);
}

/**
 * Brings `db` to the newest of `migrations`, in one exclusive transaction (M2),
 * and returns the versions before and after. Refuses a database whose version
 * is newer than the newest migration given. Exported for the migration tests.
 */
export function applyMigrations(
  db: Database.Database,
  options: { migrations: readonly Migration[]; description: string },
): { from: number; to: number } {
  const { migrations, description } = options;
  migrations.forEach((migration, index) => {
    assert(migration.version === index + 1, `migration ${migration.name} has version ${migration.version}`);
  });
  const newest = migrations.length;
  db.exec("BEGIN EXCLUSIVE");
  try {
    db.exec(
      "CREATE TABLE IF NOT EXISTS pledge_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL)",
    );
    const current = db.prepare("SELECT max(version) FROM pledge_migrations").pluck().get();
    const from = typeof current === "number" ? current : 0;
    if (from > newest) {
      throw new StoreSchemaError(
        `${description} has schema version ${from}, but this build of Pledge knows versions up to ${newest}; upgrade Pledge to open it`,
      );
    }
    const record = db.prepare("INSERT INTO pledge_migrations (version, name) VALUES (?, ?)");
    for (const migration of migrations.slice(from)) {
      try {
        db.exec(migration.sql);
      } catch (error) {
        if (isSqliteError(error) && !isBusyCode(error.code)) {
          throw new StoreSchemaError(
            `${description}: migration ${migration.version} (${migration.name}) failed: ${error.message}`,
            { cause: error },
          );
        }
        throw error;
      }
      record.run(migration.version, migration.name);
    }
    db.exec("COMMIT");
    return { from, to: Math.max(from, newest) };
  } catch (error) {
    if (db.inTransaction) db.exec("ROLLBACK");
    throw error;
  }
}

// ---------------------------------------------------------------------------
// Rows and statements

interface PromiseRow {
  id: string;
  state: string;
  param: string;
  value: string;
  tags: string;
  timeout_at: number;
  created_at: number;
  settled_at: number | null;
  armed: number;
}

interface OutboxRow {
  key: string;
  address: string;
  message: string;
  created_at: number;
}

type Statement<Result = unknown> = Database.Statement<unknown[], Result>;

const PROMISE_COLUMNS = "id, state, param, value, tags, timeout_at, created_at, settled_at, armed";
const TASK_COLUMNS = "id, state, version, resume_ids, pid, ttl, expires_at, retry_at";
const SCHEDULE_COLUMNS =
  "id, cron, promise_id, promise_timeout, promise_param, promise_tags, created_at, next_run_at, last_run_at";

/** Every tag in the JSON object bound as `@tags` is present, with that value, in `column`. */
const hasTagsSql = (column: string) =>
  `NOT EXISTS (SELECT 1 FROM json_each(@tags) AS wanted WHERE NOT EXISTS (` +
  `SELECT 1 FROM json_each(${column}) AS tag WHERE tag.key = wanted.key AND tag.value = wanted.value))`;

/** A search statement per combination of present filters, keyed by a bit mask. */
function searchVariants<Result>(
  db: Database.Database,
  filters: readonly string[],
  build: (present: (filter: string) => boolean) => string,
): Statement<Result>[] {
  const variants: Statement<Result>[] = [];
  for (let mask = 0; mask < 1 << filters.length; mask += 1) {
    const present = (filter: string) => {
      const bit = filters.indexOf(filter);
      assert(bit >= 0, `unknown search filter ${filter}`);
      return (mask & (1 << bit)) !== 0;
    };
    variants.push(db.prepare<unknown[], Result>(build(present)));
  }
  return variants;
}

function whereClause(conditions: (string | false)[]): string {
  const present = conditions.filter((condition): condition is string => condition !== false);
  return present.length === 0 ? "" : `WHERE ${present.join(" AND ")}`;
}

function prepareStatements(db: Database.Database) {
  const promiseFilters = ["prefix", "states", "tags", "after"] as const;
  const taskFilters = ["states", "after"] as const;
  const scheduleFilters = ["tags", "after"] as const;
  const outboxFilters = ["prefix", "prefixes", "after"] as const;
  return {
    begin: db.prepare("BEGIN IMMEDIATE"),
    commit: db.prepare("COMMIT"),
    rollback: db.prepare("ROLLBACK"),
    ping: db.prepare("SELECT 1"),
    countPromises: db.prepare("SELECT state, count(*) AS n FROM promises GROUP BY state"),
    countTasks: db.prepare("SELECT state, count(*) AS n FROM tasks GROUP BY state"),

    promise: db.prepare<[string], PromiseRow>(`SELECT ${PROMISE_COLUMNS} FROM promises WHERE id = ?`),
    task: db.prepare<[string], TaskRow>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = ?`),
    schedule: db.prepare<[string], ScheduleRow>(`SELECT ${SCHEDULE_COLUMNS} FROM schedules WHERE id = ?`),
    callbacks: db
      .prepare<[string], string>("SELECT awaiter FROM callbacks WHERE awaited = ? ORDER BY awaiter")
      .pluck(),
    listeners: db
      .prepare<[string], string>("SELECT address FROM listeners WHERE awaited = ? ORDER BY address")
      .pluck(),
    promisesInBranch: db.prepare<[string], PromiseRow>(
      `SELECT ${PROMISE_COLUMNS} FROM promises WHERE branch = ? ORDER BY id`,
    ),
    searchPromises: searchVariants<PromiseRow>(
      db,
      promiseFilters,
      (has) =>
        `SELECT ${PROMISE_COLUMNS} FROM promises ${whereClause([
          has("prefix") && "id >= @prefix AND id < @upper AND substr(id, 1, length(@prefix)) = @prefix",
          has("states") && "state IN (SELECT value FROM json_each(@states))",
          has("tags") && hasTagsSql("promises.tags"),
          has("after") && "id > @after",
        ])} ORDER BY id LIMIT @limit`,
    ),
    searchTasks: searchVariants<TaskRow>(
      db,
      taskFilters,
      (has) =>
        `SELECT ${TASK_COLUMNS} FROM tasks ${whereClause([
          has("states") && "state IN (SELECT value FROM json_each(@states))",
          has("after") && "id > @after",
        ])} ORDER BY id LIMIT @limit`,
    ),
    searchSchedules: searchVariants<ScheduleRow>(
      db,
      scheduleFilters,
      (has) =>
        `SELECT ${SCHEDULE_COLUMNS} FROM schedules ${whereClause([
          has("tags") && hasTagsSql("schedules.promise_tags"),
          has("after") && "id > @after",
        ])} ORDER BY id LIMIT @limit`,
    ),
    // One prefix walks the address index (then a top-N sort by key); several walk the keys.
    outbox: searchVariants<OutboxRow>(
      db,
      outboxFilters,
      (has) =>
        `SELECT key, address, message, created_at FROM outbox ${whereClause([
          has("prefix") &&
            "address >= @prefix AND address < @upper AND substr(address, 1, length(@prefix)) = @prefix",
          has("prefixes") &&
            "EXISTS (SELECT 1 FROM json_each(@prefixes) AS prefix " +
              "WHERE substr(outbox.address, 1, length(prefix.value)) = prefix.value)",
          has("after") && "key > @after",
        ])} ORDER BY key LIMIT @limit`,
    ),
    duePromises: db
      .prepare<[number, number], string>(
        "SELECT id FROM promises WHERE armed = 1 AND timeout_at <= ? ORDER BY timeout_at, id LIMIT ?",
      )
      .pluck(),
    dueTasks: db
      .prepare<[number, number], string>("SELECT id FROM tasks WHERE due_at <= ? ORDER BY due_at, id LIMIT ?")
      .pluck(),
    dueSchedules: db
      .prepare<[number, number], string>(
        "SELECT id FROM schedules WHERE next_run_at <= ? ORDER BY next_run_at, id LIMIT ?",
      )
      .pluck(),
    nextDueAt: db
      .prepare<[], number | null>(
        "SELECT min(at) FROM (" +
          "SELECT min(timeout_at) AS at FROM promises WHERE armed = 1 " +
          "UNION ALL SELECT min(due_at) FROM tasks WHERE due_at IS NOT NULL " +
          "UNION ALL SELECT min(next_run_at) FROM schedules)",
      )
      .pluck(),
    allCallbacks: db.prepare<[], { awaited: string; awaiter: string }>(
      "SELECT awaited, awaiter FROM callbacks ORDER BY awaited, awaiter",
    ),
    allListeners: db.prepare<[], { awaited: string; address: string }>(
      "SELECT awaited, address FROM listeners ORDER BY awaited, address",
    ),
    // settledPromises and callbacksByAwaiter walk indexes of migration 2 (promises_by_settled,
    // callbacks_by_awaiter); the id lists come as JSON arrays.
    settledPromises: searchVariants<PromiseRow>(
      db,
      ["after"],
      (has) =>
        `SELECT ${PROMISE_COLUMNS} FROM promises ${whereClause([
          "settled_at IS NOT NULL AND settled_at < @before",
          has("after") && "(settled_at, id) > (@afterSettledAt, @afterId)",
        ])} ORDER BY settled_at, id LIMIT @limit`,
    ),
    promisesById: db.prepare<[string], PromiseRow>(
      `SELECT ${PROMISE_COLUMNS} FROM promises WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`,
    ),
    tasksById: db.prepare<[string], TaskRow>(
      `SELECT ${TASK_COLUMNS} FROM tasks WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`,
    ),
    callbacksByAwaiter: db.prepare<[string], { awaited: string; awaiter: string }>(
      "SELECT awaited, awaiter FROM callbacks WHERE awaiter IN (SELECT value FROM json_each(?)) ORDER BY awaited, awaiter",
    ),

    reset: ["promises", "tasks", "schedules", "callbacks", "listeners", "outbox"].map((table) =>
      db.prepare(`DELETE FROM ${table}`),
    ),
    upsertPromise: db.prepare(
      "INSERT INTO promises (id, state, param, value, tags, branch, timeout_at, created_at, settled_at, armed) " +
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET " +
        "state = excluded.state, param = excluded.param, value = excluded.value, tags = excluded.tags, " +
        "branch = excluded.branch, timeout_at = excluded.timeout_at, created_at = excluded.created_at, " +
        "settled_at = excluded.settled_at, armed = excluded.armed",
    ),
    upsertTask: db.prepare(
      "INSERT INTO tasks (id, state, version, resume_ids, pid, ttl, expires_at, retry_at, due_at) " +
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET " +
        "state = excluded.state, version = excluded.version, resume_ids = excluded.resume_ids, " +
        "pid = excluded.pid, ttl = excluded.ttl, expires_at = excluded.expires_at, " +
        "retry_at = excluded.retry_at, due_at = excluded.due_at",
    ),
    upsertSchedule: db.prepare(
      "INSERT INTO schedules (id, cron, promise_id, promise_timeout, promise_param, promise_tags, created_at, " +
        "next_run_at, last_run_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET " +
        "cron = excluded.cron, promise_id = excluded.promise_id, promise_timeout = excluded.promise_timeout, " +
        "promise_param = excluded.promise_param, promise_tags = excluded.promise_tags, " +
        "created_at = excluded.created_at, next_run_at = excluded.next_run_at, last_run_at = excluded.last_run_at",
    ),
    deleteSchedule: db.prepare("DELETE FROM schedules WHERE id = ?"),
    deletePromise: db.prepare("DELETE FROM promises WHERE id = ?"),
    deleteTask: db.prepare("DELETE FROM tasks WHERE id = ?"),
    deleteCallbacks: db.prepare("DELETE FROM callbacks WHERE awaited = ?"),
    insertCallback: db.prepare("INSERT INTO callbacks (awaited, awaiter) VALUES (?, ?)"),
    deleteListeners: db.prepare("DELETE FROM listeners WHERE awaited = ?"),
    insertListener: db.prepare("INSERT INTO listeners (awaited, address) VALUES (?, ?)"),
    deleteOutbox: db.prepare("DELETE FROM outbox WHERE key = ?"),
    outboxEntry: db.prepare<[string], OutboxRow>(
      "SELECT key, address, message, created_at FROM outbox WHERE key = ?",
    ),
    upsertOutbox: db.prepare(
      "INSERT INTO outbox (key, address, message, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET " +
        "address = excluded.address, message = excluded.message, created_at = excluded.created_at",
    ),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

/** Index of the search variant for the filters present (bit i = filter i of the variant list). */
function variant(...present: boolean[]): number {
  return present.reduce((mask, on, bit) => (on ? mask | (1 << bit) : mask), 0);
}

/**
 * A string above every string that starts with `prefix`, in SQLite's order
 * (code points): the prefix with its last code point below U+10FFFF raised by
 * one. A BLOB when there is none (in SQLite every TEXT sorts below every BLOB).
 * It bounds the index range; the exact `substr` test in the query does the rest.
 */
export function prefixUpperBound(prefix: string): string | Buffer {
  const codePoints = Array.from(prefix, (character) => character.codePointAt(0) ?? 0);
  while (codePoints.length > 0) {
    const last = codePoints.pop() ?? 0;
    if (last < 0x10ffff) {
      const next = last + 1 === 0xd800 ? 0xe000 : last + 1; // skip the surrogate range
      return String.fromCodePoint(...codePoints, next);
    }
  }
  return Buffer.alloc(0);
}

function assertLimit(limit: number): void {
  assert(Number.isInteger(limit) && limit >= 0, `limit must be a non-negative integer, got ${limit}`);
}

const promiseStates: readonly string[] = PROMISE_STATES;

function promiseFromRow(row: PromiseRow): StoredPromise {
  assert(promiseStates.includes(row.state), `promise ${row.id} has state ${row.state}`);
  assert(row.armed === 0 || row.armed === 1, `promise ${row.id} has armed = ${row.armed}`);
  const promise: StoredPromise = {
    id: row.id,
    state: row.state as PromiseState,
    param: JSON.parse(row.param),
    value: JSON.parse(row.value),
    tags: JSON.parse(row.tags),
    timeoutAt: row.timeout_at,
    createdAt: row.created_at,
    armed: row.armed === 1,
  };
  if (row.settled_at !== null) promise.settledAt = row.settled_at;
  return promise;
}

function outboxFromRow(row: OutboxRow): OutboxEntry {
  return { key: row.key, address: row.address, message: JSON.parse(row.message), createdAt: row.created_at };
}

function assertDistinct(values: readonly string[], what: string): void {
  if (values.length > 1) assert(new Set(values).size === values.length, `${what} has duplicates`);
}

/** The handle `work` receives; one per store, answering only inside a transaction (Q1). */
class SqliteTransaction implements StoreTransaction {
  active = false;

  constructor(private readonly prepared: Statements) {}

  /** Q1: the statements, to a caller inside the transaction only. */
  private get statements(): Statements {
    assert(this.active, "transaction handle used outside its transaction");
    return this.prepared;
  }

  apply(changes: Changes): void {
    const s = this.statements;
    if (changes.reset) for (const statement of s.reset) statement.run();
    for (const promise of changes.promises) {
      const branch = promise.tags[TAG.branch];
      s.upsertPromise.run(
        promise.id,
        promise.state,
        JSON.stringify(promise.param),
        JSON.stringify(promise.value),
        JSON.stringify(promise.tags),
        branch ?? null,
        promise.timeoutAt,
        promise.createdAt,
        promise.settledAt ?? null,
        promise.armed ? 1 : 0,
      );
    }
    for (const task of changes.tasks) {
      s.upsertTask.run(
        task.id,
        task.state,
        task.version,
        JSON.stringify(task.resumeIds),
        task.pid ?? null,
        task.ttl ?? null,
        task.expiresAt ?? null,
        task.retryAt ?? null,
        task.retryAt ?? task.expiresAt ?? null,
      );
    }
    for (const id of changes.deletedPromises) s.deletePromise.run(id);
    for (const id of changes.deletedTasks) s.deleteTask.run(id);
    for (const schedule of changes.schedules) {
      s.upsertSchedule.run(
        schedule.id,
        schedule.cron,
        schedule.promiseId,
        schedule.promiseTimeout,
        JSON.stringify(schedule.promiseParam),
        JSON.stringify(schedule.promiseTags),
        schedule.createdAt,
        schedule.nextRunAt,
        schedule.lastRunAt ?? null,
      );
    }
    for (const id of changes.deletedSchedules) s.deleteSchedule.run(id);
    for (const [awaited, awaiters] of changes.callbacks) {
      assertDistinct(awaiters, `callback set of ${awaited}`);
      s.deleteCallbacks.run(awaited);
      for (const awaiter of awaiters) s.insertCallback.run(awaited, awaiter);
    }
    for (const [awaited, addresses] of changes.listeners) {
      assertDistinct(addresses, `listener set of ${awaited}`);
      s.deleteListeners.run(awaited);
      for (const address of addresses) s.insertListener.run(awaited, address);
    }
    for (const key of changes.deletedOutbox) s.deleteOutbox.run(key);
    for (const entry of changes.outbox) {
      s.upsertOutbox.run(entry.key, entry.address, JSON.stringify(entry.message), entry.createdAt);
    }
  }

  promise(id: string): StoredPromise | undefined {
    const row = this.statements.promise.get(id);
    return row && promiseFromRow(row);
  }

  task(id: string): StoredTask | undefined {
    const row = this.statements.task.get(id);
    return row && taskFromRow(row);
  }

  schedule(id: string): StoredSchedule | undefined {
    const row = this.statements.schedule.get(id);
    return row && scheduleFromRow(row);
  }

  callbacks(awaited: string): string[] {
    return this.statements.callbacks.all(awaited);
  }

  listeners(awaited: string): string[] {
    return this.statements.listeners.all(awaited);
  }

  promisesInBranch(branch: string): StoredPromise[] {
    return this.statements.promisesInBranch.all(branch).map(promiseFromRow);
  }

  searchPromises(query: PromiseQuery): StoredPromise[] {
    assertLimit(query.limit);
    const { idPrefix, states, tags, after } = query;
    const statement =
      this.statements.searchPromises[
        variant(idPrefix !== undefined, states !== undefined, tags !== undefined, after !== undefined)
      ];
    assert(statement !== undefined, "searchPromises variant");
    const parameters: Record<string, unknown> = { limit: query.limit };
    if (idPrefix !== undefined) {
      parameters.prefix = idPrefix;
      parameters.upper = prefixUpperBound(idPrefix);
    }
    if (states !== undefined) parameters.states = JSON.stringify(states);
    if (tags !== undefined) parameters.tags = JSON.stringify(tags);
    if (after !== undefined) parameters.after = after;
    return statement.all(parameters).map(promiseFromRow);
  }

  searchTasks(query: TaskQuery): StoredTask[] {
    assertLimit(query.limit);
    const { states, after } = query;
    const statement = this.statements.searchTasks[variant(states !== undefined, after !== undefined)];
    assert(statement !== undefined, "searchTasks variant");
    const parameters: Record<string, unknown> = { limit: query.limit };
    if (states !== undefined) parameters.states = JSON.stringify(states);
    if (after !== undefined) parameters.after = after;
    return statement.all(parameters).map(taskFromRow);
  }

  searchSchedules(query: ScheduleQuery): StoredSchedule[] {
    assertLimit(query.limit);
    const { tags, after } = query;
    const statement = this.statements.searchSchedules[variant(tags !== undefined, after !== undefined)];
    assert(statement !== undefined, "searchSchedules variant");
    const parameters: Record<string, unknown> = { limit: query.limit };
    if (tags !== undefined) parameters.tags = JSON.stringify(tags);
    if (after !== undefined) parameters.after = after;
    return statement.all(parameters).map(scheduleFromRow);
  }

  due(now: number, limit: number): DueWork {
    assertLimit(limit);
    const s = this.statements;
    return {
      promiseIds: s.duePromises.all(now, limit),
      taskIds: s.dueTasks.all(now, limit),
      scheduleIds: s.dueSchedules.all(now, limit),
    };
  }

  nextDueAt(): number | undefined {
    return this.statements.nextDueAt.get() ?? undefined;
  }

  outboxEntry(key: string): OutboxEntry | undefined {
    const row = this.statements.outboxEntry.get(key);
    return row === undefined ? undefined : outboxFromRow(row);
  }

  outbox(query: OutboxQuery): OutboxEntry[] {
    assertLimit(query.limit);
    const { addressPrefixes, after } = query;
    const [onlyPrefix, ...otherPrefixes] = addressPrefixes ?? [];
    const onePrefix = onlyPrefix !== undefined && otherPrefixes.length === 0;
    const statement =
      this.statements.outbox[
        variant(onePrefix, addressPrefixes !== undefined && !onePrefix, after !== undefined)
      ];
    assert(statement !== undefined, "outbox variant");
    const parameters: Record<string, unknown> = { limit: query.limit };
    if (onePrefix) {
      parameters.prefix = onlyPrefix;
      parameters.upper = prefixUpperBound(onlyPrefix);
    } else if (addressPrefixes !== undefined) {
      parameters.prefixes = JSON.stringify(addressPrefixes);
    }
    if (after !== undefined) parameters.after = after;
    return statement.all(parameters).map(outboxFromRow);
  }

  allCallbacks(): { awaited: string; awaiter: string }[] {
    return this.statements.allCallbacks.all();
  }

  allListeners(): { awaited: string; address: string }[] {
    return this.statements.allListeners.all();
  }

  settledPromises(query: SettledQuery): StoredPromise[] {
    assertLimit(query.limit);
    const { before, after } = query;
    const statement = this.statements.settledPromises[variant(after !== undefined)];
    assert(statement !== undefined, "settledPromises variant");
    const parameters: Record<string, unknown> = { before, limit: query.limit };
    if (after !== undefined) {
      parameters.afterSettledAt = after.settledAt;
      parameters.afterId = after.id;
    }
    return statement.all(parameters).map(promiseFromRow);
  }

  promisesById(ids: readonly string[]): StoredPromise[] {
    return this.statements.promisesById.all(JSON.stringify(ids)).map(promiseFromRow);
  }

  tasksById(ids: readonly string[]): StoredTask[] {
    return this.statements.tasksById.all(JSON.stringify(ids)).map(taskFromRow);
  }

  callbacksByAwaiter(awaiters: readonly string[]): { awaited: string; awaiter: string }[] {
    return this.statements.callbacksByAwaiter.all(JSON.stringify(awaiters));
  }
}
