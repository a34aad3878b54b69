/**
 * The shared store suite's retention cases (issue 5, item 4): what every store
 * must do for `core/retention.ts` — delete promise and task records, answer the
 * reads retention makes (`settledPromises`, `promisesById`, `tasksById`,
 * `callbacksByAwaiter`), and run a whole
 * retention batch (read, choose, apply) in one transaction, which on PostgreSQL
 * goes through replay. Registered by `describeStore`, so memory, SQLite and
 * PostgreSQL all run them.
 */
import { describe, expect, it } from "vitest";
import { collect } from "../../src/core/retention.js";
import { type Changes, emptyChanges, executeKey, unblockKey } from "../../src/core/state.js";
import { TAG } from "../../src/protocol/records.js";
import type { Store, StoreTransaction } from "../../src/store/store.js";
import { executeFixture, promiseFixture, taskFixture } from "./store-suite.js";

const settled = (id: string, settledAt: number, fields: Parameters<typeof promiseFixture>[1] = {}) =>
  promiseFixture(id, { state: "resolved", value: { data: id }, settledAt, ...fields });

const unblockOf = (id: string, address: string, createdAt = 0) => ({
  key: unblockKey(id, address),
  address,
  message: {
    kind: "unblock" as const,
    head: {},
    data: {
      promise: {
        id,
        state: "resolved" as const,
        param: {},
        value: {},
        tags: {},
        timeoutAt: 10_000,
        createdAt: 0,
        settledAt: 1,
      },
    },
  },
  createdAt,
});

export function describeRetentionCases(current: () => Store): void {
  const write = (changes: Partial<Changes>) =>
    current().transaction((tx) => tx.apply({ ...emptyChanges(), ...changes }));
  const read = <T>(reader: (tx: StoreTransaction) => T) => current().transaction(reader);

  describe("deletions (retention)", () => {
    it("a deleted promise and a deleted task read as undefined, and unknown ids are ignored", async () => {
      await write({
        promises: [settled("p", 5, { tags: { [TAG.branch]: "b" } }), settled("q", 6)],
        tasks: [
          taskFixture("p", { state: "fulfilled", version: 2 }),
          taskFixture("q", { state: "fulfilled" }),
        ],
      });
      await write({ deletedPromises: ["p", "unknown"], deletedTasks: ["p", "unknown"] });
      expect(await read((tx) => [tx.promise("p"), tx.task("p")])).toEqual([undefined, undefined]);
      expect(await read((tx) => tx.searchPromises({ limit: 10 }).map((promise) => promise.id))).toEqual([
        "q",
      ]);
      expect(await read((tx) => tx.searchTasks({ limit: 10 }).map((task) => task.id))).toEqual(["q"]);
      expect(await read((tx) => tx.promisesInBranch("b"))).toEqual([]);
      expect(await read((tx) => tx.settledPromises({ before: 100, limit: 10 }).map((p) => p.id))).toEqual([
        "q",
      ]);
    });

    it("deletions apply after the upserts of the same change, and later reads in the transaction see them", async () => {
      const seen = await current().transaction((tx) => {
        tx.apply({
          ...emptyChanges(),
          promises: [settled("p", 1)],
          tasks: [taskFixture("p", { state: "fulfilled" })],
          deletedPromises: ["p"],
          deletedTasks: ["p"],
        });
        const afterDelete = [tx.promise("p"), tx.task("p")];
        tx.apply({ ...emptyChanges(), promises: [promiseFixture("p")] });
        return [...afterDelete, tx.promise("p")?.state];
      });
      expect(seen).toEqual([undefined, undefined, "pending"]);
      expect(await read((tx) => tx.promise("p"))).toStrictEqual(promiseFixture("p"));
    });

    it("settledPromises lists settled promises before the cut-off by settledAt then id, after the cursor, at most limit", async () => {
      await write({
        promises: [
          settled("b", 20),
          settled("a", 20),
          settled("c", 10),
          settled("late", 30),
          promiseFixture("pending", { createdAt: 1 }),
          promiseFixture("timedout", { state: "rejected_timedout", settledAt: 5 }),
        ],
      });
      const ids = (query: Parameters<StoreTransaction["settledPromises"]>[0]) =>
        read((tx) => tx.settledPromises(query).map((promise) => promise.id));
      expect(await ids({ before: 30, limit: 10 })).toEqual(["timedout", "c", "a", "b"]);
      expect(await ids({ before: 31, limit: 2 })).toEqual(["timedout", "c"]);
      expect(await ids({ before: 31, limit: 10, after: { settledAt: 20, id: "a" } })).toEqual(["b", "late"]);
      expect(await ids({ before: 31, limit: 10, after: { settledAt: 10, id: "zzz" } })).toEqual([
        "a",
        "b",
        "late",
      ]);
      expect(await ids({ before: 5, limit: 10 })).toEqual([]);
      expect(await ids({ before: 31, limit: 0 })).toEqual([]);
      expect(await read((tx) => tx.settledPromises({ before: 11, limit: 10 }))).toStrictEqual([
        promiseFixture("timedout", { state: "rejected_timedout", settledAt: 5 }),
        settled("c", 10),
      ]);
    });

    it("callbacksByAwaiter lists the callbacks of the given awaiters, sorted, and follows the callback sets", async () => {
      await write({
        callbacks: new Map([
          ["y", ["w", "x"]],
          ["x2", ["w"]],
          ["z", ["v"]],
        ]),
      });
      const of = (awaiters: string[]) => read((tx) => tx.callbacksByAwaiter(awaiters));
      expect(await of(["w", "v"])).toEqual([
        { awaited: "x2", awaiter: "w" },
        { awaited: "y", awaiter: "w" },
        { awaited: "z", awaiter: "v" },
      ]);
      expect(await of(["none"])).toEqual([]);
      expect(await of([])).toEqual([]);
      await write({ callbacks: new Map([["y", ["x"]]]) });
      expect(await of(["w"])).toEqual([{ awaited: "x2", awaiter: "w" }]);
    });

    it("promisesById and tasksById answer the stored records among the ids, sorted by id, once each", async () => {
      await write({
        promises: [settled("b", 5), promiseFixture("a"), promiseFixture("c")],
        tasks: [taskFixture("b", { state: "fulfilled" }), taskFixture("c")],
      });
      expect(await read((tx) => tx.promisesById(["c", "missing", "b", "c"]))).toStrictEqual([
        settled("b", 5),
        promiseFixture("c"),
      ]);
      expect(await read((tx) => tx.tasksById(["c", "b", "a"]).map((task) => task.id))).toEqual(["b", "c"]);
      expect(await read((tx) => [tx.promisesById([]), tx.tasksById([])])).toEqual([[], []]);
    });

    it("a retention batch read, chosen and applied in one transaction removes the promise and all that hangs off it", async () => {
      await write({
        promises: [
          settled("old", 5, { tags: { [TAG.target]: "poll://any@g" } }),
          settled("old:notify:x", 6),
          promiseFixture("slow", { armed: true, tags: { "resonate:external": "true" } }),
          settled("new", 500),
        ],
        tasks: [taskFixture("old", { state: "fulfilled", version: 3 })],
        callbacks: new Map([["slow", ["new", "old"]]]),
        outbox: [
          executeFixture("old", "poll://any@g"),
          unblockOf("old", "poll://uni@g/w1"),
          unblockOf("old", "http://h/x"),
          unblockOf("old:notify:x", "poll://uni@g/w1"),
        ],
      });
      const result = await current().transaction((tx) => {
        const chosen = collect(tx, { settledBefore: 100, limit: 10 }, 1000);
        tx.apply(chosen.changes);
        return {
          deleted: chosen.changes.deletedPromises,
          more: chosen.more,
          after: [tx.promise("old"), tx.task("old"), tx.callbacks("slow")],
        };
      });
      expect(result).toEqual({
        deleted: ["old", "old:notify:x"],
        more: false,
        after: [undefined, undefined, ["new"]],
      });
      expect(await read((tx) => tx.outbox({ limit: 10 }))).toEqual([]);
      expect(await read((tx) => tx.searchPromises({ limit: 10 }).map((promise) => promise.id))).toEqual([
        "new",
        "slow",
      ]);
      expect(await read((tx) => [tx.allCallbacks(), tx.searchTasks({ limit: 10 })])).toEqual([
        [{ awaited: "slow", awaiter: "new" }],
        [],
      ]);
      expect(await read((tx) => tx.outboxEntry(executeKey("old")))).toBeUndefined();
    });
  });
}
