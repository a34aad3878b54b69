/**
 * Runs one seeded workload against every store at once and holds them to the
 * reference (STYLE practice 2): the memory store, SQLite in memory and SQLite on
 * a file, and PostgreSQL when asked (`postgres: true`). Each operation runs in each store's own transaction; after each one the
 * harness compares what the operation answered and the whole stored state, and a
 * mismatch throws naming the seed, the operation index, the request, the store
 * and the diff.
 *
 * Operations, all drawn from one `Random`:
 *  - a request: a wire envelope through `parseRequest` (the edge), then
 *    `step` + `apply` in one transaction; the edge's refusals are counted and
 *    skipped;
 *  - a sweep: `sweep` + `apply`, sometimes with a small limit so `more` and the
 *    order of `due` matter;
 *  - a batch: several of the above in one transaction (group commit, ADR 0002),
 *    each reading the previous ones' writes;
 *  - a delivery: read a page of the outbox for a connection's addresses, then
 *    remove what is still stored unchanged, as the shell does;
 *  - a retention run: `collect` + `apply` in bounded batches from a cursor, as the
 *    server's retention loop and `pledge gc` do (drawn from its own stream, so
 *    the other operations draw the same numbers as before it existed);
 *  - probes: reads of every `StateReader` method with random queries;
 *  - a reopen of the file store and of PostgreSQL (what was committed must come back).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import { expect } from "vitest";
import { requestReads } from "../../src/core/read-hints.js";
import { type CollectResult, collect } from "../../src/core/retention.js";
import {
  emptyChanges,
  type OutboxEntry,
  type SettledCursor,
  type StateReader,
} from "../../src/core/state.js";
import { type CoreConfig, type StepResult, SWEEP_LIMIT, snapshot, step, sweep } from "../../src/core/step.js";
import { parseRequest } from "../../src/protocol/parse.js";
import type { Request } from "../../src/protocol/requests.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { openPostgresStore } from "../../src/store/postgres/postgres-store.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { ReadHints, Store, StoreTransaction } from "../../src/store/store.js";
import { Random } from "../../src/testing/random.js";
import { dropSchema, freshSchema, POSTGRES_URL } from "./postgres.js";
import { CORE_KINDS, type CoreKind, type Knowledge, Workload } from "./workload.js";

const ALL = Number.MAX_SAFE_INTEGER;
/** Far enough from 0 that cron schedules and timeouts look like real instants. */
const START = Date.UTC(2026, 3, 1, 12, 0, 0);

/** Per-kind outcome counts, summed over runs. */
export class Counters {
  /** status → count, per kind, for requests the edge accepted. */
  readonly statuses = new Map<CoreKind, Map<number, number>>(CORE_KINDS.map((kind) => [kind, new Map()]));
  /** Requests the edge refused, per kind drawn. */
  readonly refused = new Map<CoreKind, number>(CORE_KINDS.map((kind) => [kind, 0]));
  /** Inner statuses of `task.fence` answered 200. */
  readonly fenceInner = new Map<number, number>();
  operations = {
    requests: 0,
    sweeps: 0,
    sweepsWithChanges: 0,
    batches: 0,
    deliveries: 0,
    probes: 0,
    reopens: 0,
    retentionBatches: 0,
    retained: 0,
    collected: 0,
  };

  success(kind: CoreKind): number {
    const statuses = this.statuses.get(kind);
    return (statuses?.get(200) ?? 0) + (kind === "task.suspend" ? (statuses?.get(300) ?? 0) : 0);
  }

  record(kind: CoreKind, status: number): void {
    const statuses = this.statuses.get(kind);
    statuses?.set(status, (statuses.get(status) ?? 0) + 1);
  }

  table(): string {
    const rows = CORE_KINDS.map((kind) => {
      const statuses = [...(this.statuses.get(kind) ?? new Map<number, number>())]
        .sort(([a], [b]) => a - b)
        .map(([status, count]) => `${status}×${count}`)
        .join(" ");
      return `  ${kind.padEnd(26)} ok ${String(this.success(kind)).padStart(4)}   refused at edge ${String(this.refused.get(kind) ?? 0).padStart(3)}   ${statuses}`;
    });
    const inner = [...this.fenceInner]
      .sort(([a], [b]) => a - b)
      .map(([status, count]) => `${status}×${count}`)
      .join(" ");
    const ops = Object.entries(this.operations)
      .map(([name, count]) => `${name} ${count}`)
      .join(", ");
    return [...rows, `  task.fence inner statuses: ${inner}`, `  operations: ${ops}`].join("\n");
  }
}

interface Candidate {
  name: string;
  store: Store;
  reopen?: () => Store | Promise<Store>;
}

type CoreRequest = Exclude<Request, { kind: "debug.start" | "debug.stop" }>;

/** The whole stored state, read through the reader: `debug.snap` plus what it leaves out. */
export function storedState(reader: StateReader) {
  return {
    snapshot: snapshot(reader),
    promises: reader.searchPromises({ limit: ALL }),
    tasks: reader.searchTasks({ limit: ALL }),
    schedules: reader.searchSchedules({ limit: ALL }),
    outbox: reader.outbox({ limit: ALL }),
    nextDueAt: reader.nextDueAt(),
  };
}

type StoredState = ReturnType<typeof storedState>;

/** JSON-friendly: Maps (in `Changes`) become arrays of entries. */
function plain(value: unknown): unknown {
  if (value instanceof Map) return [...value.entries()].map(([key, item]) => [key, plain(item)]);
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, plain(item)]));
  }
  return value;
}

export interface RunOptions {
  seed: number;
  steps: number;
  counters: Counters;
  /** The fixed pool of promise ids, when not the workload's default. */
  ids?: readonly string[];
  /** Also run a PostgreSQL store (on a fresh schema) beside the others. */
  postgres?: boolean;
  /** A deliberately wrong store to run beside the others (the test of the test): its reads go through `wrap`. */
  mutant?: { name: string; wrap: (tx: StoreTransaction) => StoreTransaction };
}

/** A memory store whose transaction handle is `wrap`ped: a store that differs on purpose. */
function mutantStore(wrap: (tx: StoreTransaction) => StoreTransaction): Store {
  const inner = new MemoryStore();
  return {
    description: "mutant",
    stats: inner.stats,
    transaction: (work) => inner.transaction((tx) => work(wrap(tx))),
    ping: () => inner.ping(),
    close: () => inner.close(),
  };
}

/** `tx` with some of its methods replaced. */
export function overriding(tx: StoreTransaction, overrides: Partial<StoreTransaction>): StoreTransaction {
  return new Proxy(tx, {
    get(target, property) {
      if (Object.hasOwn(overrides, property)) return overrides[property as keyof StoreTransaction];
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** One seeded run over all stores. Throws on the first disagreement. */
export async function runDifferential({
  seed,
  steps,
  counters,
  ids,
  mutant,
  postgres = false,
}: RunOptions): Promise<void> {
  const root = new Random(seed);
  const random = root.fork("operations");
  const workload = new Workload(root.fork("requests"), ids);
  const probes = root.fork("probes");
  const retention = root.fork("retention");
  const config: CoreConfig = {
    retryTimeoutMs: random.pick([1000, 5000]),
    ...(random.bool(0.5) && { serverUrl: "http://127.0.0.1:8001" }),
  };
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "pledge-differential-"));
  const file = path.join(directory, "pledge.db");
  const candidates: Candidate[] = [
    { name: "memory", store: new MemoryStore() },
    { name: "sqlite :memory:", store: openSqliteStore({ path: ":memory:" }) },
    {
      name: "sqlite file",
      store: openSqliteStore({ path: file }),
      reopen: () => openSqliteStore({ path: file }),
    },
    ...(mutant === undefined ? [] : [{ name: mutant.name, store: mutantStore(mutant.wrap) }]),
  ];
  const schema = postgres ? freshSchema("pledge_differential") : undefined;
  if (schema !== undefined) {
    const open = () => openPostgresStore({ url: POSTGRES_URL, schema });
    candidates.push({ name: "postgres", store: await open(), reopen: open });
  }
  const reopenAt = random.int(1, steps - 1);
  let clock = START;
  let index = 0;
  let described = "";

  /** Runs `work` in every store; all must answer alike. Returns the reference's answer. */
  const everywhere = async <T>(
    what: string,
    work: (tx: StoreTransaction) => T,
    hints?: ReadHints,
  ): Promise<T> => {
    const answers: T[] = [];
    for (const candidate of candidates) answers.push(await candidate.store.transaction(work, hints));
    const reference = answers[0] as T;
    for (const [position, answer] of answers.entries()) {
      if (position === 0 || isDeepStrictEqual(plain(answer), plain(reference))) continue;
      const name = candidates[position]?.name;
      const context = `seed ${seed}, operation ${index} (${described}): ${what} differs between memory and ${name} (- memory, + ${name})`;
      expect(plain(answer), context).toStrictEqual(plain(reference));
      throw new Error(`${context} (deep equality disagrees, but the diff shows none)`);
    }
    return reference;
  };

  let known: Knowledge = { promises: [], tasks: [], schedules: [], outbox: [] };
  const learn = (state: StoredState) => {
    known = {
      promises: state.promises,
      tasks: state.tasks,
      schedules: state.schedules,
      outbox: state.outbox,
    };
  };

  /** Draws one request; the edge may refuse it. Returns the work to run, or undefined. */
  const drawRequest = (): { kind: CoreKind; request: CoreRequest; now: number } | undefined => {
    const drawn = workload.draw(known, clock);
    clock = Math.max(clock, drawn.now);
    const parsed = parseRequest(drawn.json, { debug: true });
    if (!parsed.ok) {
      counters.refused.set(drawn.kind, (counters.refused.get(drawn.kind) ?? 0) + 1);
      return undefined;
    }
    const request = parsed.request;
    if (request.kind === "debug.start" || request.kind === "debug.stop") return undefined;
    const kind = request.kind as CoreKind;
    const now = request.kind === "debug.tick" ? request.data.time : (parsed.debugTime ?? clock);
    clock = Math.max(clock, now);
    described = `request at ${now}: ${JSON.stringify(drawn.json)}`;
    return { kind, request, now };
  };

  const runStep = (tx: StoreTransaction, request: CoreRequest, now: number): StepResult => {
    // Each store gets its own copy: nothing the core keeps may alias the request.
    const result = step(tx, structuredClone(request), now, config);
    tx.apply(result.changes);
    return result;
  };

  const recordStep = (kind: CoreKind, result: StepResult) => {
    counters.operations.requests += 1;
    counters.record(kind, result.response.status);
    if (kind === "task.fence" && result.response.status === 200) {
      const inner = (result.response.data as { action: { head: { status: number } } }).action.head.status;
      counters.fenceInner.set(inner, (counters.fenceInner.get(inner) ?? 0) + 1);
    }
  };

  const sweepLimit = () =>
    random.weighted([
      [SWEEP_LIMIT, 3],
      [random.int(1, 3), 1],
    ]);

  const runSweep = (tx: StoreTransaction, now: number, limit: number) => {
    const result = sweep(tx, now, config, limit);
    tx.apply(result.changes);
    return result;
  };

  const recordSweep = (result: ReturnType<typeof sweep>) => {
    counters.operations.sweeps += 1;
    if (result.messages.length > 0 || result.changes.promises.length + result.changes.tasks.length > 0)
      counters.operations.sweepsWithChanges += 1;
  };

  try {
    for (index = 0; index < steps; index += 1) {
      advanceClock();
      described = "nothing (the edge refused the request)";
      const roll = random.next();
      if (roll < 0.7) {
        const drawn = drawRequest();
        if (drawn !== undefined) {
          const result = await everywhere(
            "step result",
            (tx) => runStep(tx, drawn.request, drawn.now),
            requestReads(drawn.request),
          );
          recordStep(drawn.kind, result);
        }
      } else if (roll < 0.82) {
        const limit = sweepLimit();
        described = `sweep at ${clock}, limit ${limit}`;
        const now = clock;
        recordSweep(await everywhere("sweep result", (tx) => runSweep(tx, now, limit)));
      } else if (roll < 0.92) {
        await batch();
      } else {
        await deliver();
      }
      if (retention.bool(0.05)) await collectSettled();
      const operation = described;
      await probe();
      if (index === reopenAt) await reopen();
      described = `after ${operation}`;
      learn(await everywhere("stored state", storedState));
    }
  } finally {
    for (const candidate of candidates) await candidate.store.close();
    fs.rmSync(directory, { recursive: true, force: true });
    if (schema !== undefined) await dropSchema(schema);
  }

  function advanceClock(): void {
    clock += random.weighted([
      [random.int(0, 40), 91],
      [random.int(100, 6000), 8],
      [random.int(30_000, 180_000), 1],
    ]);
  }

  /** Several requests and sweeps in one transaction, each at its own (non-decreasing) instant. */
  async function batch(): Promise<void> {
    counters.operations.batches += 1;
    const items: (
      | { kind: CoreKind; request: CoreRequest; now: number }
      | { sweep: number; limit: number }
    )[] = [];
    const size = random.int(2, 5);
    for (let item = 0; item < size; item += 1) {
      if (random.bool(0.2)) {
        items.push({ sweep: clock, limit: sweepLimit() });
      } else {
        const drawn = drawRequest();
        if (drawn !== undefined) items.push(drawn);
      }
      clock += random.int(0, 30);
    }
    described = `batch of ${items.length} at ${JSON.stringify(items.map((item) => ("sweep" in item ? item.sweep : item.now)))}: ${JSON.stringify(items)}`;
    // Hinted as the server hints its batches (core/read-hints.ts), so stores that fetch ahead do.
    const reads = items.flatMap((item) => ("sweep" in item ? [] : [requestReads(item.request)]));
    const hints = {
      ids: reads.flatMap((read) => read.ids),
      branchesOf: reads.flatMap((read) => read.branchesOf),
    };
    const results = await everywhere(
      "batch results",
      (tx) =>
        items.map((item) =>
          "sweep" in item ? runSweep(tx, item.sweep, item.limit) : runStep(tx, item.request, item.now),
        ),
      hints,
    );
    results.forEach((result, position) => {
      const item = items[position];
      if (item === undefined) return;
      if ("sweep" in item) recordSweep(result as ReturnType<typeof sweep>);
      else recordStep(item.kind, result as StepResult);
    });
  }

  /** The shell's delivery: a page of a connection's messages, then removal of those still unchanged. */
  async function deliver(): Promise<void> {
    counters.operations.deliveries += 1;
    const group = random.pick(["g", "h"]);
    const id = random.pick(["w1", "w2"]);
    const addressPrefixes = random.weighted<string[] | undefined>([
      [[`poll://uni@${group}/${id}`, `poll://any@${group}/${id}`, `poll://any@${group}`], 4],
      [["http://"], 1],
      [undefined, 1],
      [[], 0.3],
    ]);
    const limit = random.int(1, 5);
    described = `delivery to ${JSON.stringify(addressPrefixes)}, limit ${limit}`;
    const page = await everywhere("outbox page", (tx) =>
      tx.outbox({ limit, ...(addressPrefixes !== undefined && { addressPrefixes }) }),
    );
    // Meanwhile a request may replace a message; only unchanged ones leave.
    if (random.bool(0.3)) {
      const drawn = drawRequest();
      if (drawn !== undefined) {
        recordStep(
          drawn.kind,
          await everywhere(
            "step result",
            (tx) => runStep(tx, drawn.request, drawn.now),
            requestReads(drawn.request),
          ),
        );
      }
    }
    described = `removal of the ${page.length} delivered messages (${page.map((entry) => entry.key).join(", ")})`;
    const delivered = page.map((entry: OutboxEntry) => ({
      key: entry.key,
      body: JSON.stringify(entry.message),
    }));
    await everywhere("outbox removal", (tx) => {
      const changes = emptyChanges();
      changes.deletedOutbox = delivered
        .filter(({ key, body }) => {
          const stored = tx.outboxEntry(key);
          return stored !== undefined && JSON.stringify(stored.message) === body;
        })
        .map(({ key }) => key);
      tx.apply(changes);
      return changes.deletedOutbox;
    });
  }

  /** Retention as the server runs it: batches of `collect` from a cursor until no more. */
  async function collectSettled(): Promise<void> {
    const settledBefore = clock - retention.pick([0, 500, 5_000, 60_000]);
    const limit = retention.weighted([
      [retention.int(1, 3), 2],
      [100, 1],
    ]);
    const now = clock;
    let after: SettledCursor | undefined;
    for (let batch = 0; batch < 1000; batch += 1) {
      described = `retention of promises settled before ${settledBefore} at ${now}, limit ${limit}, after ${JSON.stringify(after)}`;
      const cursor = after;
      const result: CollectResult = await everywhere("retention batch", (tx) => {
        const chosen = collect(
          tx,
          { settledBefore, limit, ...(cursor !== undefined && { after: cursor }) },
          now,
        );
        tx.apply(chosen.changes);
        return chosen;
      });
      counters.operations.retentionBatches += 1;
      counters.operations.collected += result.changes.deletedPromises.length;
      counters.operations.retained += result.kept;
      if (!result.more) return;
      after = result.cursor;
    }
    throw new Error(`retention at ${now} did not finish within 1000 batches of ${limit}`);
  }

  /** Reads through every `StateReader` method with random arguments. */
  async function probe(): Promise<void> {
    const reads: [string, (tx: StoreTransaction) => unknown][] = [];
    const ids = [...workload.ids, ...known.promises.map((promise) => promise.id), "missing"];
    const id = probes.pick(ids);
    const limit = probes.int(0, 4);
    const after = probes.bool(0.4) ? probes.pick(ids) : undefined;
    const afterQuery = after === undefined ? {} : { after };
    reads.push(
      [`promise(${id})`, (tx) => tx.promise(id)],
      [`task(${id})`, (tx) => tx.task(id)],
      [`callbacks(${id}) / listeners(${id})`, (tx) => [tx.callbacks(id), tx.listeners(id)]],
      [
        "schedule(…)",
        (tx) =>
          ["s1", "s2", "s3", ...known.schedules.map((schedule) => schedule.id)].map((s) => tx.schedule(s)),
      ],
      ["promisesInBranch(…)", (tx) => ["r1", "r2", "none"].map((branch) => tx.promisesInBranch(branch))],
    );
    const idPrefix = probes.pick([undefined, "", "a", "a.", "é", "🙂", "b.", "zz"]);
    const states = probes.bool(0.4)
      ? probes.shuffle(["pending", "resolved", "rejected_timedout"] as const).slice(0, probes.int(0, 3))
      : undefined;
    const tags = probes.pick<Record<string, string> | undefined>([
      undefined,
      {},
      { env: "prod" },
      { "resonate:branch": "r1", env: "dev" },
    ]);
    const promiseQuery = {
      limit,
      ...afterQuery,
      ...(idPrefix !== undefined && { idPrefix }),
      ...(states !== undefined && { states }),
      ...(tags !== undefined && { tags }),
    };
    reads.push([`searchPromises(${JSON.stringify(promiseQuery)})`, (tx) => tx.searchPromises(promiseQuery)]);
    const taskStates = probes.bool(0.5)
      ? probes
          .shuffle(["pending", "acquired", "suspended", "halted", "fulfilled"] as const)
          .slice(0, probes.int(0, 2))
      : undefined;
    const taskQuery = { limit, ...afterQuery, ...(taskStates !== undefined && { states: taskStates }) };
    reads.push([`searchTasks(${JSON.stringify(taskQuery)})`, (tx) => tx.searchTasks(taskQuery)]);
    const scheduleQuery = { limit, ...afterQuery, ...(tags !== undefined && { tags }) };
    reads.push([
      `searchSchedules(${JSON.stringify(scheduleQuery)})`,
      (tx) => tx.searchSchedules(scheduleQuery),
    ]);
    const dueAt = clock + probes.int(0, 20_000);
    const dueLimit = probes.int(0, 3);
    reads.push([`due(${dueAt}, ${dueLimit})`, (tx) => tx.due(dueAt, dueLimit)]);
    const keys = [...known.outbox.map((entry) => entry.key), "execute:missing"];
    const key = probes.pick(keys);
    reads.push([`outboxEntry(${key})`, (tx) => tx.outboxEntry(key)]);
    const addressPrefixes = probes.pick([
      undefined,
      [],
      ["poll://any@g"],
      ["poll://uni@g/w1", "poll://any@g/w1"],
      ["http://", "w"],
      [""],
    ]);
    const outboxAfter = probes.bool(0.4) ? probes.pick(keys) : undefined;
    const outboxQuery = {
      limit,
      ...(outboxAfter !== undefined && { after: outboxAfter }),
      ...(addressPrefixes !== undefined && { addressPrefixes }),
    };
    reads.push([`outbox(${JSON.stringify(outboxQuery)})`, (tx) => tx.outbox(outboxQuery)]);
    const someIds = probes.shuffle(ids).slice(0, probes.int(0, 4));
    const settledBefore = clock - probes.pick([0, 1000, 100_000]);
    const settledAfter = probes.bool(0.4)
      ? { settledAt: clock - probes.int(0, 20_000), id: probes.pick(ids) }
      : undefined;
    const settledQuery = {
      before: settledBefore,
      limit,
      ...(settledAfter !== undefined && { after: settledAfter }),
    };
    reads.push(
      [`settledPromises(${JSON.stringify(settledQuery)})`, (tx) => tx.settledPromises(settledQuery)],
      [
        `promisesById / tasksById / callbacksByAwaiter of ${JSON.stringify(someIds)}`,
        (tx) => [tx.promisesById(someIds), tx.tasksById(someIds), tx.callbacksByAwaiter(someIds)],
      ],
    );
    counters.operations.probes += reads.length;
    described = "probes";
    // One transaction per store for all of them; the diff names the probe that differs.
    await everywhere("probes", (tx) => Object.fromEntries(reads.map(([what, read]) => [what, read(tx)])));
  }

  async function reopen(): Promise<void> {
    counters.operations.reopens += 1;
    for (const candidate of candidates) {
      if (candidate.reopen === undefined) continue;
      await candidate.store.close();
      candidate.store = await candidate.reopen();
    }
  }
}

/** The command that replays a seed, printed with every failure. */
export function replayCommand(seed: number, steps: number): string {
  return `PLEDGE_DIFFERENTIAL_SEEDS=${seed} PLEDGE_DIFFERENTIAL_STEPS=${steps} npx vitest run test/differential`;
}
