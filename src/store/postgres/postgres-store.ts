/**
 * The PostgreSQL store: `Store` on `pg`. It answers exactly as the memory store
 * does (the shared suite and the differential test hold it to that) and holds no
 * protocol logic: it reads rows, writes whole rows, and copies two derived values
 * at write time (`branch`, `due_at`; see migrations.ts).
 *
 * `pg` is asynchronous and `work` is synchronous, so a transaction runs by replay
 * (ADR 0001, addendum; the mechanics live in replay.ts): BEGIN ISOLATION LEVEL
 * REPEATABLE READ on one pooled client together with a prefetch of what the
 * batch's requests name (reads.ts), run `work` against the cache, and on a miss
 * flush the applies made before it and fetch the reads the pass missed (the first
 * and those it recorded speculating; point reads one query per kind), run `work`
 * again; when it completes, flush the rest (flush.ts) and COMMIT. Every row a
 * decision reads is locked as it is fetched (ADR 0003). A serialization failure
 * or deadlock (40001, 40P01) rolls back and runs the whole batch again, a bounded
 * number of times. Statements are pipelined and prepared (pipeline.ts), so a
 * batch that names what it reads takes two round trips: BEGIN with the prefetch,
 * then the flush with COMMIT and the next deadline.
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
import { AssertionError, assert } from "../../lib/assert.js";
import {
  type ReadHints,
  type StateCounts,
  type Store,
  StoreSchemaError,
  type StoreStats,
  type StoreTransaction,
  StoreUnavailableError,
} from "../store.js";
import { isConflict, isConnectionError, translateError } from "./errors.js";
import { flushQueries } from "./flush.js";
import { MIGRATIONS, type Migration } from "./migrations.js";
import { pipeline } from "./pipeline.js";
import { fetchReads, nextDueAtFetch, prefetch, storePrefetched } from "./reads.js";
import { ReadMiss, ReplayCache, ReplayPass } from "./replay.js";

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
const BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ";
/**
 * Sent once per connection, with its first batch. Statements are prepared once per
 * connection (pipeline.ts), and PostgreSQL keeps the generic plan it made then: on a
 * table still small, a sequential scan, kept as the table grows until autovacuum next
 * analyzes it. Every statement on the request path reads by an index, so sequential
 * scans are left to the statements that have no other way. (A session setting: behind
 * a pooler, session pooling, as named prepared statements need anyway.)
 */
const SESSION_SETUP = "SET enable_seqscan = off";
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
    // Statements sent back to back without waiting for each answer (pipeline.ts).
    pipeline: true,
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
  /** Pooled connections whose session has had `SESSION_SETUP`. */
  private readonly configured = new WeakSet<pg.PoolClient>();
  /** `nextDueAt` as read right after this store's latest commit (ReplayPass.nextDueAt). */
  private committedNextDueAt: { at: number | undefined } | undefined;

  constructor(
    private readonly pool: pg.Pool,
    readonly description: string,
    /** The schema version after opening. */
    readonly schemaVersion: number,
    private readonly conflictAttempts: number,
  ) {}

  async transaction<T>(work: (tx: StoreTransaction) => T, hints?: ReadHints): Promise<T> {
    if (this.closed) throw new Error(`${this.description} is closed`);
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.attempt(work, hints ?? { ids: [] });
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
  private async attempt<T>(work: (tx: StoreTransaction) => T, hints: ReadHints): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    this.active += 1;
    try {
      const cache = new ReplayCache();
      cache.committedNextDueAt = this.committedNextDueAt;
      try {
        // One round trip: BEGIN and what the batch names, locked (reads.ts, `prefetch`).
        // Inside this `try`: the prefetch may meet a conflict, and then the transaction
        // must be rolled back before its client goes back to the pool.
        const fetch = prefetch(hints);
        const setup = this.configured.has(client) ? [] : [{ text: SESSION_SETUP }];
        const answers = await pipeline(client, [...setup, { text: BEGIN }, ...fetch.queries]);
        this.configured.add(client);
        storePrefetched(cache, hints, fetch.answer(answers.slice(setup.length + 1)));
        const { result, nextDueAt } = await this.run(client, cache, work);
        this.committedNextDueAt = { at: nextDueAt };
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

  /**
   * Runs passes of `work` until one completes, each in one round trip: its applies
   * flushed together with the reads it missed, or, for the pass that completes,
   * with COMMIT and then the earliest deadline as committed, read in no
   * transaction of ours (ReplayPass.nextDueAt says why that is enough).
   */
  private async run<T>(
    client: pg.PoolClient,
    cache: ReplayCache,
    work: (tx: StoreTransaction) => T,
  ): Promise<{ result: T; nextDueAt: number | undefined }> {
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
      const writes = flushQueries(pass);
      if (pass.miss === undefined) {
        const due = nextDueAtFetch();
        const answers = await pipeline(client, [...writes, { text: "COMMIT" }, ...due.queries]);
        // A COMMIT of an aborted transaction answers ROLLBACK, not an error; P1 forbids reporting it committed.
        const committed = answers[writes.length];
        assert(committed?.command === "COMMIT", `the batch's COMMIT answered ${committed?.command}`);
        return { result: result as T, nextDueAt: due.answer(answers.slice(writes.length + 1)) };
      }
      const misses = pass.misses();
      const reads = fetchReads(misses);
      const answers = await pipeline(client, [...writes, ...reads.queries]);
      cache.markFlushed(pass);
      const values = reads.answer(answers.slice(writes.length));
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

/** `count(*)` is a bigint, which pg returns as text. */
function countRows(rows: readonly { state: string; n: string }[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const row of rows) counts[row.state] = Number(row.n);
  return counts;
}
