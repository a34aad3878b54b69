/**
 * The retention loop: runs the core's `collect` (core/retention.ts) in bounded
 * batches, each in a transaction of its own, from a cursor, until a batch says
 * there is no more. The server runs it periodically through its processor
 * (`ServerShell`, `--retain`); `pledge gc` runs it once on a store it opened.
 * It owns the loop and the counting; the choice is the core's, the transaction
 * the caller's.
 *
 * Invariants:
 *  L1  One batch per transaction, so a write waits behind at most one short batch.
 *  L2  The cut-off is fixed for the whole run; `now` (the projection instant) is
 *      read afresh for each batch.
 *  L3  Counts add only what committed: a batch's counts are taken from the value
 *      its transaction returned.
 */
import { COLLECT_LIMIT, type CollectResult, collect } from "../core/retention.js";
import type { SettledCursor } from "../core/state.js";
import { assert } from "../lib/assert.js";
import type { StoreTransaction } from "../store/store.js";

/** Runs `work` in a transaction of its own and resolves to what it returned, once committed. */
export type RunAlone = <T>(work: (tx: StoreTransaction) => T) => Promise<T>;

export interface RetentionOptions {
  /** Settled promises with `settledAt` strictly before this instant go. */
  settledBefore: number;
  /** The instant each batch judges "pending" at (a parent's deadline, K4). */
  now: () => number;
  /** Promises examined per batch (default `COLLECT_LIMIT`). */
  limit?: number;
  /** Called after each committed batch with the totals so far (progress). */
  onBatch?: (totals: RetentionTotals) => void;
  /** Checked before each batch; true stops the run (a server closing or pausing). */
  stopped?: () => boolean;
}

export interface RetentionTotals {
  /** Promise records deleted. */
  promises: number;
  /** Task records deleted. */
  tasks: number;
  /** Settled promises examined and kept because something still needs them. */
  kept: number;
  /** Transactions committed. */
  batches: number;
}

export async function runRetention(runAlone: RunAlone, options: RetentionOptions): Promise<RetentionTotals> {
  const { settledBefore, limit = COLLECT_LIMIT } = options;
  assert(Number.isSafeInteger(settledBefore), "L2 the cut-off is an integer instant");
  const totals: RetentionTotals = { promises: 0, tasks: 0, kept: 0, batches: 0 };
  let after: SettledCursor | undefined;
  for (;;) {
    if (options.stopped?.() === true) return totals;
    const now = options.now();
    const cursor = after;
    const result: CollectResult = await runAlone((tx) => {
      const chosen = collect(
        tx,
        { settledBefore, limit, ...(cursor !== undefined && { after: cursor }) },
        now,
      );
      tx.apply(chosen.changes);
      return chosen;
    });
    // L3: counted after the commit; a store may have run the work more than once.
    totals.promises += result.changes.deletedPromises.length;
    totals.tasks += result.changes.deletedTasks.length;
    totals.kept += result.kept;
    totals.batches += 1;
    options.onBatch?.({ ...totals });
    if (!result.more) return totals;
    after = result.cursor;
  }
}

/** How often a server with `retainMs` looks for expired records: often enough for short periods, at most each minute. */
export function retentionIntervalMs(retainMs: number): number {
  return Math.min(60_000, Math.max(1_000, Math.floor(retainMs / 2)));
}
