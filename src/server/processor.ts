/**
 * Group commit: every state change — client requests, sweeps, outbox clean-up —
 * goes through one queue, and everything queued when a batch starts shares one
 * store transaction and so one fsync. There is no batching delay: a batch starts
 * on the next turn of the event loop, and while it commits the next one fills.
 * No caller is answered before the batch that holds its write has committed.
 *
 * Invariants:
 *  G1  At most one batch is in flight; batches commit in submission order. (More in
 *      flight on PostgreSQL was measured: smaller batches, more CPU per item, slower.)
 *  G2  Within a batch, each step reads the store with every earlier step's
 *      changes applied (same transaction), so the batch is equivalent to running
 *      its items one by one.
 *  G3  If the transaction fails, every item of the batch fails and nothing of it
 *      was applied; no message of it is delivered.
 */

import { performance } from "node:perf_hooks";
import type { OutboxEntry } from "../core/state.js";
import { assert } from "../lib/assert.js";
import type { ReadHints, Store, StoreTransaction } from "../store/store.js";

export interface BatchItem<T> {
  /** Runs inside the transaction; applies its own changes through `tx.apply`. */
  run(tx: StoreTransaction): { result: T; messages: OutboxEntry[] };
  /**
   * Runs in a transaction of its own. The server's sweeps read whole ranges; on a
   * store shared by replicas they are the likeliest to conflict, and a batch that
   * fails fails every request in it.
   */
  alone?: boolean;
  /** What the item will probably read, passed on to the store. */
  hints?: ReadHints;
}

interface Queued {
  item: BatchItem<unknown>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

export interface BatchListener {
  /** Called after each durable commit with the messages its items queued and the next timer instant. */
  committed(messages: OutboxEntry[], nextDueAt: number | undefined): void;
  /** Called after each durable commit with its item count and the transaction's duration (metrics). */
  measured?(items: number, commitSeconds: number): void;
}

/** Runs a callback on a later turn of the event loop: `setImmediate`, or the simulator's scheduler. */
export type Defer = (callback: () => void) => void;

const nextTurn: Defer = (callback) => setImmediate(callback);

export class Processor {
  private queue: Queued[] = [];
  private running = false;
  private scheduled = false;
  readonly stats = { batches: 0, items: 0, largestBatch: 0 };

  constructor(
    private readonly store: Store,
    private readonly listener: BatchListener,
    private readonly defer: Defer = nextTurn,
  ) {}

  /** Resolves once nothing is queued or running (for a clean close). */
  async idle(): Promise<void> {
    while (this.running || this.scheduled || this.queue.length > 0) {
      await new Promise<void>((resolve) => this.defer(resolve));
    }
  }

  submit<T>(item: BatchItem<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ item, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    this.defer(() => {
      this.scheduled = false;
      void this.runBatch();
    });
  }

  private async runBatch(): Promise<void> {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    // Everything queued, up to the first item that runs alone (which goes by itself).
    const first = this.queue[0] as Queued;
    const split = first.item.alone ? 1 : this.queue.findIndex((queued) => queued.item.alone === true);
    const batch = split < 0 ? this.queue : this.queue.slice(0, split);
    this.queue = split < 0 ? [] : this.queue.slice(split);
    try {
      const startedMs = performance.now();
      const ids = new Set<string>();
      const branchesOf = new Set<string>();
      const outboxKeys = new Set<string>();
      for (const { item } of batch) {
        for (const id of item.hints?.ids ?? []) ids.add(id);
        for (const id of item.hints?.branchesOf ?? []) branchesOf.add(id);
        for (const key of item.hints?.outboxKeys ?? []) outboxKeys.add(key);
      }
      const { results, messages, nextDueAt } = await this.store.transaction(
        (tx) => {
          // A store may run this function again after a conflict: it must start afresh.
          const results: unknown[] = [];
          const messages: OutboxEntry[] = [];
          for (const queued of batch) {
            const outcome = queued.item.run(tx);
            results.push(outcome.result);
            messages.push(...outcome.messages);
          }
          return { results, messages, nextDueAt: tx.nextDueAt() };
        },
        { ids: [...ids], branchesOf: [...branchesOf], outboxKeys: [...outboxKeys] },
      );
      const commitSeconds = (performance.now() - startedMs) / 1000;
      assert(results.length === batch.length, "G1 one result per batch item");
      this.stats.batches += 1;
      this.stats.items += batch.length;
      this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
      this.listener.measured?.(batch.length, commitSeconds);
      for (const [index, queued] of batch.entries()) queued.resolve(results[index]);
      this.listener.committed(messages, nextDueAt);
    } catch (error) {
      for (const queued of batch) queued.reject(error);
    } finally {
      this.running = false;
      if (this.queue.length > 0) this.schedule();
    }
  }
}
