/**
 * `pledge migrate`'s composition root: read a store's schema version, open the
 * store (which applies the numbered migrations, exactly as `serve` does at
 * start: under SQLite's exclusive lock or PostgreSQL's advisory lock), close it,
 * and answer the versions before and after. The migrations themselves and the
 * refusal of a schema newer than the build belong to the stores
 * (store/sqlite/sqlite-store.ts, store/postgres/postgres-store.ts).
 *
 * The version before is read just ahead of the opening transaction, outside it;
 * another replica migrating in between can make it look older than it was, never
 * newer. A SQLite file that a running server owns is refused by the store's own
 * "owned by process …" error; a missing file is created (migrating from 0), as
 * `serve` would. `memory` is refused: nothing of it outlives the process.
 *
 * Invariants:
 *  N1  The store (and the probe's connection) is closed on every path out.
 *  N2  `to` is the opened store's own schema version, never a count made here.
 */
import fs from "node:fs";
import Database from "better-sqlite3";
import { openStore, parseStoreUrl } from "./open-store.js";

export interface MigrateResult {
  /** The store, without a password. */
  store: string;
  /** The schema version found before migrating (0: no Pledge schema yet; null: could not be read). */
  from: number | null;
  /** The schema version after migrating: the newest this build knows. */
  to: number;
}

/** The store cannot be migrated as named (memory); nothing was opened. */
export class MigrateUsageError extends Error {
  override name = "MigrateUsageError";
}

export async function migrateStore(url: string): Promise<MigrateResult> {
  const location = parseStoreUrl(url);
  if (location.kind === "memory")
    throw new MigrateUsageError(
      "memory holds nothing between processes, so there is nothing to migrate; name a sqlite:<path> or postgres://… store",
    );
  const from =
    location.kind === "sqlite" ? sqliteVersion(location.path) : await postgresVersion(location.url);
  const store = await openStore(url);
  try {
    const to = (store as { schemaVersion?: unknown }).schemaVersion;
    if (typeof to !== "number") throw new Error(`${store.description} does not report its schema version`);
    const schema = location.kind === "postgres" ? new URL(location.url).searchParams.get("schema") : null;
    const name = schema === null ? store.description : `${store.description} (schema ${schema})`;
    return { store: name, from: from ?? null, to }; // N2
  } finally {
    await store.close(); // N1
  }
}

/**
 * The version recorded in a SQLite file, 0 when it has no Pledge schema or does
 * not exist; undefined when the file cannot be read now (a live owner holds its
 * lock): opening the store then reports why.
 */
function sqliteVersion(path: string): number | undefined {
  if (path === ":memory:" || !fs.existsSync(path)) return 0;
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true, timeout: 250 });
    // The stores' own mode: no shared-memory index left behind by this read.
    db.pragma("locking_mode = EXCLUSIVE");
    const table = db.prepare(
      "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pledge_migrations'",
    );
    if (table.get() === undefined) return 0;
    const version = db.prepare("SELECT max(version) FROM pledge_migrations").pluck().get();
    return typeof version === "number" ? version : 0;
  } catch {
    return undefined;
  } finally {
    db?.close();
  }
}

/**
 * The version recorded in a PostgreSQL database (in `?schema=`'s schema when
 * given, else on the search path), 0 when it has no Pledge schema yet; undefined
 * when it cannot be read (no `pg`, no server): opening the store then says why.
 */
async function postgresVersion(url: string): Promise<number | undefined> {
  let pg: typeof import("pg").default;
  try {
    pg = (await import("pg")).default;
  } catch {
    return undefined;
  }
  const parsed = new URL(url);
  const schema = parsed.searchParams.get("schema");
  parsed.searchParams.delete("schema");
  const client = new pg.Client({ connectionString: parsed.toString(), connectionTimeoutMillis: 5000 });
  client.on("error", () => {});
  try {
    await client.connect();
    const table = schema === null ? "pledge_migrations" : `${pg.escapeIdentifier(schema)}.pledge_migrations`;
    const found = await client.query<{ exists: boolean }>("SELECT to_regclass($1) IS NOT NULL AS exists", [
      table,
    ]);
    if (found.rows[0]?.exists !== true) return 0;
    const version = await client.query<{ version: number | null }>(
      `SELECT max(version)::int AS version FROM ${table}`,
    );
    return version.rows[0]?.version ?? 0;
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => {}); // N1
  }
}
