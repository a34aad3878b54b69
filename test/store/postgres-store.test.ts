/**
 * The PostgreSQL store: the shared suite, each test on a fresh schema, then what
 * only this store promises: replay across read misses, retry on serialization
 * conflicts, migrations under concurrency, schema versions, unreachable servers.
 * Without a reachable PostgreSQL these tests skip loudly (fail under CI=true).
 */
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { requestReads } from "../../src/core/read-hints.js";
import { COLLECT_LIMIT, collect } from "../../src/core/retention.js";
import { type ShellRequestKind, step } from "../../src/core/step.js";
import { AssertionError } from "../../src/lib/assert.js";
import { TAG } from "../../src/protocol/records.js";
import type { Request } from "../../src/protocol/requests.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { MIGRATIONS } from "../../src/store/postgres/migrations.js";
import { pipeline } from "../../src/store/postgres/pipeline.js";
import { openPostgresStore, type PostgresStore } from "../../src/store/postgres/postgres-store.js";
import {
  type Store,
  StoreSchemaError,
  type StoreTransaction,
  StoreUnavailableError,
} from "../../src/store/store.js";
import {
  dropPostgresStore,
  dropSchema,
  freshSchema,
  openFreshPostgresStore,
  POSTGRES_URL,
  requirePostgres,
} from "../differential/postgres.js";
import {
  changesOf,
  describeStore,
  executeFixture,
  promiseFixture,
  scheduleFixture,
  taskFixture,
} from "./store-suite.js";

if (requirePostgres("the PostgreSQL store tests")) {
  describeStore(
    "postgres",
    () => openFreshPostgresStore(),
    (store) => dropPostgresStore(store as PostgresStore),
  );

  describe("postgres store", () => {
    const opened: PostgresStore[] = [];
    const open = async (options: { conflictAttempts?: number } = {}) => {
      const store = await openFreshPostgresStore(options);
      opened.push(store);
      return store;
    };
    afterAll(async () => {
      for (const store of opened) await dropPostgresStore(store);
    });

    it("a batch whose steps read what earlier steps wrote runs by replay and reads its own writes", async () => {
      const store = await open();
      await store.transaction((tx) => tx.apply(changesOf({ promises: [promiseFixture("a")] })));
      const passesBefore = store.stats.passes;
      const seen = await store.transaction((tx) => {
        const reads: unknown[] = [];
        for (const id of ["a", "b", "c"]) {
          reads.push(tx.promise(id)?.state);
          tx.apply(changesOf({ promises: [promiseFixture(id, { state: "resolved", settledAt: 1 })] }));
          reads.push(tx.promise(id)?.state);
          reads.push(tx.searchPromises({ limit: 10 }).map((promise) => promise.id));
        }
        return reads;
      });
      expect(seen).toEqual([
        "pending",
        "resolved",
        ["a"],
        undefined,
        "resolved",
        ["a", "b"],
        undefined,
        "resolved",
        ["a", "b", "c"],
      ]);
      expect(store.stats.passes - passesBefore).toBeGreaterThan(1);
      expect(await store.transaction((tx) => tx.searchPromises({ limit: 10 }).map((p) => p.state))).toEqual([
        "resolved",
        "resolved",
        "resolved",
      ]);
    });

    it("reads of what the batch itself wrote, or read before and did not change, need no fetch", async () => {
      const store = await open();
      const fetchesBefore = store.stats.fetches;
      const seen = await store.transaction((tx) => {
        const before = tx.promise("a"); // the one miss
        tx.apply(changesOf({ tasks: [taskFixture("t")] }));
        tx.apply(
          changesOf({
            promises: [promiseFixture("a")],
            listeners: new Map([["a", ["http://b", "http://a"]]]),
          }),
        );
        return [before, tx.promise("a")?.id, tx.task("t")?.state, tx.listeners("a")];
      });
      expect(seen).toEqual([undefined, "a", "suspended", ["http://a", "http://b"]]);
      expect(store.stats.fetches - fetchesBefore).toBe(1);
    });

    it("a pipeline reports the statement that failed, not the ones its failure aborted, and waits for all", async () => {
      const pool = new pg.Pool({ connectionString: POSTGRES_URL, pipeline: true, max: 1 });
      const client = await pool.connect();
      try {
        const sent = pipeline(client, [
          { text: "BEGIN" },
          { text: "SELECT 1 AS one", values: [] },
          { text: "SELECT 1 / $1::int AS broken", values: [0] },
          { text: "SELECT 2 AS two", values: [] },
        ]);
        await expect(sent).rejects.toMatchObject({ code: "22012" }); // division_by_zero
        // Every answer was read: the connection takes the next statement at once.
        await client.query("ROLLBACK");
        const [answer] = await pipeline(client, [{ text: "SELECT 3 AS three", values: [] }]);
        expect(answer?.rows).toEqual([{ three: 3 }]);
      } finally {
        client.release();
        await pool.end();
      }
    });

    it("a batch that names what it reads fetches nothing more: a new root's branch and outbox entries included", async () => {
      const store = await open();
      const mates = ["r.1", "r.2"].map((id) => promiseFixture(id, { tags: { [TAG.branch]: "r" } }));
      const entry = executeFixture("t", "poll://any@bench");
      await store.transaction((tx) => tx.apply(changesOf({ promises: mates, outbox: [entry] })));
      const fetchesBefore = store.stats.fetches;
      const seen = await store.transaction(
        (tx) => ({
          // The root itself is not stored: its branch is listed by its id.
          root: tx.promise("r"),
          branch: tx.promisesInBranch("r").map((promise) => promise.id),
          fresh: tx.promisesInBranch("q"),
          entry: tx.outboxEntry(entry.key)?.address,
          gone: tx.outboxEntry("no such key"),
        }),
        { ids: ["r", "q"], branchesOf: ["r", "q"], outboxKeys: [entry.key, "no such key"] },
      );
      expect(seen).toEqual({
        root: undefined,
        branch: ["r.1", "r.2"],
        fresh: [],
        entry: "poll://any@bench",
        gone: undefined,
      });
      expect(store.stats.fetches - fetchesBefore).toBe(0);
    });

    it("a retention batch reads by the batch: a full batch of settled promises costs a handful of fetches", async () => {
      const store = await open();
      const ids = Array.from({ length: COLLECT_LIMIT }, (_, index) => `p${String(index).padStart(3, "0")}`);
      await store.transaction((tx) =>
        tx.apply(
          changesOf({
            promises: ids.map((id, index) =>
              promiseFixture(id, {
                state: "resolved",
                settledAt: index + 1,
                tags: { [TAG.parent]: ids[index - (index % 10)] as string },
              }),
            ),
            tasks: ids.map((id) => taskFixture(id, { state: "fulfilled" })),
          }),
        ),
      );
      const fetchesBefore = store.stats.fetches;
      const result = await store.transaction((tx) => {
        const chosen = collect(tx, { settledBefore: 10_000, limit: COLLECT_LIMIT }, 10_000);
        tx.apply(chosen.changes);
        return chosen;
      });
      expect(result.changes.deletedPromises).toHaveLength(COLLECT_LIMIT);
      // settledPromises, the live-task and schedule scans, parents, tasks, callbacks, unblocks.
      expect(store.stats.fetches - fetchesBefore).toBeLessThanOrEqual(8);
    });

    it("a work function that swallows the internal miss still gets a fetched answer", async () => {
      const store = await open();
      await store.transaction((tx) => tx.apply(changesOf({ tasks: [taskFixture("t")] })));
      const state = await store.transaction((tx) => {
        try {
          return tx.task("t")?.state;
        } catch {
          return "swallowed";
        }
      });
      expect(state).toBe("suspended");
    });

    it("an error thrown by work after a write rolls the write back", async () => {
      const store = await open();
      await expect(
        store.transaction((tx) => {
          tx.apply(changesOf({ promises: [promiseFixture("gone")] }));
          tx.promise("other"); // a miss: the write is flushed before the fetch
          throw new Error("work failed");
        }),
      ).rejects.toThrow("work failed");
      expect(await store.transaction((tx) => tx.promise("gone"))).toBeUndefined();
    });

    it("a serialization conflict with a concurrent transaction is retried, and both succeed", async () => {
      const store = await open();
      const schema = schemaOf(store);
      const counter = (n: number) => promiseFixture("counter", { param: { data: String(n) } });
      await store.transaction((tx) => tx.apply(changesOf({ promises: [counter(0)] })));
      // A concurrent serializable transaction writes the counter and holds its row lock.
      const other = new pg.Client({ connectionString: POSTGRES_URL });
      await other.connect();
      try {
        await other.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
        await other.query(`UPDATE ${schema}.promises SET param = '{"data":"1"}' WHERE id = 'counter'`);
        const retriesBefore = store.stats.conflictRetries;
        // The store's batch reads n = 0 and blocks writing n + 1 until the other commits.
        const incrementing = store.transaction((tx) => {
          const n = counterOf(tx);
          tx.apply(changesOf({ promises: [counter(n + 1)] }));
          return n;
        });
        await waitFor(async () => (await lockWaiters()) > 0);
        await other.query("COMMIT");
        // First attempt: 40001 (concurrent update); the retry reads n = 1.
        expect(await incrementing).toBe(1);
        expect(store.stats.conflictRetries - retriesBefore).toBe(1);
        expect((await store.transaction((tx) => tx.promise("counter")))?.param).toEqual({ data: "2" });
      } finally {
        await other.end();
      }
    });

    it("concurrent batches from two stores over one schema all commit, none lost", async () => {
      const store = await open();
      const other = await openPostgresStore({ url: POSTGRES_URL, schema: schemaOf(store) });
      try {
        await store.transaction((tx) =>
          tx.apply(changesOf({ promises: [promiseFixture("counter", { param: { data: "0" } })] })),
        );
        const increment = (target: Store) =>
          target.transaction((tx) => {
            const n = counterOf(tx);
            tx.apply(
              changesOf({ promises: [promiseFixture("counter", { param: { data: String(n + 1) } })] }),
            );
          });
        await Promise.all(
          Array.from({ length: 16 }, (_, index) => increment(index % 2 === 0 ? store : other)),
        );
        expect((await store.transaction((tx) => tx.promise("counter")))?.param).toEqual({ data: "16" });
      } finally {
        await other.close();
      }
    });

    it("a settle that waited behind a listener registration drains it: no listener is left behind", async () => {
      // Review find: a registration writes only the listener set, not its promise, and a
      // waiter whose row was only locked goes on with its old snapshot, so the settle read
      // the set as it was before the registration and left the listener registered on a
      // settled promise. The registration now counts as a change of the promise (flush.ts).
      const store = await open();
      const schema = schemaOf(store);
      const other = await openPostgresStore({ url: POSTGRES_URL, schema });
      const P = `race-${Math.random().toString(36).slice(2, 10)}`;
      const run = (target: Store, request: Exclude<Request, { kind: ShellRequestKind }>, now: number) =>
        target.transaction((tx) => {
          const result = step(tx, request, now, { retryTimeoutMs: 5000 });
          tx.apply(result.changes);
          return result.response;
        }, requestReads(request));
      const holder = new pg.Client({ connectionString: POSTGRES_URL, options: `-c search_path=${schema}` });
      await holder.connect();
      try {
        await run(
          store,
          {
            kind: "promise.create",
            corrId: "c",
            data: { id: P, timeoutAt: 100_000, tags: { [TAG.external]: "true" } },
          },
          1,
        );
        // Both transactions take their snapshots, then queue on P's row, registration first.
        await holder.query("BEGIN");
        await holder.query("SELECT id FROM promises WHERE id = $1 FOR UPDATE", [P]);
        const holderPid = Number((await holder.query("SELECT pg_backend_pid() AS pid")).rows[0].pid);
        // Sessions queued behind the holder, directly or behind another queued one.
        const waiting = async () =>
          Number(
            (
              await query(
                "WITH RECURSIVE queued AS (" +
                  `SELECT pid FROM pg_stat_activity WHERE ${holderPid} = ANY(pg_blocking_pids(pid)) UNION ` +
                  "SELECT a.pid FROM pg_stat_activity a JOIN queued q ON q.pid = ANY(pg_blocking_pids(a.pid))) " +
                  "SELECT count(*)::int AS n FROM queued",
              )
            )[0]?.n ?? 0,
          );
        const registered = run(
          store,
          {
            kind: "promise.register_listener",
            corrId: "c",
            data: { awaited: P, address: "http://listener" },
          },
          2,
        );
        await waitFor(async () => (await waiting()) === 1);
        const settled = run(
          other,
          { kind: "promise.settle", corrId: "c", data: { id: P, state: "resolved" } },
          3,
        );
        await waitFor(async () => (await waiting()) === 2);
        await holder.query("ROLLBACK");
        const [registration, settlement] = await Promise.all([registered, settled]);
        expect(registration.status).toBe(200);
        expect(settlement.status).toBe(200);
        const after = await store.transaction((tx) => ({
          listeners: tx.listeners(P),
          unblocks: tx.outbox({ limit: 10 }).filter((entry) => entry.message.kind === "unblock"),
        }));
        expect(after.listeners).toEqual([]);
        expect(after.unblocks.map((entry) => entry.address)).toEqual(["http://listener"]);
      } finally {
        await holder.end();
        await other.close();
      }
    });

    it("an error thrown by work whose message mentions a connection is rethrown unchanged", async () => {
      const store = await open();
      const failure = new Error("connection to the worker timed out");
      await expect(
        store.transaction((tx) => {
          tx.promise("p");
          throw failure;
        }),
      ).rejects.toBe(failure);
    });

    it("work that is not a function of its reads is caught by an assertion when replayed", async () => {
      const store = await open();
      let runs = 0;
      await expect(
        store.transaction((tx) => {
          runs += 1;
          tx.apply(changesOf({ promises: [promiseFixture(`p${runs}`)] }));
          return tx.promise("q"); // a miss: the pass ends, and the replay applies something else
        }),
      ).rejects.toBeInstanceOf(AssertionError);
      expect(await store.transaction((tx) => tx.searchPromises({ limit: 10 }))).toEqual([]);
    });

    it("connections the server kills are replaced: later transactions succeed by themselves", async () => {
      const schema = freshSchema();
      const applicationName = `pledge-${schema}`;
      const store = await openPostgresStore({
        url: POSTGRES_URL,
        schema,
        pool: { application_name: applicationName },
      });
      try {
        await store.transaction((tx) => tx.apply(changesOf({ promises: [promiseFixture("kept")] })));
        const killed = await query(
          `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = '${applicationName}'`,
        );
        expect(killed.length).toBeGreaterThan(0);
        const outcomes: unknown[] = [];
        for (let attempt = 0; attempt < 3; attempt += 1) {
          try {
            outcomes.push((await store.transaction((tx) => tx.promise("kept")))?.id);
          } catch (error) {
            outcomes.push(error instanceof StoreUnavailableError ? "unavailable" : error);
          }
        }
        expect(outcomes.every((outcome) => outcome === "kept" || outcome === "unavailable")).toBe(true);
        expect(outcomes.at(-1)).toBe("kept");
      } finally {
        await store.close();
        await dropSchema(schema);
      }
    });

    it("replicas opening one fresh schema together apply each migration once", async () => {
      const schema = freshSchema();
      try {
        const stores = await Promise.all(
          Array.from({ length: 4 }, () => openPostgresStore({ url: POSTGRES_URL, schema })),
        );
        for (const store of stores) expect(store.schemaVersion).toBe(MIGRATIONS.length);
        await Promise.all(stores.map((store) => store.close()));
        const rows = await query(`SELECT version FROM ${schema}.pledge_migrations ORDER BY version`);
        expect(rows.map((row) => row.version)).toEqual(MIGRATIONS.map((migration) => migration.version));
      } finally {
        await dropSchema(schema);
      }
    });

    it("a schema newer than this build is refused with a StoreSchemaError naming both versions", async () => {
      const store = await open();
      const schema = schemaOf(store);
      await query(
        `INSERT INTO ${schema}.pledge_migrations (version, name) VALUES (${MIGRATIONS.length + 1}, 'from-the-future')`,
      );
      const opening = openPostgresStore({ url: POSTGRES_URL, schema });
      await expect(opening).rejects.toBeInstanceOf(StoreSchemaError);
      await expect(opening).rejects.toThrow(
        `has schema version ${MIGRATIONS.length + 1}, but this build of Pledge knows versions up to ${MIGRATIONS.length}`,
      );
    });

    it("NUL and U+0001 in tags, branches, addresses and outbox keys answer as in the memory store", async () => {
      const store = await open();
      const memory = new MemoryStore();
      const odd = ["x\u0000", "x\u0001", "x", "x\u0000y", "x\u0002"];
      const changes = changesOf({
        promises: odd.map((text, index) =>
          promiseFixture(`p${index}`, { tags: { [`k${text}`]: text, [TAG.branch]: text } }),
        ),
        schedules: odd.map((text, index) => scheduleFixture(`s${index}`, { promiseTags: { t: text } })),
        listeners: new Map([["p0", odd.map((text) => `http://h/${text}`)]]),
        outbox: odd.map((text, index) => ({
          ...executeFixture(`t${index}`, `poll://any@g/${text}`),
          key: `unblock:p0:notify:http://h/${text}`,
        })),
      });
      const reads = (tx: StoreTransaction) => ({
        byTag: odd.map((text) =>
          tx.searchPromises({ tags: { [`k${text}`]: text }, limit: 10 }).map((p) => p.id),
        ),
        schedulesByTag: odd.map((text) =>
          tx.searchSchedules({ tags: { t: text }, limit: 10 }).map((s) => s.id),
        ),
        branches: odd.map((text) => tx.promisesInBranch(text).map((p) => p.id)),
        listeners: tx.listeners("p0"),
        allListeners: tx.allListeners(),
        outbox: tx.outbox({ limit: 10 }),
        byPrefix: odd.map((text) =>
          tx.outbox({ addressPrefixes: [`poll://any@g/${text}`], limit: 10 }).map((e) => e.key),
        ),
        after: odd.map(
          (text) => tx.outbox({ after: `unblock:p0:notify:http://h/${text}`, limit: 10 }).length,
        ),
        entries: odd.map((text) => tx.outboxEntry(`unblock:p0:notify:http://h/${text}`)?.address),
        promises: tx.searchPromises({ limit: 10 }),
      });
      await store.transaction((tx) => tx.apply(structuredClone(changes)));
      await memory.transaction((tx) => tx.apply(structuredClone(changes)));
      expect(await store.transaction(reads)).toStrictEqual(await memory.transaction(reads));
      const deleting = changesOf({ deletedOutbox: [`unblock:p0:notify:http://h/x\u0000`] });
      await store.transaction((tx) => tx.apply(deleting));
      await memory.transaction((tx) => tx.apply(deleting));
      expect(await store.transaction(reads)).toStrictEqual(await memory.transaction(reads));
    });

    it("a hinted batch reads what an unhinted one reads, whatever the ids hold", async () => {
      // The prefetch passes the hinted ids as array parameters (reads.ts): quotes, backslashes
      // and SQL must come back as data. Branch-mates, tasks, callbacks and listeners come with them.
      const store = await open();
      const memory = new MemoryStore();
      const ids = ["o'brien", "back\\slash", "'); DROP TABLE promises; --", "\uE000🙂", "plain"];
      const changes = changesOf({
        promises: ids.map((id) => promiseFixture(id, { tags: { [TAG.branch]: "b'1" } })),
        tasks: ids.slice(0, 2).map((id) => taskFixture(id, { state: "pending", retryAt: 5 })),
        callbacks: new Map([[ids[0] as string, [ids[1] as string, ids[2] as string]]]),
        listeners: new Map([[ids[2] as string, ["http://h/'x'"]]]),
      });
      await store.transaction((tx) => tx.apply(structuredClone(changes)));
      await memory.transaction((tx) => tx.apply(structuredClone(changes)));
      const reads = (tx: StoreTransaction) =>
        [...ids, "absent"].map((id) => ({
          promise: tx.promise(id),
          task: tx.task(id),
          callbacks: tx.callbacks(id),
          listeners: tx.listeners(id),
          branch: tx.promisesInBranch("b'1").map((promise) => promise.id),
        }));
      const expected = await memory.transaction(reads);
      expect(await store.transaction(reads, { ids: [...ids, "absent"] })).toStrictEqual(expected);
      expect(await store.transaction(reads, { ids: [ids[0] as string] })).toStrictEqual(expected);
      expect(await store.transaction(reads)).toStrictEqual(expected);
    });

    it("ids order by code point, as in the memory store", async () => {
      const store = await open();
      const ids = ["b", "a", "\uE000", "🙂", "Z", "é"];
      await store.transaction((tx) => tx.apply(changesOf({ promises: ids.map((id) => promiseFixture(id)) })));
      const read = await store.transaction((tx) =>
        tx.searchPromises({ limit: 10 }).map((promise) => promise.id),
      );
      expect(read).toEqual(["Z", "a", "b", "é", "\uE000", "🙂"]);
    });

    it("an unreachable server is a StoreUnavailableError, at open and on ping", async () => {
      await expect(
        openPostgresStore({
          url: "postgres://postgres@127.0.0.1:1/test",
          pool: { connectionTimeoutMillis: 500 },
        }),
      ).rejects.toBeInstanceOf(StoreUnavailableError);
    });

    it("an exhausted pool answers StoreUnavailableError instead of hanging", async () => {
      const schema = freshSchema();
      const store = await openPostgresStore({
        url: POSTGRES_URL,
        schema,
        pool: { max: 1, connectionTimeoutMillis: 200 },
      });
      try {
        // Take the pool's one client away.
        const pool = (store as unknown as { pool: pg.Pool }).pool;
        const held = await pool.connect();
        await expect(store.transaction((tx) => tx.promise("x"))).rejects.toBeInstanceOf(
          StoreUnavailableError,
        );
        held.release();
        expect(await store.transaction((tx) => tx.promise("x"))).toBeUndefined();
      } finally {
        await store.close();
        await dropSchema(schema);
      }
    });
  });
}

/** The schema a store uses, from its pool's connection options. */
function schemaOf(store: PostgresStore): string {
  const match = /search_path=(\w+)/.exec(
    String((store as unknown as { pool: { options: { options?: string } } }).pool.options.options),
  );
  if (match?.[1] === undefined) throw new Error("store has no schema");
  return match[1];
}

async function query(sql: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

/** Sessions of the test database waiting on a lock. */
async function lockWaiters(): Promise<number> {
  const [row] = await query(
    "SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
  );
  return Number(row?.waiting ?? 0);
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function counterOf(tx: StoreTransaction): number {
  const counter = tx.promise("counter");
  if (counter === undefined) throw new Error("no counter");
  return Number(counter.param.data);
}
