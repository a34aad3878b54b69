/**
 * The differential test's workload: random protocol requests as WIRE envelopes
 * (`{kind, head, data}`, JSON round-tripped), drawn over a small id space so that
 * they collide, and steered by what a client has seen so far (the reference
 * store's state after the previous operation) so that acquires, fences,
 * suspends, fulfils, releases and heartbeats often present the right version and
 * pid. A few envelopes are deliberately malformed; the edge refuses them.
 *
 * Everything here is a function of the `Random` it is given (STYLE practice 4).
 */
import type { OutboxEntry, StoredPromise, StoredSchedule, StoredTask } from "../../src/core/state.js";
import {
  isExternal,
  PROTOCOL_VERSION,
  SETTLABLE_STATES,
  TAG,
  type TaskState,
} from "../../src/protocol/records.js";
import { REQUEST_KINDS, type RequestKind } from "../../src/protocol/requests.js";
import type { Random } from "../../src/testing/random.js";

/** Every kind `step` handles: all of them but the shell's own `debug.start` / `debug.stop`. */
export const CORE_KINDS = REQUEST_KINDS.filter(
  (kind): kind is Exclude<RequestKind, "debug.start" | "debug.stop"> =>
    kind !== "debug.start" && kind !== "debug.stop",
);

export type CoreKind = Exclude<RequestKind, "debug.start" | "debug.stop">;

/** How often each kind is drawn. `debug.reset` is rare: it throws the whole state away. */
const KIND_WEIGHTS: Record<CoreKind, number> = {
  "promise.get": 4,
  "promise.create": 12,
  "promise.settle": 6,
  "promise.register_callback": 6,
  "promise.register_listener": 5,
  "promise.search": 3,
  "task.get": 4,
  "task.create": 7,
  "task.acquire": 10,
  "task.fence": 7,
  "task.heartbeat": 4,
  "task.suspend": 8,
  "task.fulfill": 6,
  "task.release": 4,
  "task.halt": 3,
  "task.continue": 3,
  "task.search": 2,
  "schedule.get": 2,
  "schedule.create": 3,
  "schedule.delete": 1.5,
  "schedule.search": 2,
  "debug.reset": 0.5,
  "debug.snap": 1,
  "debug.tick": 3,
};

/**
 * The small id space. `a` and `a.1` share a prefix (id searches), the last three are
 * non-ASCII (ordering and prefix bounds in SQLite), one of them in U+E000–U+FFFF,
 * where UTF-16 and code-point order differ (every store orders by code point).
 */
export const PROMISE_IDS = ["a", "a.1", "b", "c", "d", "é", "\uE000", "🙂"] as const;
/** How many fresh ids stay in play beside the fixed pool. */
const RECENT_IDS = 5;
const SCHEDULE_IDS = ["s1", "s2", "s3"] as const;
const TARGETS = ["poll://any@g/w1", "poll://any@g", "poll://uni@h/w2", "w1", "http://example.test/work"];
const LISTENER_ADDRESSES = ["poll://uni@g/w1", "poll://any@g", "http://example.test/hook"];
const PIDS = ["w1", "w2", "w3"];
const BRANCHES = ["r1", "r2"];
const CRONS = ["* * * * *", "*/2 * * * *", "*/20 * * * * *", "0 0 1 1 *"];
const PROMISE_ID_TEMPLATES = ["{{.id}}.{{.timestamp}}", "{{.id}}", "a", "b.{{.timestamp}}"];

/** What a client has seen: the reference store's state after the previous operation. */
export interface Knowledge {
  promises: readonly StoredPromise[];
  tasks: readonly StoredTask[];
  schedules: readonly StoredSchedule[];
  outbox: readonly OutboxEntry[];
}

export interface WireEnvelope {
  kind: string;
  head: Record<string, unknown>;
  data: unknown;
}

export interface Drawn {
  /** The kind drawn (before any deliberate corruption). */
  kind: CoreKind;
  /** The envelope as it would arrive on the wire (JSON round-tripped). */
  json: unknown;
  /** The instant this request is handled at, unless the envelope's `resonate:debug_time` says otherwise. */
  now: number;
}

/** Draws requests; `now` only moves forward. */
export class Workload {
  private corrIds = 0;
  private freshIds = 0;
  /** The last few fresh ids: settled ids stay settled forever, so new work needs new ids. */
  private readonly recent: string[] = [];
  /** The instant of the request being drawn. */
  private now = 0;

  /** `ids`: the fixed pool of promise ids (default `PROMISE_IDS`). */
  constructor(
    private readonly random: Random,
    readonly ids: readonly string[] = PROMISE_IDS,
  ) {}

  /** A request at `clock` (or, for `debug.tick`, at a later instant it names). */
  draw(known: Knowledge, clock: number): Drawn {
    const random = this.random;
    this.now = clock;
    const boost = this.boosts(known);
    const kind = random.weighted(
      CORE_KINDS.map((candidate) => [candidate, KIND_WEIGHTS[candidate] * (boost[candidate] ?? 1)] as const),
    );
    let now = clock;
    const head: Record<string, unknown> = { corrId: `c${this.corrIds++}`, version: PROTOCOL_VERSION };
    let data: unknown;
    if (kind === "debug.tick") {
      now = random.bool(0.5) ? clock : clock + random.int(1, 20_000);
      data = { time: now };
      if (random.bool(0.5)) head["resonate:debug_time"] = random.bool(0.05) ? now + 1 : now;
    } else {
      data = this.data(kind, known, clock);
      if (random.bool(0.5)) head["resonate:debug_time"] = clock;
    }
    if (random.bool(0.1)) head["resonate:origin"] = random.pick(this.ids);
    const envelope: WireEnvelope = { kind, head, data };
    if (random.bool(0.03)) corrupt(random, envelope);
    else if (random.bool(0.01)) withLoneSurrogate(envelope.data);
    return { kind, json: JSON.parse(JSON.stringify(envelope)), now };
  }

  /**
   * Steers the mix toward what the state allows, as workers would: holder operations
   * while some task is held, acquisitions while some wait, `task.continue` while some
   * are halted. Without these, a small id space settles fast and the holder
   * operations would mostly meet 404 and 409.
   */
  private boosts(known: Knowledge): Partial<Record<CoreKind, number>> {
    const live = (state: TaskState) =>
      known.tasks.some((task) => task.state === state && this.isLive(known, task.id));
    const held = live("acquired") ? 3 : 0.5;
    return {
      "task.acquire": live("pending") ? 2 : 0.5,
      "task.fence": held,
      "task.suspend": held,
      "task.fulfill": held,
      "task.release": held,
      "task.heartbeat": held,
      "task.continue": live("halted") ? 4 : 0.5,
    };
  }

  private data(kind: Exclude<CoreKind, "debug.tick">, known: Knowledge, now: number): unknown {
    const random = this.random;
    switch (kind) {
      case "promise.get":
        return { id: this.promiseId(known) };
      case "promise.create":
        return this.promiseCreate(known, now);
      case "promise.settle":
        return this.promiseSettle(known);
      case "promise.register_callback": {
        const awaiter = this.taskOr(known, ["pending", "acquired", "suspended", "halted"]);
        const awaited = random.bool(0.03) ? awaiter : this.otherPromise(known, awaiter, 0.7);
        return { awaited, awaiter };
      }
      case "promise.register_listener":
        return {
          awaited: this.otherPromise(known, "", 0.7),
          address: random.bool(0.04) ? "w1" : random.pick(LISTENER_ADDRESSES),
        };
      case "promise.search":
        return this.search({
          id: () => random.pick(["a*", "a", "é*", "🙂*", "*", "zz*", "b"]),
          state: () =>
            random.pick(["pending", "resolved", "rejected", "rejected_canceled", "rejected_timedout"]),
          tags: () => this.tagFilter(),
        });
      case "task.get":
        return { id: this.promiseId(known) };
      case "task.create": {
        const action = this.promiseCreate(known, now);
        if (random.bool(0.95)) action.tags = { ...action.tags, [TAG.target]: random.pick(TARGETS) };
        else if (action.tags) delete action.tags[TAG.target];
        // `resonate:delay` means nothing to a task born acquired, but it is legal.
        return { pid: random.pick(PIDS), ttl: this.ttl(), action: this.action("promise.create", action) };
      }
      case "task.acquire": {
        const { id, version } = this.held(known, "pending");
        return { id, version, pid: random.pick(PIDS), ttl: this.ttl() };
      }
      case "task.fence":
        return this.fence(known, now);
      case "task.heartbeat": {
        const acquired = known.tasks.filter((task) => task.state === "acquired");
        const holder = acquired.length > 0 && random.bool(0.8) ? random.pick(acquired).pid : undefined;
        const pid = holder ?? random.pick(PIDS);
        const tasks = Array.from({ length: random.int(0, 3) }, () => {
          const ref = this.held(known, "acquired");
          return { id: ref.id, version: ref.version };
        });
        return { pid, tasks };
      }
      case "task.suspend":
        return this.suspend(known);
      case "task.fulfill": {
        const { id, version } = this.held(known, "acquired");
        const settle = this.promiseSettle(known);
        settle.id = random.bool(0.03) ? this.promiseId(known) : id;
        return { id, version, action: this.action("promise.settle", settle) };
      }
      case "task.release": {
        const { id, version } = this.held(known, "acquired");
        return { id, version };
      }
      case "task.halt":
        return { id: this.taskOr(known, ["pending", "acquired", "suspended", "halted"]) };
      case "task.continue":
        return { id: this.taskOr(known, ["halted"]) };
      case "task.search":
        return this.search({
          state: () => random.pick(["pending", "acquired", "suspended", "halted", "fulfilled"]),
        });
      case "schedule.get":
      case "schedule.delete":
        return { id: this.scheduleId(known) };
      case "schedule.create":
        return this.scheduleCreate(now);
      case "schedule.search":
        return this.search({ tags: () => this.tagFilter() });
      case "debug.reset":
      case "debug.snap":
        return {};
    }
  }

  // --- ids and versions ----------------------------------------------------

  /**
   * Mostly the small fixed pool and the few recent fresh ids; sometimes a promise a
   * schedule created. A create (`fresh`) sometimes mints a new id, which joins the
   * recent ones and pushes the oldest out.
   */
  private promiseId(known: Knowledge, fresh = false): string {
    const random = this.random;
    if (fresh && random.bool(0.5)) {
      const id = `${random.pick(["a", "b", "🙂"])}.${this.freshIds++}`;
      this.recent.push(id);
      if (this.recent.length > RECENT_IDS) this.recent.shift();
      return id;
    }
    if (known.promises.length > 0 && random.bool(0.1)) return random.pick(known.promises).id;
    if (this.recent.length > 0 && random.bool(0.5)) return random.pick(this.recent);
    return random.pick(this.ids);
  }

  /** A promise other than `exclude`, preferring a pending external one with probability `preferLive`. */
  private otherPromise(known: Knowledge, exclude: string, preferLive: number): string {
    const random = this.random;
    const live = known.promises.filter(
      (promise) =>
        promise.id !== exclude &&
        promise.state === "pending" &&
        promise.timeoutAt > this.now &&
        (promise.armed || promise.tags[TAG.target] !== undefined),
    );
    if (live.length > 0 && random.bool(preferLive)) return random.pick(live).id;
    for (;;) {
      const id = this.promiseId(known);
      if (id !== exclude) return id;
    }
  }

  /** The promise `id` is pending at the instant being drawn (what `task.*` guards judge). */
  private isLive(known: Knowledge, id: string): boolean {
    const promise = known.promises.find((candidate) => candidate.id === id);
    return promise !== undefined && promise.state === "pending" && promise.timeoutAt > this.now;
  }

  /** A task in one of `states` (stored) most of the time, else any id. */
  private taskOr(known: Knowledge, states: readonly TaskState[]): string {
    const random = this.random;
    const matching = known.tasks.filter((task) => states.includes(task.state) && this.isLive(known, task.id));
    if (matching.length > 0 && random.bool(0.8)) return random.pick(matching).id;
    return this.promiseId(known);
  }

  /** A task id and the version a client would present: usually the right one. */
  private held(known: Knowledge, state: TaskState): { id: string; version: number } {
    const random = this.random;
    const matching = known.tasks.filter((task) => task.state === state && this.isLive(known, task.id));
    const task =
      matching.length > 0 && random.bool(0.85)
        ? random.pick(matching)
        : known.tasks.length > 0 && random.bool(0.5)
          ? random.pick(known.tasks)
          : undefined;
    if (task === undefined) return { id: this.promiseId(known), version: random.int(0, 3) };
    const version = random.weighted([
      [task.version, 8],
      [task.version + 1, 1],
      [Math.max(0, task.version - 1), 1],
    ]);
    return { id: task.id, version };
  }

  private scheduleId(known: Knowledge): string {
    const random = this.random;
    if (known.schedules.length > 0 && random.bool(0.7)) return random.pick(known.schedules).id;
    return random.pick(SCHEDULE_IDS);
  }

  private ttl(): number {
    return this.random.weighted([
      [0, 1],
      [this.random.int(1, 200), 2],
      [this.random.int(200, 5000), 4],
      [this.random.int(5000, 60_000), 4],
    ]);
  }

  // --- data of each kind -----------------------------------------------------

  private promiseCreate(known: Knowledge, now: number): Record<string, unknown> & { tags?: Tags } {
    const random = this.random;
    const data: Record<string, unknown> & { tags?: Tags } = {
      id: this.promiseId(known, true),
      timeoutAt: Math.max(
        0,
        now +
          random.weighted([
            [-random.int(0, 2000), 1],
            [random.int(1, 300), 1],
            [random.int(300, 8000), 3],
            [random.int(8000, 200_000), 4],
          ]),
      ),
    };
    if (random.bool(0.6)) data.param = this.value();
    if (random.bool(0.9)) data.tags = this.tags(now);
    return data;
  }

  private promiseSettle(known: Knowledge): Record<string, unknown> {
    const random = this.random;
    const state = random.bool(0.04)
      ? random.pick(["pending", "rejected_timedout", "done"])
      : random.pick(SETTLABLE_STATES);
    const data: Record<string, unknown> = { id: this.otherPromise(known, "", 0.3), state };
    if (random.bool(0.7)) data.value = this.value();
    return data;
  }

  private tags(now: number): Tags {
    const random = this.random;
    const tags: Tags = random.weighted<Tags>([
      [{}, 2],
      [{ [TAG.external]: "true" }, 3],
      [{ [TAG.target]: random.pick(TARGETS) }, 7],
      [{ [TAG.timer]: "true" }, 1.5],
      [{ [TAG.timer]: "true", [TAG.target]: random.pick(TARGETS) }, 0.7],
      [{ [TAG.external]: "false" }, 0.5],
    ]);
    if (tags[TAG.target] !== undefined && random.bool(0.15)) {
      tags[TAG.delay] = String(now + random.int(0, 8000));
    }
    if (random.bool(0.4)) tags[TAG.branch] = random.pick(BRANCHES);
    if (random.bool(0.3)) tags.env = random.pick(["prod", "dev"]);
    if (random.bool(0.02)) tags[TAG.delay] = "soon"; // the edge refuses it
    return tags;
  }

  private value(): Record<string, unknown> {
    const random = this.random;
    return random.weighted<Record<string, unknown>>([
      [{}, 1],
      [{ data: random.pick(["eyJhIjoxfQ==", "", "not base64 at all"]) }, 3],
      [{ headers: { "content-type": "application/json" }, data: "e30=" }, 1],
      [{ headers: {} }, 0.5],
    ]);
  }

  private action(kind: string, data: unknown): Record<string, unknown> {
    return this.random.bool(0.5)
      ? { kind, head: { corrId: "inner", version: PROTOCOL_VERSION }, data }
      : { kind, data };
  }

  private fence(known: Knowledge, now: number): Record<string, unknown> {
    const random = this.random;
    const { id, version } = this.held(known, "acquired");
    const roll = random.next();
    if (roll < 0.03)
      return { id, version, action: this.action("promise.get", { id: this.promiseId(known) }) };
    const create = random.bool(0.5);
    const inner = create ? this.promiseCreate(known, now) : this.promiseSettle(known);
    // Acting on its own promise: the edge refuses it.
    if (roll < 0.06) inner.id = id;
    else if (inner.id === id) inner.id = this.otherPromise(known, id, 0);
    if (random.bool(0.06)) {
      // An inner fault: the inner handler's 400 inside an outer 200.
      if (create) inner.timeoutAt = -1;
      else inner.state = "pending";
    }
    return { id, version, action: this.action(create ? "promise.create" : "promise.settle", inner) };
  }

  private suspend(known: Knowledge): Record<string, unknown> {
    const random = this.random;
    const { id, version } = this.held(known, "acquired");
    const awaited: string[] = [];
    const count = random.weighted([
      [1, 4],
      [2, 3],
      [3, 1],
    ]);
    for (let attempt = 0; awaited.length < count && attempt < 20; attempt += 1) {
      const candidate = this.otherPromise(known, id, 0.85);
      if (!awaited.includes(candidate)) awaited.push(candidate);
    }
    // Sometimes one of them has settled already: the 300 "keep going".
    const settled = known.promises.filter(
      (promise) => promise.id !== id && promise.state !== "pending" && isExternal(promise.tags),
    );
    if (settled.length > 0 && random.bool(0.25)) {
      const candidate = random.pick(settled).id;
      if (!awaited.includes(candidate)) awaited[random.int(0, awaited.length - 1)] = candidate;
    }
    if (random.bool(0.03)) awaited.push(awaited[0] ?? "b"); // a duplicate: the edge refuses it
    if (random.bool(0.02)) awaited.push(id); // awaiting itself: the edge refuses it
    const awaiter = random.bool(0.02) ? this.promiseId(known) : id;
    return {
      id,
      version,
      actions: awaited.map((promiseId) =>
        this.action("promise.register_callback", { awaited: promiseId, awaiter }),
      ),
    };
  }

  private scheduleCreate(now: number): Record<string, unknown> {
    const random = this.random;
    const data: Record<string, unknown> = {
      id: random.pick(SCHEDULE_IDS),
      cron: random.bool(0.03) ? "every tuesday" : random.pick(CRONS),
      promiseId: random.pick(PROMISE_ID_TEMPLATES),
      promiseTimeout: random.pick([0, 500, 10_000, 90_000]),
    };
    if (random.bool(0.5)) data.promiseParam = this.value();
    if (random.bool(0.8)) data.promiseTags = this.tags(now);
    return data;
  }

  private tagFilter(): Tags {
    return this.random.pick<Tags>([
      {},
      { env: "prod" },
      { env: "dev", [TAG.branch]: "r1" },
      { [TAG.target]: "poll://any@g/w1" },
      { [TAG.branch]: "r2" },
    ]);
  }

  /** Search data: each filter present about half the time, small limits so cursors appear. */
  private search(filters: Record<string, () => unknown>): Record<string, unknown> {
    const random = this.random;
    const data: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(filters)) if (random.bool(0.5)) data[name] = value();
    if (random.bool(0.7)) data.limit = random.bool(0.03) ? 0 : random.int(1, 4);
    if (random.bool(0.3)) data.cursor = random.pick([...this.ids, ...SCHEDULE_IDS, ""]);
    return data;
  }
}

type Tags = Record<string, string>;

/**
 * Puts a lone surrogate at the end of the last string in `value` (depth first). No
 * store keeps one exactly (SQLite hands back U+FFFD), so the edge must refuse it
 * wherever it is (an id, a tag, an address, a cron, a value); if one slips
 * through, the stores' answers differ and the test says where.
 */
function withLoneSurrogate(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record).reverse()) {
    const item = record[key];
    if (typeof item === "string") {
      record[key] = `${item}\uD800`;
      return true;
    }
    if (withLoneSurrogate(item)) return true;
  }
  return false;
}

/** One deliberate fault in an otherwise good envelope; the edge must refuse it. */
function corrupt(random: Random, envelope: WireEnvelope): void {
  const fault = random.int(0, 5);
  if (fault === 0) envelope.head.version = "2025-01-01";
  else if (fault === 1) delete envelope.head.corrId;
  else if (fault === 2) envelope.data = ["not", "an", "object"];
  else if (fault === 3) envelope.kind = `${envelope.kind}.nope`;
  else if (fault === 4 && typeof envelope.data === "object" && envelope.data !== null)
    (envelope.data as Record<string, unknown>).unexpected = true;
  else envelope.head["resonate:debug_time"] = -5;
}
