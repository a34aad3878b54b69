/**
 * How the PostgreSQL store runs a synchronous batch over an asynchronous driver
 * (ADR 0001, addendum): by replay. `work` runs against a `ReplayPass`, which
 * answers every `StateReader` call from what the store has fetched so far. A read
 * it cannot answer records a `Read`, and the store flushes the pass's applies made
 * before that first miss, fetches the read (the database then shows exactly the
 * missing step's view) and runs `work` again from the start.
 *
 * Speculation: a batch runs many steps, and stopping at the first miss would cost
 * one pass and one round trip per miss of the whole batch (quadratic in its size).
 * So after a first point miss the pass goes on speculatively: further point misses
 * are answered "absent" (as after a reset) and recorded, until a query read that
 * cannot be answered, `SPECULATIVE_MISSES_MOST` misses, or the end of `work`. The
 * store fetches every recorded point read in one go. Nothing speculative is kept:
 * applies after the first miss are neither flushed nor compared, errors thrown by
 * `work` after it are ignored, and its result is dropped. A point observation is
 * the database's value of a key the batch has not written, so fetching it early,
 * or needlessly, is always sound; the next pass runs from the start with the new
 * answers. A batch thus needs about as many passes as its most-missing step has
 * misses, not as the sum of all its steps' misses.
 *
 * Layers: layer 0 is the database as the transaction began; apply m opens layer
 * m. A read made after the j-th apply is answered as of layer j:
 *  - point reads (`promise`, `task`, `schedule`, `callbacks`, `listeners`,
 *    `outboxEntry`) from the latest apply ≤ j that wrote the key (a reset counts
 *    as writing every key, a deletion writes "absent"), else from a fetched observation of the key separated
 *    from layer j by no apply that wrote it;
 *  - `promisesInBranch` from the latest reset ≤ j (empty), else from a fetch made
 *    at a layer L ≤ j, in both cases overlaid with the promises that applies up to
 *    j wrote or deleted (a promise is in the branch its `resonate:branch` tag names,
 *    the fact the store indexes); so, like a point read, it may be fetched early;
 *  - other query reads (searches, `due`, `nextDueAt`, …) only from a fetch made at
 *    the same layer, where a layer opened by an empty apply is the one before it.
 *
 * This file does no I/O; the store owns the database, this owns the answers.
 *
 * Invariants (asserted here):
 *  R1  A miss happens only at the newest layer, and only once every earlier apply
 *      has been flushed: replayed steps make the reads they made before.
 *  R2  A replayed apply equals, as JSON, the apply flushed at that position.
 *  R3  A pass answers nothing after it closed, nor after a query miss, and only
 *      speculative answers (never flushed or returned) after a point miss;
 *      `ReadMiss` is never swallowed unnoticed (the pass remembers the miss even if
 *      `work` catches it).
 *  R4  Each fetched read is stored once per layer.
 */
import type {
  Changes,
  DueWork,
  OutboxEntry,
  OutboxQuery,
  PromiseQuery,
  ScheduleQuery,
  SettledQuery,
  StateReader,
  StoredPromise,
  StoredSchedule,
  StoredTask,
  TaskQuery,
} from "../../core/state.js";
import { isEmptyChanges, promiseDueAt, scheduleDueAt, taskDueAt } from "../../core/state.js";
import { assert } from "../../lib/assert.js";
import { compareCodePoints } from "../../lib/order.js";
import { TAG } from "../../protocol/records.js";
import type { StoreTransaction } from "../store.js";
import { addChanges, emptyNetEffect } from "./net-effect.js";

export type PointMethod = "promise" | "task" | "schedule" | "callbacks" | "listeners" | "outboxEntry";
export type QueryMethod = Exclude<keyof StateReader, PointMethod>;

/** One read `work` made that the cache could not answer. */
export type Read = { method: PointMethod; key: string } | { method: QueryMethod; args: unknown[] };

/** Thrown by a pass to stop `work` at its first miss; caught only by the store. */
export class ReadMiss extends Error {
  override name = "ReadMiss";
}

/** Point misses a speculating pass records before it stops (a bound on wasted work). */
export const SPECULATIVE_MISSES_MOST = 256;

/** One apply, indexed for point lookups. */
interface Layer {
  changes: Changes;
  /** Never flushed nor compared (made while speculating). */
  speculative: boolean;
  /** `changesJson(changes)`, made when a replay first compares against this layer (R2). */
  json?: string;
  reset: boolean;
  empty: boolean;
  /** `${method}\u0000${key}` → the value a point read sees after this apply. */
  writes: Map<string, unknown>;
}

const pointKey = (method: PointMethod, key: string) => `${method}\u0000${key}`;

/** Changes as JSON text (Maps as entry lists), for R2. */
export function changesJson(changes: Changes): string {
  return JSON.stringify({
    ...changes,
    callbacks: [...changes.callbacks.entries()],
    listeners: [...changes.listeners.entries()],
  });
}

function layerOf(changes: Changes, speculative = false): Layer {
  const writes = new Map<string, unknown>();
  // Same order as the memory store's apply: later entries win.
  for (const promise of changes.promises) writes.set(pointKey("promise", promise.id), promise);
  for (const task of changes.tasks) writes.set(pointKey("task", task.id), task);
  // Deletions apply after the upserts of the same change (state.ts, `Changes`).
  for (const id of changes.deletedPromises) writes.set(pointKey("promise", id), undefined);
  for (const id of changes.deletedTasks) writes.set(pointKey("task", id), undefined);
  for (const schedule of changes.schedules) writes.set(pointKey("schedule", schedule.id), schedule);
  for (const id of changes.deletedSchedules) writes.set(pointKey("schedule", id), undefined);
  for (const [awaited, awaiters] of changes.callbacks)
    writes.set(pointKey("callbacks", awaited), [...awaiters].sort(compareCodePoints));
  for (const [awaited, addresses] of changes.listeners)
    writes.set(pointKey("listeners", awaited), [...addresses].sort(compareCodePoints));
  for (const key of changes.deletedOutbox) writes.set(pointKey("outboxEntry", key), undefined);
  for (const entry of changes.outbox) writes.set(pointKey("outboxEntry", entry.key), entry);
  // No copy: the core never mutates what it hands over (core/working.ts), nor what it reads.
  return {
    changes,
    speculative,
    reset: changes.reset,
    empty: isEmptyChanges(changes),
    writes,
  };
}

/** What a point read sees after a reset that did not write the key. */
function resetValue(method: PointMethod): unknown {
  return method === "callbacks" || method === "listeners" ? [] : undefined;
}

/**
 * What one attempt of a batch has learnt, kept across its passes: the applies
 * flushed to the database and the reads fetched, each at its layer.
 */
export class ReplayCache {
  /** Applies written to the database in this database transaction, in order. */
  readonly flushed: Layer[] = [];
  private readonly points = new Map<string, { layer: number; value: unknown }[]>();
  private readonly queries = new Map<string, unknown>();
  /** Passes run (for tests and stats). */
  passes = 0;
  /**
   * `nextDueAt` as the store read it right after its latest commit, outside any
   * transaction (`ReplayPass.nextDueAt` says why); absent when it has none yet.
   */
  committedNextDueAt: { at: number | undefined } | undefined;

  get flushedCount(): number {
    return this.flushed.length;
  }

  /** Records that the applies of `pass` beyond those flushed are now written. */
  markFlushed(pass: ReplayPass): void {
    const fresh = pass.unflushed();
    assert(
      fresh.every((layer) => !layer.speculative),
      "a speculative apply is never flushed",
    );
    this.flushed.push(...fresh);
    assert(this.flushed.length === pass.settledLayers, "every non-speculative apply of the pass is flushed");
  }

  /**
   * Stores the answer to `read`, fetched with every apply so far flushed (R1, R4).
   * The cache keeps `value` itself and hands it out uncopied: the caller hands over
   * a value nothing else holds, and the core never mutates what it reads.
   */
  store(read: Read, value: unknown): void {
    const layer = this.flushed.length;
    if (
      read.method === "promise" ||
      read.method === "task" ||
      read.method === "schedule" ||
      read.method === "callbacks" ||
      read.method === "listeners" ||
      read.method === "outboxEntry"
    ) {
      assert("key" in read, "a point read has a key");
      const key = pointKey(read.method, read.key);
      const observations = this.points.get(key) ?? [];
      assert(
        !observations.some((observation) => observation.layer === layer),
        `R4 ${read.method} ${read.key} fetched twice at layer ${layer}`,
      );
      observations.push({ layer, value });
      this.points.set(key, observations);
    } else if (read.method === "promisesInBranch") {
      const key = branchKey(read.args[0] as string);
      const observations = this.points.get(key) ?? [];
      assert(
        !observations.some((observation) => observation.layer === layer),
        `R4 promisesInBranch fetched twice at layer ${layer}`,
      );
      observations.push({ layer, value });
      this.points.set(key, observations);
    } else {
      assert("args" in read, "a query read has arguments");
      const key = queryKey(this.canonical(layer, this.flushed), read.method, read.args);
      assert(!this.queries.has(key), `R4 ${read.method} fetched twice at layer ${layer}`);
      this.queries.set(key, value);
    }
  }

  /** The lowest layer whose state equals layer `j`'s for queries (empty applies change nothing). */
  canonical(j: number, layers: readonly Layer[]): number {
    let layer = j;
    while (layer > 0 && layers[layer - 1]?.empty === true) layer -= 1;
    return layer;
  }

  query(layer: number, method: QueryMethod, args: unknown[]): { hit: boolean; value?: unknown } {
    const key = queryKey(layer, method, args);
    return this.queries.has(key) ? { hit: true, value: this.queries.get(key) } : { hit: false };
  }

  observations(method: PointMethod, key: string): readonly { layer: number; value: unknown }[] {
    return this.points.get(pointKey(method, key)) ?? [];
  }

  branchObservations(branch: string): readonly { layer: number; value: unknown }[] {
    return this.points.get(branchKey(branch)) ?? [];
  }
}

/** Cache key of a `promisesInBranch` answer (cannot collide with a point key: no such method). */
const branchKey = (branch: string) => `promisesInBranch\u0000${branch}`;

function queryKey(layer: number, method: QueryMethod, args: unknown[]): string {
  return `${layer}\u0000${method}\u0000${JSON.stringify(args)}`;
}

/** One run of `work`: the `StoreTransaction` it sees. */
export class ReplayPass implements StoreTransaction {
  /** Applies made in this pass, in order; the first `cache.flushedCount` are replays (R2). */
  readonly layers: Layer[] = [];
  /** The first read this pass could not answer, if any. */
  miss: Read | undefined;
  /** Point reads missed after the first one, while speculating (distinct, none equal to `miss`). */
  readonly speculativeMisses: Read[] = [];
  /** Layers that are not speculative: all of them, or those made before the first miss. */
  private missLayer: number | undefined;
  /** Set once a point read missed: later answers are guesses, never kept. */
  speculating = false;
  /** Set when speculation stops (a query miss, too many misses): every read throws `ReadMiss`. */
  private halted = false;
  private readonly missedKeys = new Set<string>();
  private open = true;
  /**
   * The pass's applies so far, indexed, so that a read at the newest layer (the
   * only layer a pass reads at) costs a map lookup rather than a walk down the
   * layers: the latest value each point key was given since the last reset, the
   * last reset's layer (0: none), and the net effect of the applies since it.
   */
  private readonly latest = new Map<string, unknown>();
  private resetLayer = 0;
  private sinceReset = emptyNetEffect();

  constructor(private readonly cache: ReplayCache) {
    cache.passes += 1;
  }

  close(): void {
    this.open = false;
  }

  /** Applies made before the first miss (all of them if none): the ones that may be flushed. */
  get settledLayers(): number {
    return this.missLayer ?? this.layers.length;
  }

  /** Every read missed in this pass: the first, then the speculative ones. */
  misses(): Read[] {
    return this.miss === undefined ? [] : [this.miss, ...this.speculativeMisses];
  }

  /** The non-speculative applies of this pass not yet written to the database. */
  unflushed(): Layer[] {
    return this.layers.slice(this.cache.flushedCount, this.settledLayers);
  }

  /** The apply that opened layer `m` (1-based), from this pass or, beyond it, from the flushed log. */
  private layerAt(m: number): Layer | undefined {
    return this.layers[m - 1] ?? this.cache.flushed[m - 1];
  }

  private checkOpen(): void {
    assert(this.open, "R3 transaction handle used after its transaction's pass ended");
    if (this.halted || (this.miss !== undefined && !this.speculating))
      throw new ReadMiss("read after a miss in the same pass");
  }

  /**
   * Records a miss. A read that may be fetched early (`early`: its cache key and
   * the guess to answer) starts or continues speculation; any other ends the pass.
   */
  private missed<T>(read: Read, early?: { name: string; guess: unknown }): T {
    const layer = this.layers.length;
    if (this.miss === undefined) {
      assert(
        layer >= this.cache.flushedCount,
        `R1 a replayed step (layer ${layer}, ${this.cache.flushedCount} applies flushed) made a read it did not make before: ${read.method}`,
      );
      this.miss = read;
      this.missLayer = layer;
      if (early !== undefined) {
        this.speculating = true;
        this.missedKeys.add(early.name);
        return early.guess as T;
      }
    } else if (early !== undefined) {
      if (this.missedKeys.has(early.name)) return early.guess as T;
      if (this.missedKeys.size < SPECULATIVE_MISSES_MOST) {
        this.missedKeys.add(early.name);
        this.speculativeMisses.push(read);
        return early.guess as T;
      }
    }
    this.halted = true;
    throw new ReadMiss(`${read.method} is not cached at layer ${layer}`);
  }

  apply(changes: Changes): void {
    this.checkOpen();
    const position = this.layers.length;
    const flushed = this.cache.flushed[position];
    if (flushed !== undefined && !this.speculating) {
      // A replay: check R2 on the JSON alone and reuse the flushed layer (equal by R2).
      // The flushed layer's JSON is made only now: most batches never replay.
      const json = changesJson(changes);
      flushed.json ??= changesJson(flushed.changes);
      assert(
        flushed.json === json,
        `R2 replayed apply ${position + 1} differs from the one flushed: ${json} vs ${flushed.json}`,
      );
      this.push(flushed);
      return;
    }
    this.push(layerOf(changes, this.speculating));
  }

  private push(layer: Layer): void {
    this.layers.push(layer);
    if (layer.reset) {
      this.latest.clear();
      this.sinceReset = emptyNetEffect();
      this.resetLayer = this.layers.length;
    }
    for (const [name, value] of layer.writes) this.latest.set(name, value);
    addChanges(this.sinceReset, layer.changes);
  }

  private point<T>(method: PointMethod, key: string): T {
    this.checkOpen();
    const j = this.layers.length;
    const name = pointKey(method, key);
    // The latest apply at or before layer j that wrote the key, or the reset before it.
    if (this.latest.has(name)) return this.latest.get(name) as T;
    if (this.resetLayer > 0) return resetValue(method) as T;
    // Untouched by applies 1…j: any observation not separated from j by a write.
    // Answers are shared, not copied: the core never mutates what it reads.
    for (const observation of this.cache.observations(method, key)) {
      if (observation.layer <= j || this.untouched(name, j + 1, observation.layer))
        return observation.value as T;
    }
    return this.missed<T>({ method, key }, { name, guess: resetValue(method) });
  }

  /** No apply in layers `from`…`to` wrote the point `name` or reset. */
  private untouched(name: string, from: number, to: number): boolean {
    for (let m = from; m <= to; m += 1) {
      const layer = this.layerAt(m);
      if (layer === undefined || layer.reset || layer.writes.has(name)) return false;
    }
    return true;
  }

  private query<T>(method: QueryMethod, args: unknown[]): T {
    this.checkOpen();
    const layer = this.cache.canonical(this.layers.length, this.layers);
    const answer = this.cache.query(layer, method, args);
    if (answer.hit) return answer.value as T;
    return this.missed<T>({ method, args });
  }

  promise(id: string): StoredPromise | undefined {
    return this.point("promise", id);
  }

  task(id: string): StoredTask | undefined {
    return this.point("task", id);
  }

  schedule(id: string): StoredSchedule | undefined {
    return this.point("schedule", id);
  }

  callbacks(awaited: string): string[] {
    return this.point("callbacks", awaited);
  }

  listeners(awaited: string): string[] {
    return this.point("listeners", awaited);
  }

  outboxEntry(key: string): OutboxEntry | undefined {
    return this.point("outboxEntry", key);
  }

  promisesInBranch(branch: string): StoredPromise[] {
    this.checkOpen();
    const j = this.layers.length;
    // The newest base at or below layer j: a reset (nothing), else a fetched answer.
    let from = 0;
    let base: readonly StoredPromise[] | undefined;
    for (let m = j; m >= 1; m -= 1) {
      if (this.layerAt(m)?.reset === true) {
        from = m;
        base = [];
        break;
      }
    }
    for (const observation of this.cache.branchObservations(branch)) {
      if (
        observation.layer <= j &&
        observation.layer >= from &&
        (base === undefined || observation.layer > from)
      ) {
        from = observation.layer;
        base = observation.value as StoredPromise[];
      }
    }
    if (base === undefined)
      return this.missed(
        { method: "promisesInBranch", args: [branch] },
        { name: branchKey(branch), guess: [] },
      );
    const mates = new Map(base.map((promise) => [promise.id, promise]));
    const overlay = (promise: StoredPromise) => {
      if (promise.tags[TAG.branch] === branch) mates.set(promise.id, promise);
      else mates.delete(promise.id);
    };
    if (from === this.resetLayer) {
      // The base is the last reset or was fetched before any apply: every write since counts.
      for (const [id, promise] of this.sinceReset.promises) {
        if (promise === null) mates.delete(id);
        else overlay(promise);
      }
    } else {
      for (let m = from + 1; m <= j; m += 1) {
        const layer = this.layerAt(m);
        assert(layer !== undefined, `layer ${m} exists`);
        // Same order as apply: upserts, then the deletions of the same change.
        for (const promise of layer.changes.promises) overlay(promise);
        for (const id of layer.changes.deletedPromises) mates.delete(id);
      }
    }
    return [...mates.values()].sort((a, b) => compareCodePoints(a.id, b.id));
  }

  searchPromises(query: PromiseQuery): StoredPromise[] {
    return this.query("searchPromises", [query]);
  }

  searchTasks(query: TaskQuery): StoredTask[] {
    return this.query("searchTasks", [query]);
  }

  searchSchedules(query: ScheduleQuery): StoredSchedule[] {
    return this.query("searchSchedules", [query]);
  }

  due(now: number, limit: number): DueWork {
    return this.query("due", [now, limit]);
  }

  /**
   * The sweep's next instant. Fetched at this layer, it is exact. Otherwise, once
   * the store has read it after a commit, the answer is the least of that reading
   * and the due instants of the records this transaction wrote (only those written
   * since the last reset, if any). It only arms the server's sweep, and for that it
   * is enough: every deadline this transaction writes is in it; deadlines written
   * by other transactions of this server were in their own answers; other
   * replicas arm their own sweeps, and the repair loop sweeps every second anyway.
   * It may be early (a write removed or postponed a deadline, or the reading is
   * stale), which costs one sweep that finds nothing. So no batch has to flush its
   * writes and read a range at its last layer, and the earliest deadline is read
   * outside every transaction.
   */
  nextDueAt(): number | undefined {
    const layer = this.cache.canonical(this.layers.length, this.layers);
    const exact = this.cache.query(layer, "nextDueAt", []);
    const committed = this.cache.committedNextDueAt;
    if (exact.hit || committed === undefined) return this.query("nextDueAt", []);
    this.checkOpen();
    let earliest = this.resetLayer > 0 ? undefined : committed.at;
    const consider = (at: number | undefined) => {
      if (at !== undefined && (earliest === undefined || at < earliest)) earliest = at;
    };
    const { promises, tasks, schedules } = this.sinceReset;
    for (const promise of promises.values()) if (promise) consider(promiseDueAt(promise));
    for (const task of tasks.values()) if (task) consider(taskDueAt(task));
    for (const schedule of schedules.values()) if (schedule) consider(scheduleDueAt(schedule));
    return earliest;
  }

  outbox(query: OutboxQuery): OutboxEntry[] {
    return this.query("outbox", [query]);
  }

  allCallbacks(): { awaited: string; awaiter: string }[] {
    return this.query("allCallbacks", []);
  }

  allListeners(): { awaited: string; address: string }[] {
    return this.query("allListeners", []);
  }

  settledPromises(query: SettledQuery): StoredPromise[] {
    return this.query("settledPromises", [query]);
  }

  promisesById(ids: readonly string[]): StoredPromise[] {
    return this.query("promisesById", [ids]);
  }

  tasksById(ids: readonly string[]): StoredTask[] {
    return this.query("tasksById", [ids]);
  }

  callbacksByAwaiter(awaiters: readonly string[]): { awaited: string; awaiter: string }[] {
    return this.query("callbacksByAwaiter", [awaiters]);
  }
}
