/**
 * The server shell: it feeds requests and its own timers into the pure core,
 * commits through the group-commit processor, and hands committed messages to
 * delivery. It owns time (one `now` per request, P11), the background loops
 * (timers, outbox redelivery and expiry) and the debug switches. It knows
 * nothing of HTTP; `server/http` and the simulator both drive it.
 *
 * Invariants:
 *  H1  A message is delivered only after the batch that queued it committed.
 *  H2  Timers run from the store: after every commit the next due instant is
 *      re-read, and a periodic sweep repairs any missed firing (P5).
 *  H3  While debug mode is paused (`debug.start`), no sweep runs and nothing is
 *      delivered; messages stay visible in `debug.snap`.
 *  H4  Server events (`events`, `GET /events`) are described inside the item's
 *      transaction only when someone listens, and published after its commit
 *      (E1, E2 in `events.ts`).
 *  H5  Retention (`retainMs`) runs in the background, one bounded batch per
 *      transaction of its own (`alone`, like sweeps), never while paused; with no
 *      `retainMs` nothing is ever deleted.
 */

import { requestReads } from "../core/read-hints.js";
import { emptyChanges, type OutboxEntry } from "../core/state.js";
import { type CoreConfig, expireAllLeases, step, sweep } from "../core/step.js";
import { AssertionError, assert } from "../lib/assert.js";
import type { Clock, Timers } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import type { Request, Response } from "../protocol/requests.js";
import type { Store } from "../store/store.js";
import { addressesOf, type Connection, ConnectionRegistry, parseAddress } from "./delivery.js";
import { describeChanges, EventHub } from "./events.js";
import { ServerMetrics } from "./metrics.js";
import { type Defer, Processor } from "./processor.js";
import { type RetentionTotals, retentionIntervalMs, runRetention } from "./retention.js";

export interface ShellConfig extends CoreConfig {
  debug: boolean;
  /** How long an undelivered message waits in the outbox. */
  unblockTtlMs: number;
  /** Interval of the repair loop (sweep + outbox redelivery). */
  maintenanceIntervalMs?: number;
  /** Settled records older than this are deleted in the background (H5); undefined keeps them forever. */
  retainMs?: number;
  /** Interval of the retention loop; default `retentionIntervalMs(retainMs)`. */
  retentionIntervalMs?: number;
}

export interface ShellDependencies {
  store: Store;
  clock: Clock;
  timers: Timers;
  logger: Logger;
  /** Pushes a message to an `http(s)://` address; resolves true once the receiver accepted it. */
  push?: (url: string, message: OutboxEntry["message"]) => Promise<boolean>;
  /** Called with a violated invariant found on the server's own initiative; the process must not go on. */
  onFatal?: (error: Error) => void;
  /** How the processor waits for the next turn (default `setImmediate`; the simulator's own scheduler). */
  defer?: Defer;
}

const OUTBOX_PAGE = 500;
const MAX_SWEEP_DELAY_MS = 60_000;

export class ServerShell {
  readonly connections = new ConnectionRegistry();
  /** State changes for `GET /events` (H4). */
  readonly events = new EventHub();
  readonly processor: Processor;
  /** This server's Prometheus metrics (its own registry). */
  readonly metrics: ServerMetrics;
  private paused = false;
  /** Messages handed to a route whose removal from the outbox has not committed yet, by key. */
  private readonly handedOver = new Map<string, string>();
  private closed = false;
  private sweepTimer: unknown;
  private sweepAt: number | undefined;
  private maintenanceTimer: unknown;
  private sweeping = false;
  private retentionTimer: unknown;
  private retaining = false;
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly logger: Logger;

  constructor(
    deps: ShellDependencies,
    private readonly config: ShellConfig,
  ) {
    this.store = deps.store;
    this.clock = deps.clock;
    this.timers = deps.timers;
    this.logger = deps.logger;
    this.push = deps.push;
    this.onFatal = deps.onFatal;
    this.metrics = new ServerMetrics({
      connections: () => this.connections.size,
      outboxDepth: (cap) =>
        this.processor.submit({ run: (tx) => ({ result: tx.outbox({ limit: cap }).length, messages: [] }) }),
      countByState: deps.store.countByState?.bind(deps.store),
    });
    this.processor = new Processor(
      deps.store,
      {
        committed: (messages, nextDueAt) => this.committed(messages, nextDueAt),
        measured: (items, commitSeconds) => this.metrics.batchCommitted(items, commitSeconds),
      },
      deps.defer,
    );
  }

  private readonly push: ShellDependencies["push"];
  private readonly onFatal: ShellDependencies["onFatal"];

  /** Starts the background loops: an immediate sweep and redelivery of what a previous run left queued. */
  start(): void {
    this.scheduleMaintenance();
    void this.sweepNow();
    void this.redeliver();
    if (this.config.retainMs !== undefined) {
      void this.retainNow();
      this.scheduleRetention();
    }
  }

  /** Stops the loops and waits for work already queued, so the store can close after. */
  async close(): Promise<void> {
    this.closed = true;
    this.timers.clearTimeout(this.sweepTimer);
    this.timers.clearTimeout(this.maintenanceTimer);
    this.timers.clearTimeout(this.retentionTimer);
    await this.processor.idle();
  }

  /** Handles one validated request. `debugTime` overrides `now` (debug mode only). */
  async handle(request: Request, debugTime?: number): Promise<Response> {
    if (request.kind === "debug.start" || request.kind === "debug.stop") {
      assert(this.config.debug, "debug requests reach the shell only in debug mode");
      this.paused = request.kind === "debug.start";
      if (!this.paused) {
        void this.sweepNow();
        void this.redeliver();
      }
      return { status: 200, data: {} };
    }
    // `debug.tick(time)` is one request at `now = time` (Pledge's decisions).
    const now =
      request.kind === "debug.tick"
        ? request.data.time
        : this.config.debug && debugTime !== undefined
          ? debugTime
          : this.clock.now();
    const observed = this.events.observed; // H4: decided once, outside the transaction
    const { response, events } = await this.processor.submit({
      hints: requestReads(request),
      run: (tx) => {
        const result = step(tx, request, now, this.config);
        const events = observed ? describeChanges(tx, result.changes, now, request.kind) : [];
        tx.apply(result.changes);
        return { result: { response: result.response, events }, messages: result.messages };
      },
    });
    this.events.publish(events);
    return response;
  }

  /**
   * Ends every lease in the store now: an embedded process that reopens its own
   * file knows the previous owner, and so every holder, is gone (INTERFACES.md).
   */
  async expireAllLeases(): Promise<void> {
    for (;;) {
      const now = this.clock.now();
      const observed = this.events.observed;
      const { more, events } = await this.processor.submit({
        run: (tx) => {
          const result = expireAllLeases(tx, now, this.config);
          const events = observed ? describeChanges(tx, result.changes, now, "restart") : [];
          tx.apply(result.changes);
          return { result: { more: result.more, events }, messages: result.messages };
        },
      });
      this.events.publish(events);
      if (!more) return;
    }
  }

  /** Resolves when the store answers (`/ready`). */
  ready(): Promise<void> {
    return this.store.ping();
  }

  /** Registers a worker's SSE connection and sends it what already waits for it. */
  connect(connection: Connection): () => void {
    this.connections.add(connection);
    // Its own addresses, and every anycast of its group (one for an absent id falls back to it).
    void this.redeliver(addressesOf(connection));
    return () => this.connections.remove(connection);
  }

  private committed(messages: OutboxEntry[], nextDueAt: number | undefined): void {
    if (this.closed) return;
    this.deliver(messages);
    this.armSweep(nextDueAt);
  }

  /**
   * Hands messages to their routes; delivered ones leave the outbox in a later
   * batch. Until that removal commits, the same message is not handed over again
   * (a connection opening reads the outbox while a fresh commit is delivered).
   */
  private deliver(entries: OutboxEntry[]): void {
    if (this.paused || entries.length === 0) return;
    const delivered: { key: string; body: string }[] = [];
    for (const entry of entries) {
      const body = JSON.stringify(entry.message);
      if (this.handedOver.get(entry.key) === body) continue;
      const route = parseAddress(entry.address);
      if (route.kind === "poll") {
        if (!this.connections.deliver(route, entry.message)) continue;
        this.handedOver.set(entry.key, body);
        delivered.push({ key: entry.key, body });
      } else if (route.kind === "http" && this.push !== undefined) {
        // Pushed messages leave the outbox only once the receiver accepted them;
        // a failed push is tried again by the redelivery loop.
        this.handedOver.set(entry.key, body);
        this.push(route.url, entry.message).then(
          (accepted) => {
            if (accepted) this.removeFromOutbox([{ key: entry.key, body }]);
            else if (this.handedOver.get(entry.key) === body) this.handedOver.delete(entry.key);
          },
          () => {
            if (this.handedOver.get(entry.key) === body) this.handedOver.delete(entry.key);
          },
        );
      }
    }
    if (delivered.length > 0) this.removeFromOutbox(delivered);
  }

  /** Removes messages from the outbox unless a newer message replaced them meanwhile. */
  private removeFromOutbox(entries: { key: string; body: string }[]): void {
    this.processor
      .submit({
        hints: { ids: [], outboxKeys: entries.map(({ key }) => key) },
        run: (tx) => {
          const changes = emptyChanges();
          changes.deletedOutbox = entries
            .filter(({ key, body }) => {
              const stored = tx.outboxEntry(key);
              return stored !== undefined && JSON.stringify(stored.message) === body;
            })
            .map(({ key }) => key);
          tx.apply(changes);
          return { result: undefined, messages: [] };
        },
      })
      .catch((error: unknown) => this.logger.warn({ err: error }, "could not remove delivered messages"))
      .finally(() => {
        for (const { key, body } of entries)
          if (this.handedOver.get(key) === body) this.handedOver.delete(key);
      });
  }

  /** Sends queued messages that now have a route, and expires those that waited too long. */
  private async redeliver(addressPrefixes?: string[]): Promise<void> {
    if (this.paused || this.closed) return;
    const now = this.clock.now();
    let after: string | undefined;
    try {
      for (;;) {
        const page = await this.processor.submit({
          run: (tx) => ({
            result: tx.outbox({
              limit: OUTBOX_PAGE,
              ...(after !== undefined && { after }),
              ...(addressPrefixes !== undefined && { addressPrefixes }),
            }),
            messages: [],
          }),
        });
        const expired = page.filter((entry) => entry.createdAt + this.config.unblockTtlMs <= now);
        const live = page.filter((entry) => entry.createdAt + this.config.unblockTtlMs > now);
        this.deliver(
          addressPrefixes === undefined ? live : live.filter((e) => addressPrefixes.includes(e.address)),
        );
        if (expired.length > 0) {
          this.logger.debug({ count: expired.length }, "expired undelivered messages");
          this.removeFromOutbox(
            expired.map((entry) => ({ key: entry.key, body: JSON.stringify(entry.message) })),
          );
        }
        if (page.length < OUTBOX_PAGE) return;
        after = page[page.length - 1]?.key;
      }
    } catch (error) {
      this.logger.warn({ err: error }, "outbox redelivery failed; will retry");
    }
  }

  private armSweep(nextDueAt: number | undefined): void {
    if (this.paused || this.closed || nextDueAt === undefined) return;
    if (this.sweepAt !== undefined && this.sweepAt <= nextDueAt) return;
    this.timers.clearTimeout(this.sweepTimer);
    this.sweepAt = nextDueAt;
    // The repair loop sweeps every second anyway; a long delay would overflow setTimeout.
    const delay = Math.min(Math.max(0, nextDueAt - this.clock.now()), MAX_SWEEP_DELAY_MS);
    this.sweepTimer = this.timers.setTimeout(() => {
      this.sweepAt = undefined;
      void this.sweepNow();
    }, delay);
  }

  /** Fires every internal transition due now, in bounded steps until none is left. */
  private async sweepNow(): Promise<void> {
    if (this.paused || this.closed || this.sweeping) return;
    this.sweeping = true;
    try {
      for (;;) {
        const now = this.clock.now();
        const observed = this.events.observed;
        const { more, fired, events } = await this.processor.submit({
          alone: true,
          run: (tx) => {
            const result = sweep(tx, now, this.config);
            const events = observed ? describeChanges(tx, result.changes, now, "timer") : [];
            tx.apply(result.changes);
            const { promises, tasks, schedules } = result.changes;
            const fired = promises.length + tasks.length + schedules.length;
            return { result: { more: result.more, fired, events }, messages: result.messages };
          },
        });
        // Counted after the commit: a store may run a transaction's work more than once.
        this.metrics.timersChanged(fired);
        this.events.publish(events);
        if (!more || this.paused || this.closed) break;
      }
    } catch (error) {
      if (error instanceof AssertionError) this.fatal(error);
      else this.logger.warn({ err: error }, "sweep failed; will retry");
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Deletes settled records older than `retainMs` (H5), in bounded batches until
   * none is left; answers what it removed (undefined when it did not run).
   */
  async retainNow(): Promise<RetentionTotals | undefined> {
    const retainMs = this.config.retainMs;
    if (retainMs === undefined || this.paused || this.closed || this.retaining) return undefined;
    this.retaining = true;
    try {
      const totals = await runRetention(
        (work) => this.processor.submit({ alone: true, run: (tx) => ({ result: work(tx), messages: [] }) }),
        {
          settledBefore: this.clock.now() - retainMs,
          now: () => this.clock.now(),
          stopped: () => this.paused || this.closed,
        },
      );
      if (totals.promises > 0 || totals.tasks > 0)
        this.logger.info(
          { promises: totals.promises, tasks: totals.tasks, kept: totals.kept, batches: totals.batches },
          "retention removed settled records",
        );
      return totals;
    } catch (error) {
      if (error instanceof AssertionError) this.fatal(error);
      else this.logger.warn({ err: error }, "retention failed; will retry");
      return undefined;
    } finally {
      this.retaining = false;
    }
  }

  private scheduleRetention(): void {
    const retainMs = this.config.retainMs;
    if (this.closed || retainMs === undefined) return;
    this.retentionTimer = this.timers.setTimeout(() => {
      void this.retainNow();
      this.scheduleRetention();
    }, this.config.retentionIntervalMs ?? retentionIntervalMs(retainMs));
  }

  /** A violated invariant: stop everything; never keep sweeping on corrupt state. */
  private fatal(error: AssertionError): void {
    this.closed = true;
    this.logger.fatal({ err: error }, "invariant violated");
    if (this.onFatal === undefined) throw error;
    this.onFatal(error);
  }

  private scheduleMaintenance(): void {
    if (this.closed) return;
    this.maintenanceTimer = this.timers.setTimeout(() => {
      void this.sweepNow();
      void this.redeliver();
      this.scheduleMaintenance();
    }, this.config.maintenanceIntervalMs ?? 1000);
  }
}
