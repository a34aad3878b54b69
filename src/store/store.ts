/**
 * The storage boundary (ADR 0001). A store is dumb: it reads what a step asks for
 * and applies the changes a step returns, inside one transaction. All protocol
 * logic lives in `core/`; every store runs the same steps.
 *
 * `transaction(work)` runs `work` synchronously against a transaction handle and
 * commits when it returns. A store whose driver is asynchronous (pg) serves the
 * reads from a snapshot it loads first and may run `work` again, whole, after a
 * read miss or a serialization conflict, so `work` must be a function of what it
 * reads (steps are). A store that cannot be reached throws `StoreUnavailableError`;
 * nothing of that transaction was applied.
 */
import type { Changes, StateReader } from "../core/state.js";
import type { PromiseState, TaskState } from "../protocol/records.js";

export interface StoreTransaction extends StateReader {
  /** Applies one step's changes; later reads in this transaction see them. */
  apply(changes: Changes): void;
}

/**
 * What a transaction's steps will probably read: the promise (and task) ids its
 * requests name (core/read-hints.ts). A store that fetches before it runs `work`
 * may fetch these ahead; others ignore it. Never a contract: `work` reads what it reads.
 */
export interface ReadHints {
  /** Promise ids; tasks share their promise's id, so these name the tasks too. */
  ids: readonly string[];
  /** Of `ids`, those whose branch's promises are listed (`promisesInBranch`), by their branch tag or as a new root's id. */
  branchesOf?: readonly string[];
  /** Outbox entry keys (the delivery clean-up names the entries it removes). */
  outboxKeys?: readonly string[];
}

export interface StoreStats {
  /** Transactions committed since the store was opened. */
  commits: number;
}

/**
 * Records by their stored state (a pending promise past its timeout still counts
 * as pending until a request or the sweep touches it). States with no record are
 * absent. For `GET /metrics`, read when scraped, never per write.
 */
export interface StateCounts {
  promises: Partial<Record<PromiseState, number>>;
  tasks: Partial<Record<TaskState, number>>;
}

export interface Store {
  /** What this store is, for logs and `/ready`: `memory`, `sqlite:<path>`, … */
  readonly description: string;
  readonly stats: StoreStats;
  transaction<T>(work: (tx: StoreTransaction) => T, hints?: ReadHints): Promise<T>;
  /** Resolves when the store answers; rejects with `StoreUnavailableError` otherwise. */
  ping(): Promise<void>;
  /**
   * Promises and tasks by stored state: one indexed GROUP BY per table on SQL
   * stores. Optional so that wrappers (fault injection, tests) need not forward
   * it; without it `/metrics` reports no by-state gauges.
   */
  countByState?(): Promise<StateCounts>;
  close(): Promise<void>;
}

/** The store could not be reached or could not commit; the request may be retried (503). */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
}

/** The store's schema is newer than this build understands, or otherwise unusable. */
export class StoreSchemaError extends Error {
  override name = "StoreSchemaError";
}
