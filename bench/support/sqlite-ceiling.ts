/**
 * Ceilings without HTTP. The raw better-sqlite3 loop is what this disk and
 * driver can write at all: a fixed trivial table, the store's own pragmas
 * (WAL, `locking_mode = EXCLUSIVE`, the chosen `synchronous`), prepared
 * inserts, in transactions of 100 rows and of one row. The core loop is what
 * Pledge's protocol code costs on top: `step()` + `tx.apply()` inside
 * `store.transaction`, 100 `promise.create` requests per transaction, counting
 * the rows the changes write (promises + tasks). Between the two, the store
 * loop does the store's share alone: per row the read `promise.create` makes
 * (`tx.promise(id)`, a miss) and `tx.apply` of the record it would write, built
 * by hand, so raw ÷ store is the schema's cost and store ÷ core the core's.
 * Each loop runs for a fixed time.
 */
import path from "node:path";
import Database from "better-sqlite3";
import { emptyChanges, type StoredPromise } from "../../src/core/state.js";
import { type CoreConfig, step } from "../../src/core/step.js";
import type { PromiseCreateRequest } from "../../src/protocol/requests.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { Store } from "../../src/store/store.js";

export const ROWS_PER_TRANSACTION = 100;
const HOUR_MS = 60 * 60 * 1000;
const CORE_CONFIG: CoreConfig = { retryTimeoutMs: 5000 };
const VALUE = "eyJmdW5jIjoiYmVuY2giLCJhcmdzIjpbMV19";

export interface LoopOptions {
  /** A file that does not exist yet; removed by the caller. */
  file: string;
  sync: "full" | "normal";
  durationMs: number;
}

/** Rows per second (and transactions per second) of plain prepared inserts. */
export function rawInsertLoop(options: LoopOptions & { rowsPerTransaction: number }): {
  rowsPerSecond: number;
  transactionsPerSecond: number;
  synchronous: string;
} {
  const db = new Database(options.file);
  try {
    db.pragma("locking_mode = EXCLUSIVE");
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${options.sync === "normal" ? "NORMAL" : "FULL"}`);
    const synchronous = ["off", "normal", "full", "extra"][
      db.pragma("synchronous", { simple: true }) as number
    ];
    db.exec("CREATE TABLE bench (id INTEGER PRIMARY KEY, value TEXT NOT NULL)");
    const insert = db.prepare("INSERT INTO bench (id, value) VALUES (?, ?)");
    let next = 0;
    const write = db.transaction((count: number) => {
      for (let i = 0; i < count; i += 1) {
        next += 1;
        insert.run(next, VALUE);
      }
    });
    let transactions = 0;
    const started = performance.now();
    let elapsedMs = 0;
    while (elapsedMs < options.durationMs) {
      write(options.rowsPerTransaction);
      transactions += 1;
      elapsedMs = performance.now() - started;
    }
    const seconds = elapsedMs / 1000;
    return {
      rowsPerSecond: next / seconds,
      transactionsPerSecond: transactions / seconds,
      synchronous: synchronous ?? "unknown",
    };
  } finally {
    db.close();
  }
}

/** Rows per second that `step` + `apply` write on `store`, 100 promise.create per transaction. */
export async function coreLoop(store: Store, durationMs: number): Promise<{ rowsPerSecond: number }> {
  let rows = 0;
  let next = 0;
  const started = performance.now();
  let elapsedMs = 0;
  while (elapsedMs < durationMs) {
    const now = Date.now();
    rows += await store.transaction((tx) => {
      let written = 0;
      for (let i = 0; i < ROWS_PER_TRANSACTION; i += 1) {
        next += 1;
        const request: PromiseCreateRequest = {
          kind: "promise.create",
          corrId: String(next),
          data: { id: `core-${next}`, timeoutAt: now + HOUR_MS, param: { headers: {}, data: VALUE } },
        };
        const result = step(tx, request, now, CORE_CONFIG);
        if (result.response.status !== 200)
          throw new Error(`core promise.create answered ${result.response.status}`);
        tx.apply(result.changes);
        written += result.changes.promises.length + result.changes.tasks.length;
      }
      return written;
    });
    elapsedMs = performance.now() - started;
  }
  return { rowsPerSecond: rows / (elapsedMs / 1000) };
}

/** Rows per second of the store's own work for promise.create: one read (a miss) and one apply per row. */
export async function storeLoop(store: Store, durationMs: number): Promise<{ rowsPerSecond: number }> {
  let rows = 0;
  let next = 0;
  const started = performance.now();
  let elapsedMs = 0;
  while (elapsedMs < durationMs) {
    const now = Date.now();
    rows += await store.transaction((tx) => {
      for (let i = 0; i < ROWS_PER_TRANSACTION; i += 1) {
        next += 1;
        const id = `store-${next}`;
        if (tx.promise(id) !== undefined) throw new Error(`store loop: ${id} exists`);
        const promise: StoredPromise = {
          id,
          state: "pending",
          param: { headers: {}, data: VALUE },
          value: {},
          tags: {},
          timeoutAt: now + HOUR_MS,
          createdAt: now,
          armed: false,
        };
        const changes = emptyChanges();
        changes.promises.push(promise);
        tx.apply(changes);
      }
      return ROWS_PER_TRANSACTION;
    });
    elapsedMs = performance.now() - started;
  }
  return { rowsPerSecond: rows / (elapsedMs / 1000) };
}

export async function storeLoopOnSqlite(options: LoopOptions): Promise<{ rowsPerSecond: number }> {
  const store = openSqliteStore({ path: options.file, sync: options.sync });
  try {
    return await storeLoop(store, options.durationMs);
  } finally {
    await store.close();
  }
}

export async function coreLoopOnSqlite(options: LoopOptions): Promise<{ rowsPerSecond: number }> {
  const store = openSqliteStore({ path: options.file, sync: options.sync });
  try {
    return await coreLoop(store, options.durationMs);
  } finally {
    await store.close();
  }
}

export async function coreLoopInMemory(durationMs: number): Promise<{ rowsPerSecond: number }> {
  return coreLoop(new MemoryStore(), durationMs);
}

export function sqliteFiles(file: string): string[] {
  return [file, `${file}-wal`, `${file}-shm`, `${file}-journal`, `${file}.lock`].map((name) =>
    path.resolve(name),
  );
}
