/**
 * The shared store suite (STYLE.md 2): every store runs these tests and must
 * answer exactly as the memory store, the reference, does. Each test opens a
 * fresh, empty store and reads back through `transaction`, the only way in.
 * What one store alone promises (durability, locks, migrations, rollback) is
 * tested beside that store.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type Changes,
  emptyChanges,
  executeKey,
  type OutboxEntry,
  type PromiseQuery,
  type ScheduleQuery,
  type StoredPromise,
  type StoredSchedule,
  type StoredTask,
  type TaskQuery,
  unblockKey,
} from "../../src/core/state.js";
import { TAG } from "../../src/protocol/records.js";
import type { Store, StoreTransaction } from "../../src/store/store.js";
import { describeRetentionCases } from "./retention-suite.js";

export function promiseFixture(id: string, fields: Partial<StoredPromise> = {}): StoredPromise {
  return {
    id,
    state: "pending",
    param: {},
    value: {},
    tags: {},
    timeoutAt: 10_000,
    createdAt: 0,
    armed: false,
    ...fields,
  };
}

export function taskFixture(id: string, fields: Partial<StoredTask> = {}): StoredTask {
  return { id, state: "suspended", version: 1, resumeIds: [], ...fields };
}

export function scheduleFixture(id: string, fields: Partial<StoredSchedule> = {}): StoredSchedule {
  return {
    id,
    cron: "*/5 * * * *",
    promiseId: `${id}.{{.timestamp}}`,
    promiseTimeout: 60_000,
    promiseParam: {},
    promiseTags: {},
    createdAt: 0,
    nextRunAt: 300_000,
    ...fields,
  };
}

export function executeFixture(taskId: string, address: string, createdAt = 0): OutboxEntry {
  return {
    key: executeKey(taskId),
    address,
    message: {
      kind: "execute",
      head: { serverUrl: "http://127.0.0.1:8001" },
      data: { task: { id: taskId, version: 1 } },
    },
    createdAt,
  };
}

export function changesOf(changes: Partial<Changes>): Changes {
  return { ...emptyChanges(), ...changes };
}

/** Ids in the order JavaScript sorts strings (UTF-16 code units), the memory store's order. */
const sorted = (ids: readonly string[]) => [...ids].sort();

export function describeStore(
  name: string,
  open: () => Promise<Store>,
  close: (store: Store) => Promise<void> = (store) => store.close(),
): void {
  describe(`${name} store`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await close(store);
    });

    const write = (changes: Partial<Changes>) => store.transaction((tx) => tx.apply(changesOf(changes)));
    const read = <T>(reader: (tx: StoreTransaction) => T) => store.transaction(reader);

    describe("counts by state", () => {
      it("counts promises and tasks by stored state, and an empty store as no states", async () => {
        expect(await store.countByState?.()).toStrictEqual({ promises: {}, tasks: {} });
        await write({
          promises: [
            promiseFixture("c1"),
            promiseFixture("c2"),
            promiseFixture("c3", { state: "resolved", settledAt: 5 }),
          ],
          tasks: [taskFixture("c1"), taskFixture("c2", { state: "fulfilled" })],
        });
        expect(await store.countByState?.()).toStrictEqual({
          promises: { pending: 2, resolved: 1 },
          tasks: { suspended: 1, fulfilled: 1 },
        });
      });
    });

    describe("promises", () => {
      it("a promise never written reads as undefined", async () => {
        expect(await read((tx) => tx.promise("missing"))).toBeUndefined();
      });

      it("a pending promise reads back exactly as written, without a settledAt key", async () => {
        const written = promiseFixture("p1", {
          param: { headers: { "content-type": "application/json" }, data: "eyJhIjoxfQ==" },
          tags: { [TAG.target]: "poll://any@default", [TAG.branch]: "p1" },
          timeoutAt: 1_700_000_060_000,
          createdAt: 1_700_000_000_000,
          armed: true,
        });
        await write({ promises: [written] });
        const stored = await read((tx) => tx.promise("p1"));
        expect(stored).toStrictEqual(written);
        expect(stored && Object.hasOwn(stored, "settledAt")).toBe(false);
      });

      it("a settled promise reads back with its value and settledAt", async () => {
        const written = promiseFixture("p1", {
          state: "resolved",
          value: { headers: {}, data: "ok" },
          settledAt: 5_000,
        });
        await write({ promises: [written] });
        expect(await read((tx) => tx.promise("p1"))).toStrictEqual(written);
      });

      it("writing a promise again replaces every field, dropping those now absent", async () => {
        await write({
          promises: [promiseFixture("p1", { state: "resolved", settledAt: 5, tags: { a: "1" } })],
        });
        const replacement = promiseFixture("p1", { state: "pending", tags: { b: "2" }, armed: true });
        await write({ promises: [replacement] });
        expect(await read((tx) => tx.promise("p1"))).toStrictEqual(replacement);
      });

      it("tags and values keep unusual keys and strings exactly", async () => {
        const written = promiseFixture("p1", {
          tags: {
            'a"b': "quote",
            "a.b": "dot",
            $: "",
            "": "empty key",
            ключ: "значение",
            "a b": "🙂",
            "123": "n",
          },
          param: { headers: { "x-y": "a\nb\u0001" }, data: "" },
          value: { data: "\\u0000 not an escape" },
        });
        await write({ promises: [written] });
        expect(await read((tx) => tx.promise("p1"))).toStrictEqual(written);
      });

      it("a read returns a copy that the caller may change", async () => {
        await write({ promises: [promiseFixture("p1", { tags: { a: "1" } })] });
        await read((tx) => {
          const first = tx.promise("p1");
          if (first) first.tags.a = "changed";
        });
        expect((await read((tx) => tx.promise("p1")))?.tags).toStrictEqual({ a: "1" });
      });

      it("later reads in a transaction see that transaction's writes", async () => {
        const seen = await store.transaction((tx) => {
          const before = tx.promise("p1");
          tx.apply(changesOf({ promises: [promiseFixture("p1")] }));
          return { before, after: tx.promise("p1") };
        });
        expect(seen).toStrictEqual({ before: undefined, after: promiseFixture("p1") });
      });
    });

    describe("tasks", () => {
      it("a task never written reads as undefined", async () => {
        expect(await read((tx) => tx.task("missing"))).toBeUndefined();
      });

      it("a pending task reads back with retryAt and no lease fields", async () => {
        const written = taskFixture("t1", { state: "pending", version: 3, retryAt: 7_000 });
        await write({ tasks: [written] });
        const stored = await read((tx) => tx.task("t1"));
        expect(stored).toStrictEqual(written);
        expect(stored && ["pid", "ttl", "expiresAt"].filter((key) => Object.hasOwn(stored, key))).toEqual([]);
      });

      it("an acquired task reads back with pid, ttl and expiresAt and no retryAt", async () => {
        const written = taskFixture("t1", {
          state: "acquired",
          pid: "worker-1",
          ttl: 30_000,
          expiresAt: 31_000,
        });
        await write({ tasks: [written] });
        const stored = await read((tx) => tx.task("t1"));
        expect(stored).toStrictEqual(written);
        expect(stored && Object.hasOwn(stored, "retryAt")).toBe(false);
      });

      it("resumeIds keep their order", async () => {
        const written = taskFixture("t1", { state: "pending", retryAt: 1, resumeIds: ["z", "a", "m"] });
        await write({ tasks: [written] });
        expect((await read((tx) => tx.task("t1")))?.resumeIds).toEqual(["z", "a", "m"]);
      });

      it("writing a task again replaces it whole", async () => {
        await write({ tasks: [taskFixture("t1", { state: "acquired", pid: "w", ttl: 5, expiresAt: 6 })] });
        const replacement = taskFixture("t1", { state: "suspended", version: 2 });
        await write({ tasks: [replacement] });
        expect(await read((tx) => tx.task("t1"))).toStrictEqual(replacement);
      });
    });

    describe("schedules", () => {
      it("a schedule reads back as written, with lastRunAt only when set", async () => {
        const fresh = scheduleFixture("s1", {
          promiseTags: { [TAG.schedule]: "s1" },
          promiseParam: { data: "x" },
        });
        const ran = scheduleFixture("s2", { lastRunAt: 300_000, nextRunAt: 600_000 });
        await write({ schedules: [fresh, ran] });
        expect(await read((tx) => [tx.schedule("s1"), tx.schedule("s2"), tx.schedule("s3")])).toStrictEqual([
          fresh,
          ran,
          undefined,
        ]);
      });

      it("a deleted schedule is gone, and deleting an unknown one changes nothing", async () => {
        await write({ schedules: [scheduleFixture("s1"), scheduleFixture("s2")] });
        await write({ deletedSchedules: ["s1", "unknown"] });
        expect(await read((tx) => [tx.schedule("s1"), tx.schedule("s2")])).toStrictEqual([
          undefined,
          scheduleFixture("s2"),
        ]);
      });

      it("a schedule written and deleted in one change is gone", async () => {
        await write({ schedules: [scheduleFixture("s1")], deletedSchedules: ["s1"] });
        expect(await read((tx) => tx.schedule("s1"))).toBeUndefined();
      });
    });

    describe("callbacks and listeners", () => {
      it("a promise nobody awaits has no callbacks and no listeners", async () => {
        expect(
          await read((tx) => [tx.callbacks("p"), tx.listeners("p"), tx.allCallbacks(), tx.allListeners()]),
        ).toEqual([[], [], [], []]);
      });

      it("callbacks and listeners read back sorted, whatever order they were written in", async () => {
        await write({
          callbacks: new Map([["p", ["c", "a", "b"]]]),
          listeners: new Map([["p", ["poll://uni@g/2", "http://x", "poll://uni@g/1"]]]),
        });
        expect(await read((tx) => [tx.callbacks("p"), tx.listeners("p")])).toEqual([
          ["a", "b", "c"],
          ["http://x", "poll://uni@g/1", "poll://uni@g/2"],
        ]);
      });

      it("a new set replaces the old one for that awaited promise only", async () => {
        await write({
          callbacks: new Map([
            ["p", ["a", "b"]],
            ["q", ["x"]],
          ]),
          listeners: new Map([
            ["p", ["one"]],
            ["q", ["two"]],
          ]),
        });
        await write({ callbacks: new Map([["p", ["c"]]]), listeners: new Map([["p", ["three", "four"]]]) });
        expect(
          await read((tx) => [tx.callbacks("p"), tx.callbacks("q"), tx.listeners("p"), tx.listeners("q")]),
        ).toEqual([["c"], ["x"], ["four", "three"], ["two"]]);
      });

      it("an empty set removes every callback or listener of that awaited promise", async () => {
        await write({ callbacks: new Map([["p", ["a"]]]), listeners: new Map([["p", ["one"]]]) });
        await write({ callbacks: new Map([["p", []]]), listeners: new Map([["p", []]]) });
        expect(
          await read((tx) => [tx.callbacks("p"), tx.listeners("p"), tx.allCallbacks(), tx.allListeners()]),
        ).toEqual([[], [], [], []]);
      });

      it("allCallbacks and allListeners list every pair, sorted by awaited then by the other side", async () => {
        await write({
          callbacks: new Map([
            ["q", ["b", "a"]],
            ["p", ["z"]],
          ]),
          listeners: new Map([
            ["q", ["y"]],
            ["p", ["x2", "x1"]],
          ]),
        });
        expect(await read((tx) => tx.allCallbacks())).toStrictEqual([
          { awaited: "p", awaiter: "z" },
          { awaited: "q", awaiter: "a" },
          { awaited: "q", awaiter: "b" },
        ]);
        expect(await read((tx) => tx.allListeners())).toStrictEqual([
          { awaited: "p", address: "x1" },
          { awaited: "p", address: "x2" },
          { awaited: "q", address: "y" },
        ]);
      });
    });

    describe("reset", () => {
      it("reset empties everything before the rest of the change applies", async () => {
        await write({
          promises: [promiseFixture("old", { armed: true })],
          tasks: [taskFixture("old", { state: "pending", retryAt: 1 })],
          schedules: [scheduleFixture("old")],
          callbacks: new Map([["old", ["a"]]]),
          listeners: new Map([["old", ["x"]]]),
          outbox: [executeFixture("old", "poll://any@g")],
        });
        await write({ reset: true, promises: [promiseFixture("new")] });
        expect(
          await read((tx) => ({
            promises: tx.searchPromises({ limit: 10 }),
            tasks: tx.searchTasks({ limit: 10 }),
            schedules: tx.searchSchedules({ limit: 10 }),
            callbacks: tx.allCallbacks(),
            listeners: tx.allListeners(),
            outbox: tx.outbox({ limit: 10 }),
            next: tx.nextDueAt(),
          })),
        ).toStrictEqual({
          promises: [promiseFixture("new")],
          tasks: [],
          schedules: [],
          callbacks: [],
          listeners: [],
          outbox: [],
          next: undefined,
        });
      });
    });

    describe("outbox", () => {
      const unblock: OutboxEntry = {
        key: unblockKey("p1", "http://listener"),
        address: "http://listener",
        message: {
          kind: "unblock",
          head: {},
          data: { promise: promiseFixture("p1", { state: "resolved", settledAt: 3 }) },
        },
        createdAt: 3,
      };

      it("queued messages read back exactly as written", async () => {
        const execute = executeFixture("t1", "poll://any@default", 2);
        await write({ outbox: [execute, unblock] });
        expect(await read((tx) => tx.outbox({ limit: 10 }))).toStrictEqual([execute, unblock]);
      });

      it("one queued message reads back by its key, and a missing key reads as undefined", async () => {
        const execute = executeFixture("t1", "poll://any@default", 2);
        await write({ outbox: [execute, unblock] });
        expect(await read((tx) => tx.outboxEntry(unblock.key))).toStrictEqual(unblock);
        expect(await read((tx) => tx.outboxEntry(executeKey("t1")))).toStrictEqual(execute);
        expect(await read((tx) => tx.outboxEntry("missing"))).toBeUndefined();
      });

      it("a message with a key already queued replaces the old one", async () => {
        await write({ outbox: [executeFixture("t1", "poll://any@a", 1)] });
        await write({ outbox: [executeFixture("t1", "poll://any@b", 2)] });
        expect(await read((tx) => tx.outbox({ limit: 10 }))).toStrictEqual([
          executeFixture("t1", "poll://any@b", 2),
        ]);
      });

      it("deleting a key removes its message, and unknown keys are ignored", async () => {
        await write({ outbox: [executeFixture("t1", "a"), executeFixture("t2", "a")] });
        await write({ deletedOutbox: [executeKey("t1"), "unknown"] });
        expect(await read((tx) => tx.outbox({ limit: 10 }))).toStrictEqual([executeFixture("t2", "a")]);
      });

      it("deletes apply before writes, so a key deleted and written in one change stays queued", async () => {
        await write({ outbox: [executeFixture("t1", "a", 1)] });
        await write({ deletedOutbox: [executeKey("t1")], outbox: [executeFixture("t1", "b", 2)] });
        expect(await read((tx) => tx.outbox({ limit: 10 }))).toStrictEqual([executeFixture("t1", "b", 2)]);
      });

      it("messages come sorted by key, strictly after the given key, at most limit", async () => {
        const ids = ["t3", "t1", "t10", "t2", "T9"];
        await write({ outbox: ids.map((id) => executeFixture(id, "a")) });
        const keys = sorted(ids.map(executeKey));
        const keysOf = (entries: OutboxEntry[]) => entries.map((entry) => entry.key);
        expect(keysOf(await read((tx) => tx.outbox({ limit: 10 })))).toEqual(keys);
        expect(keysOf(await read((tx) => tx.outbox({ limit: 2 })))).toEqual(keys.slice(0, 2));
        expect(keysOf(await read((tx) => tx.outbox({ after: keys[1], limit: 2 })))).toEqual(keys.slice(2, 4));
        expect(keysOf(await read((tx) => tx.outbox({ after: keys[4], limit: 2 })))).toEqual([]);
        expect(keysOf(await read((tx) => tx.outbox({ limit: 0 })))).toEqual([]);
      });

      it("address prefixes keep messages whose address starts with any of them, taken literally", async () => {
        const addresses = {
          t1: "poll://any@g1",
          t2: "poll://any@g2",
          t3: "http://worker",
          t4: "poll://uni@g1/p1",
          t5: "poll%//x",
          t6: "poll_//x",
        };
        await write({
          outbox: Object.entries(addresses).map(([id, address]) => executeFixture(id, address)),
        });
        const tasksFor = async (addressPrefixes: string[] | undefined, after?: string) =>
          (await read((tx) => tx.outbox({ addressPrefixes, after, limit: 10 }))).map((entry) =>
            entry.key.slice(8),
          );
        expect(await tasksFor(["poll://any@"])).toEqual(["t1", "t2"]);
        expect(await tasksFor(["poll://any@g1", "http://"])).toEqual(["t1", "t3"]);
        expect(await tasksFor(["poll://any@", "poll://any@g"])).toEqual(["t1", "t2"]);
        expect(await tasksFor(["poll%"])).toEqual(["t5"]);
        expect(await tasksFor(["poll_"])).toEqual(["t6"]);
        expect(await tasksFor(["poll://any@g1"])).toEqual(["t1"]);
        expect(await tasksFor(["poll://"], executeKey("t1"))).toEqual(["t2", "t4"]);
        expect(await tasksFor([""])).toEqual(["t1", "t2", "t3", "t4", "t5", "t6"]);
        expect(await tasksFor([])).toEqual([]);
        expect(await tasksFor(undefined)).toEqual(["t1", "t2", "t3", "t4", "t5", "t6"]);
      });
    });

    describe("searchPromises", () => {
      const ids = [
        "b",
        "a-1",
        "A",
        "a",
        "a0",
        "a/b",
        "a.b",
        "_x",
        "~",
        "a%b",
        "a_b",
        "axb",
        "é2",
        "é1",
        "日本",
        "e",
      ];

      it("without filters, promises come sorted by id as JavaScript sorts strings, at most limit", async () => {
        await write({ promises: ids.map((id) => promiseFixture(id)) });
        const found = await read((tx) => tx.searchPromises({ limit: 100 }));
        expect(found.map((promise) => promise.id)).toEqual(sorted(ids));
        expect(found[0]).toStrictEqual(promiseFixture(sorted(ids)[0] ?? ""));
        expect((await read((tx) => tx.searchPromises({ limit: 3 }))).map((promise) => promise.id)).toEqual(
          sorted(ids).slice(0, 3),
        );
        expect(await read((tx) => tx.searchPromises({ limit: 0 }))).toEqual([]);
      });

      it("an id prefix keeps ids that start with it, taken literally, the prefix itself included", async () => {
        await write({ promises: ids.map((id) => promiseFixture(id)) });
        const search = async (idPrefix: string) =>
          (await read((tx) => tx.searchPromises({ idPrefix, limit: 100 }))).map((promise) => promise.id);
        expect(await search("a")).toEqual(sorted(ids.filter((id) => id.startsWith("a"))));
        expect(await search("a%")).toEqual(["a%b"]);
        expect(await search("a_")).toEqual(["a_b"]);
        expect(await search("é")).toEqual(["é1", "é2"]);
        expect(await search("b")).toEqual(["b"]);
        expect(await search("zz")).toEqual([]);
        expect(await search("")).toEqual(sorted(ids));
      });

      it("an id prefix ending in the greatest characters still finds every match", async () => {
        const edgeIds = ["x\uffff", "x\uffffa", "x\u{10ffff}", "x\u{10ffff}\u{10ffff}z", "y"];
        await write({ promises: edgeIds.map((id) => promiseFixture(id)) });
        const search = async (idPrefix: string) =>
          new Set(
            (await read((tx) => tx.searchPromises({ idPrefix, limit: 100 }))).map((promise) => promise.id),
          );
        expect(await search("x\uffff")).toEqual(new Set(["x\uffff", "x\uffffa"]));
        expect(await search("x\u{10ffff}")).toEqual(new Set(["x\u{10ffff}", "x\u{10ffff}\u{10ffff}z"]));
        expect(await search("x")).toEqual(new Set(edgeIds.slice(0, 4)));
      });

      it("states keep promises in any listed state, and an empty list keeps none", async () => {
        await write({
          promises: [
            promiseFixture("p1"),
            promiseFixture("p2", { state: "resolved", settledAt: 1 }),
            promiseFixture("p3", { state: "rejected_timedout", settledAt: 2 }),
            promiseFixture("p4", { state: "rejected_canceled", settledAt: 3 }),
          ],
        });
        const search = async (states: NonNullable<PromiseQuery["states"]>) =>
          (await read((tx) => tx.searchPromises({ states, limit: 10 }))).map((promise) => promise.id);
        expect(await search(["pending"])).toEqual(["p1"]);
        expect(await search(["resolved", "rejected_timedout"])).toEqual(["p2", "p3"]);
        expect(await search(["rejected"])).toEqual([]);
        expect(await search([])).toEqual([]);
      });

      it("tags keep promises carrying every listed tag with exactly that value", async () => {
        await write({
          promises: [
            promiseFixture("p1", { tags: { kind: "a", env: "prod" } }),
            promiseFixture("p2", { tags: { kind: "a" } }),
            promiseFixture("p3", { tags: { kind: "b", env: "prod" } }),
            promiseFixture("p4", { tags: { kind: "", 'we"ird': "v.1" } }),
            promiseFixture("p5"),
          ],
        });
        const search = async (tags: Record<string, string>) =>
          (await read((tx) => tx.searchPromises({ tags, limit: 10 }))).map((promise) => promise.id);
        expect(await search({ kind: "a" })).toEqual(["p1", "p2"]);
        expect(await search({ kind: "a", env: "prod" })).toEqual(["p1"]);
        expect(await search({ env: "prod" })).toEqual(["p1", "p3"]);
        expect(await search({ kind: "" })).toEqual(["p4"]);
        expect(await search({ 'we"ird': "v.1" })).toEqual(["p4"]);
        expect(await search({ kind: "A" })).toEqual([]);
        expect(await search({ missing: "" })).toEqual([]);
        expect(await search({})).toEqual(["p1", "p2", "p3", "p4", "p5"]);
      });

      it("after keeps ids strictly greater, so pages of limit walk every promise once", async () => {
        await write({ promises: ids.map((id) => promiseFixture(id)) });
        const walked: string[] = [];
        let after: string | undefined;
        for (;;) {
          const cursor = after;
          const page = await read((tx) => tx.searchPromises({ after: cursor, limit: 3 }));
          if (page.length === 0) break;
          walked.push(...page.map((promise) => promise.id));
          after = page.at(-1)?.id;
        }
        expect(walked).toEqual(sorted(ids));
        expect(await read((tx) => tx.searchPromises({ after: "~", limit: 3 }))).toEqual(
          sorted(ids)
            .filter((id) => id > "~")
            .map((id) => promiseFixture(id)),
        );
      });

      it("filters combine", async () => {
        await write({
          promises: [
            promiseFixture("job/1", { tags: { kind: "a" } }),
            promiseFixture("job/2", { tags: { kind: "a" }, state: "resolved", settledAt: 1 }),
            promiseFixture("job/3", { tags: { kind: "a" } }),
            promiseFixture("job/4", { tags: { kind: "b" } }),
            promiseFixture("other/5", { tags: { kind: "a" } }),
          ],
        });
        const found = await read((tx) =>
          tx.searchPromises({
            idPrefix: "job/",
            states: ["pending"],
            tags: { kind: "a" },
            after: "job/1",
            limit: 5,
          }),
        );
        expect(found.map((promise) => promise.id)).toEqual(["job/3"]);
      });
    });

    describe("searchTasks and searchSchedules", () => {
      it("tasks come sorted by id, filtered by state, after a cursor, at most limit", async () => {
        await write({
          tasks: [
            taskFixture("t3", { state: "pending", retryAt: 1 }),
            taskFixture("t1", { state: "acquired", pid: "w", ttl: 1, expiresAt: 2 }),
            taskFixture("t2"),
            taskFixture("t4", { state: "fulfilled" }),
          ],
        });
        const search = async (query: Omit<TaskQuery, "limit">, limit = 10) =>
          (await read((tx) => tx.searchTasks({ ...query, limit }))).map((task) => task.id);
        expect(await search({})).toEqual(["t1", "t2", "t3", "t4"]);
        expect(await search({ states: ["pending", "acquired"] })).toEqual(["t1", "t3"]);
        expect(await search({ states: [] })).toEqual([]);
        expect(await search({ after: "t2" })).toEqual(["t3", "t4"]);
        expect(await search({ states: ["suspended", "fulfilled"], after: "t2" })).toEqual(["t4"]);
        expect(await search({}, 2)).toEqual(["t1", "t2"]);
        expect(await read((tx) => tx.searchTasks({ states: ["acquired"], limit: 1 }))).toStrictEqual([
          taskFixture("t1", { state: "acquired", pid: "w", ttl: 1, expiresAt: 2 }),
        ]);
      });

      it("schedules come sorted by id, filtered by their promise tags, after a cursor, at most limit", async () => {
        await write({
          schedules: [
            scheduleFixture("s2", { promiseTags: { team: "a", env: "prod" } }),
            scheduleFixture("s1", { promiseTags: { team: "a" } }),
            scheduleFixture("s3", { promiseTags: { team: "b" } }),
          ],
        });
        const search = async (query: Omit<ScheduleQuery, "limit">, limit = 10) =>
          (await read((tx) => tx.searchSchedules({ ...query, limit }))).map((schedule) => schedule.id);
        expect(await search({})).toEqual(["s1", "s2", "s3"]);
        expect(await search({ tags: { team: "a" } })).toEqual(["s1", "s2"]);
        expect(await search({ tags: { team: "a", env: "prod" } })).toEqual(["s2"]);
        expect(await search({ tags: {} })).toEqual(["s1", "s2", "s3"]);
        expect(await search({ after: "s1" })).toEqual(["s2", "s3"]);
        expect(await search({ tags: { team: "a" }, after: "s1" })).toEqual(["s2"]);
        expect(await search({}, 1)).toEqual(["s1"]);
      });
    });

    describe("promisesInBranch", () => {
      it("returns the promises whose branch tag equals the branch, sorted by id", async () => {
        await write({
          promises: [
            promiseFixture("root.2", { tags: { [TAG.branch]: "root" } }),
            promiseFixture("root", { tags: { [TAG.branch]: "root" } }),
            promiseFixture("root.1", { tags: { [TAG.branch]: "root", other: "x" } }),
            promiseFixture("rooted", { tags: { [TAG.branch]: "rooted" } }),
            promiseFixture("loose", { tags: { [TAG.parent]: "root" } }),
          ],
        });
        const branch = await read((tx) => tx.promisesInBranch("root"));
        expect(branch).toStrictEqual([
          promiseFixture("root", { tags: { [TAG.branch]: "root" } }),
          promiseFixture("root.1", { tags: { [TAG.branch]: "root", other: "x" } }),
          promiseFixture("root.2", { tags: { [TAG.branch]: "root" } }),
        ]);
        expect(await read((tx) => tx.promisesInBranch("none"))).toEqual([]);
      });

      it("a promise rewritten with another branch tag moves to that branch", async () => {
        await write({ promises: [promiseFixture("p", { tags: { [TAG.branch]: "one" } })] });
        await write({ promises: [promiseFixture("p", { tags: { [TAG.branch]: "two" } })] });
        expect(
          await read((tx) => [tx.promisesInBranch("one").length, tx.promisesInBranch("two").length]),
        ).toEqual([0, 1]);
        await write({ promises: [promiseFixture("p")] });
        expect(await read((tx) => tx.promisesInBranch("two"))).toEqual([]);
      });
    });

    describe("due and nextDueAt", () => {
      it("due lists armed promises whose timeoutAt has come, earliest first, then by id", async () => {
        await write({
          promises: [
            promiseFixture("late", { armed: true, timeoutAt: 300 }),
            promiseFixture("b", { armed: true, timeoutAt: 100 }),
            promiseFixture("a", { armed: true, timeoutAt: 100 }),
            promiseFixture("early", { armed: true, timeoutAt: 50 }),
            promiseFixture("unarmed", { armed: false, timeoutAt: 10 }),
            promiseFixture("future", { armed: true, timeoutAt: 301 }),
          ],
        });
        expect((await read((tx) => tx.due(300, 10))).promiseIds).toEqual(["early", "a", "b", "late"]);
        expect((await read((tx) => tx.due(99, 10))).promiseIds).toEqual(["early"]);
      });

      it("due lists tasks by retryAt, or expiresAt when there is none, earliest first, then by id", async () => {
        await write({
          tasks: [
            taskFixture("retry-late", { state: "pending", retryAt: 200 }),
            taskFixture("lease-b", { state: "acquired", pid: "w", ttl: 1, expiresAt: 100 }),
            taskFixture("retry-a", { state: "pending", retryAt: 100 }),
            taskFixture("both", { state: "pending", retryAt: 150, expiresAt: 1 }),
            taskFixture("neither"),
            taskFixture("future", { state: "pending", retryAt: 201 }),
          ],
        });
        expect((await read((tx) => tx.due(200, 10))).taskIds).toEqual([
          "lease-b",
          "retry-a",
          "both",
          "retry-late",
        ]);
        expect((await read((tx) => tx.due(149, 10))).taskIds).toEqual(["lease-b", "retry-a"]);
      });

      it("due lists schedules whose nextRunAt has come, earliest first, then by id", async () => {
        await write({
          schedules: [
            scheduleFixture("s-late", { nextRunAt: 300 }),
            scheduleFixture("s-b", { nextRunAt: 100 }),
            scheduleFixture("s-a", { nextRunAt: 100 }),
            scheduleFixture("s-future", { nextRunAt: 301 }),
          ],
        });
        expect(await read((tx) => tx.due(300, 10))).toStrictEqual({
          promiseIds: [],
          taskIds: [],
          scheduleIds: ["s-a", "s-b", "s-late"],
        });
      });

      it("due returns at most limit ids of each kind", async () => {
        const many = ["x1", "x2", "x3", "x4"];
        await write({
          promises: many.map((id, index) => promiseFixture(id, { armed: true, timeoutAt: index })),
          tasks: many.map((id, index) => taskFixture(id, { state: "pending", retryAt: index })),
          schedules: many.map((id, index) => scheduleFixture(id, { nextRunAt: index })),
        });
        expect(await read((tx) => tx.due(1_000, 2))).toStrictEqual({
          promiseIds: ["x1", "x2"],
          taskIds: ["x1", "x2"],
          scheduleIds: ["x1", "x2"],
        });
        expect(await read((tx) => tx.due(1_000, 0))).toStrictEqual({
          promiseIds: [],
          taskIds: [],
          scheduleIds: [],
        });
      });

      it("nextDueAt is undefined when nothing is armed", async () => {
        await write({
          promises: [promiseFixture("p", { armed: false, timeoutAt: 5 })],
          tasks: [taskFixture("t")],
        });
        expect(await read((tx) => tx.nextDueAt())).toBeUndefined();
      });

      it("nextDueAt is the earliest armed deadline of any kind", async () => {
        await write({
          promises: [
            promiseFixture("p", { armed: true, timeoutAt: 500 }),
            promiseFixture("q", { timeoutAt: 1 }),
          ],
          tasks: [taskFixture("t", { state: "acquired", pid: "w", ttl: 1, expiresAt: 400 })],
          schedules: [scheduleFixture("s", { nextRunAt: 300 })],
        });
        expect(await read((tx) => tx.nextDueAt())).toBe(300);
        await write({ tasks: [taskFixture("t2", { state: "pending", retryAt: 200, expiresAt: 1 })] });
        expect(await read((tx) => tx.nextDueAt())).toBe(200);
        await write({ promises: [promiseFixture("p2", { armed: true, timeoutAt: 100 })] });
        expect(await read((tx) => tx.nextDueAt())).toBe(100);
      });
    });

    describeRetentionCases(() => store);

    describe("transactions", () => {
      it("a transaction resolves to what its work returns and counts one commit", async () => {
        const before = store.stats.commits;
        expect(await store.transaction(() => 42)).toBe(42);
        expect(await store.transaction((tx) => tx.promise("none"))).toBeUndefined();
        expect(store.stats.commits).toBe(before + 2);
      });

      it("an error thrown by work rejects the transaction with that same error", async () => {
        const failure = new Error("work failed");
        await expect(
          store.transaction(() => {
            throw failure;
          }),
        ).rejects.toBe(failure);
      });

      it("ping resolves while the store is open", async () => {
        await expect(store.ping()).resolves.toBeUndefined();
      });
    });
  });
}
