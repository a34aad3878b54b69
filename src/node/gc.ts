/**
 * `pledge gc`'s composition root: open a store from its URL directly (as `serve`
 * does, migrating it at open), run the retention loop (server/retention.ts) on
 * it once with the real clock, close it. The choice of what goes is the core's
 * (core/retention.ts).
 *
 * A SQLite file has one owner (INTERFACES.md, Stores): opening one that a running
 * server owns fails with the store's own "owned by process …" error, and nothing
 * is deleted; stop that server, or let it retain (`--retain`). A SQLite path that
 * does not exist is refused rather than created. `memory` is refused: a fresh
 * memory store holds nothing to collect.
 *
 * Invariants:
 *  N1  The store is closed on every path out, so a SQLite file's lock is released.
 */
import fs from "node:fs";
import { type Clock, systemClock } from "../lib/clock.js";
import { type RetentionTotals, runRetention } from "../server/retention.js";
import { openStore, parseStoreUrl } from "./open-store.js";

export interface CollectGarbageOptions {
  /** Store URL: `sqlite:<path>` (or a bare path) or `postgres://…`. */
  store: string;
  /** Settled promises with `settledAt` strictly before this instant go. */
  settledBefore: number;
  /** Promises examined per transaction (default the core's `COLLECT_LIMIT`). */
  limit?: number;
  /** Called after each committed batch with the totals so far. */
  onBatch?: (totals: RetentionTotals) => void;
  clock?: Clock;
}

/** The store cannot be collected as named (memory, a missing file); nothing was opened. */
export class GcStoreError extends Error {
  override name = "GcStoreError";
  constructor(
    message: string,
    /** True when the name itself is wrong for gc (memory), false when nothing is there. */
    readonly usage: boolean,
  ) {
    super(message);
  }
}

export async function collectGarbage(options: CollectGarbageOptions): Promise<RetentionTotals> {
  const location = parseStoreUrl(options.store);
  if (location.kind === "memory")
    throw new GcStoreError(
      "memory holds nothing between processes, so there is nothing to collect; name a sqlite:<path> or postgres://… store",
      true,
    );
  if (location.kind === "sqlite" && location.path !== ":memory:" && !fs.existsSync(location.path))
    throw new GcStoreError(
      `sqlite:${location.path} does not exist (nothing to collect, and gc creates no file)`,
      false,
    );
  const clock = options.clock ?? systemClock;
  const store = await openStore(options.store);
  try {
    return await runRetention((work) => store.transaction(work), {
      settledBefore: options.settledBefore,
      now: () => clock.now(),
      ...(options.limit !== undefined && { limit: options.limit }),
      ...(options.onBatch !== undefined && { onBatch: options.onBatch }),
    });
  } finally {
    await store.close(); // N1
  }
}
