/**
 * Unit tests of retention's chooser (`src/core/retention.ts`, K1–K6) over the
 * reference memory store: state is built with real protocol requests through
 * `step`, then `collect` chooses and the store applies its changes.
 */
import { describe, expect, it } from "vitest";
import { type CollectOptions, collect } from "../../src/core/retention.js";
import { executeKey, type StoredPromise, unblockKey } from "../../src/core/state.js";
import { type CoreConfig, step } from "../../src/core/step.js";
import type { Request } from "../../src/protocol/requests.js";
import { MemoryStore } from "../../src/store/memory-store.js";

const config: CoreConfig = { retryTimeoutMs: 5000 };
const TARGET = { "resonate:target": "poll://any@g" };
const EXTERNAL = { "resonate:external": "true" };
const HOUR = 3_600_000;

type CoreRequest = Exclude<Request, { kind: "debug.start" | "debug.stop" }>;

function harness() {
  const store = new MemoryStore();
  const run = (request: Omit<CoreRequest, "corrId">, now: number) => {
    const result = step(store, { corrId: "c", ...request } as CoreRequest, now, config);
    expect(result.response.status, JSON.stringify(result.response)).toBeLessThan(400);
    store.apply(result.changes);
    return result;
  };
  const create = (id: string, now: number, tags: Record<string, string> = {}) =>
    run({ kind: "promise.create", data: { id, timeoutAt: now + HOUR, tags } }, now);
  const resolve = (id: string, now: number) =>
    run({ kind: "promise.settle", data: { id, state: "resolved", value: { data: "ok" } } }, now);
  const gc = (options: Partial<CollectOptions> & { settledBefore: number }, now = options.settledBefore) => {
    const result = collect(store, { limit: 100, ...options }, now);
    store.apply(result.changes);
    return result;
  };
  const ids = () => store.searchPromises({ limit: 1000 }).map((promise: StoredPromise) => promise.id);
  return { store, run, create, resolve, gc, ids };
}

describe("retention chooses", () => {
  it("a pending promise is never removed, whatever the cut-off", () => {
    const { create, gc, ids } = harness();
    create("pending", 10);
    const result = gc({ settledBefore: Number.MAX_SAFE_INTEGER }, 20);
    expect(result.changes.deletedPromises).toEqual([]);
    expect(result.more).toBe(false);
    expect(ids()).toEqual(["pending"]);
  });

  it("a settled promise older than the cut-off goes with its fulfilled task, and its id then starts afresh", () => {
    const { store, create, resolve, gc, run } = harness();
    create("job", 10, TARGET);
    resolve("job", 20);
    expect(store.task("job")?.state).toBe("fulfilled");
    const result = gc({ settledBefore: 21 });
    expect(result.changes.deletedPromises).toEqual(["job"]);
    expect(result.changes.deletedTasks).toEqual(["job"]);
    expect(store.promise("job")).toBeUndefined();
    expect(store.task("job")).toBeUndefined();
    expect(store.outboxEntry(executeKey("job"))).toBeUndefined();
    // Idempotence is bounded by retention: the same id now creates a new promise.
    const again = run({ kind: "promise.create", data: { id: "job", timeoutAt: 10_000, tags: TARGET } }, 30);
    expect(again.response.data).toMatchObject({ promise: { id: "job", state: "pending", createdAt: 30 } });
  });

  it("the cut-off is strict: a promise settled at or after it stays", () => {
    const { create, resolve, gc, ids } = harness();
    for (const [id, at] of [
      ["a", 100],
      ["b", 200],
      ["c", 300],
    ] as const) {
      create(id, at - 1);
      resolve(id, at);
    }
    expect(gc({ settledBefore: 200 }, 1000).changes.deletedPromises).toEqual(["a"]);
    expect(ids()).toEqual(["b", "c"]);
  });

  it("a promise in a live task's resume list stays while it is there", () => {
    const { store, run, create, resolve, gc, ids } = harness();
    create("parent", 10, TARGET);
    create("awaited", 10, EXTERNAL);
    run({ kind: "task.acquire", data: { id: "parent", version: 0, pid: "w", ttl: 60_000 } }, 11);
    run(
      {
        kind: "task.suspend",
        data: {
          id: "parent",
          version: 1,
          actions: [{ kind: "promise.register_callback", data: { awaited: "awaited", awaiter: "parent" } }],
        },
      },
      12,
    );
    resolve("awaited", 13); // wakes the parent: pending again, with "awaited" to resume on
    expect(store.task("parent")).toMatchObject({ state: "pending", resumeIds: ["awaited"] });
    const kept = gc({ settledBefore: 100 });
    expect(kept.changes.deletedPromises).toEqual([]);
    expect(kept.kept).toBe(1);

    run({ kind: "task.acquire", data: { id: "parent", version: 1, pid: "w", ttl: 60_000 } }, 14);
    run(
      {
        kind: "task.fulfill",
        data: {
          id: "parent",
          version: 2,
          action: { kind: "promise.settle", data: { id: "parent", state: "resolved", value: {} } },
        },
      },
      15,
    );
    expect(gc({ settledBefore: 100 }).changes.deletedPromises).toEqual(["awaited", "parent"]);
    expect(ids()).toEqual([]);
  });

  it("a child whose parent is pending stays; once the parent settles both go", () => {
    const { create, resolve, gc, ids } = harness();
    create("root", 10, { ...TARGET, "resonate:parent": "root" });
    create("root.1", 11, { "resonate:parent": "root" });
    resolve("root.1", 12);
    expect(gc({ settledBefore: 100 }).changes.deletedPromises).toEqual([]);
    resolve("root", 20);
    expect(gc({ settledBefore: 100 }).changes.deletedPromises).toEqual(["root.1", "root"]);
    expect(ids()).toEqual([]);
  });

  it("a child whose parent has timed out counts as orphaned and goes", () => {
    const { run, create, resolve, gc } = harness();
    run({ kind: "promise.create", data: { id: "root", timeoutAt: 50, tags: TARGET } }, 10);
    create("root.1", 11, { "resonate:parent": "root" });
    resolve("root.1", 12);
    expect(gc({ settledBefore: 100 }, 40).changes.deletedPromises).toEqual([]);
    expect(gc({ settledBefore: 100 }, 60).changes.deletedPromises).toEqual(["root.1"]);
  });

  it("the promise a schedule always fires under one id stays while the schedule exists", () => {
    const { run, resolve, gc, ids } = harness();
    const minute = 60_000;
    run(
      {
        kind: "schedule.create",
        data: { id: "nightly", cron: "* * * * *", promiseId: "fixed-{{.id}}", promiseTimeout: minute },
      },
      0,
    );
    run(
      {
        kind: "schedule.create",
        data: { id: "each", cron: "* * * * *", promiseId: "{{.id}}.{{.timestamp}}", promiseTimeout: minute },
      },
      0,
    );
    run({ kind: "debug.tick", data: { time: minute } }, minute);
    expect(ids()).toEqual([`each.${minute}`, "fixed-nightly"]);
    resolve("fixed-nightly", minute + 1);
    resolve(`each.${minute}`, minute + 1);
    expect(gc({ settledBefore: minute + 2 }).changes.deletedPromises).toEqual([`each.${minute}`]);
    run({ kind: "schedule.delete", data: { id: "nightly" } }, minute + 3);
    expect(gc({ settledBefore: minute + 2 }).changes.deletedPromises).toEqual(["fixed-nightly"]);
  });

  it("a settled promise whose task is not fulfilled stays (K2)", () => {
    const { store, gc } = harness();
    store.apply({
      ...collect(store, { settledBefore: 0, limit: 1 }, 0).changes,
      promises: [
        {
          id: "odd",
          state: "resolved",
          param: {},
          value: {},
          tags: {},
          timeoutAt: 100,
          createdAt: 0,
          settledAt: 5,
          armed: false,
        },
      ],
      tasks: [{ id: "odd", state: "suspended", version: 1, resumeIds: [] }],
    });
    const result = gc({ settledBefore: 100 });
    expect(result.changes.deletedPromises).toEqual([]);
    expect(result.kept).toBe(1);
  });

  it("batches examine at most limit promises, oldest first, and say whether more may follow", () => {
    const { create, resolve, gc, ids } = harness();
    for (let index = 1; index <= 5; index += 1) {
      create(`p${index}`, index);
      resolve(`p${index}`, 100 - index * 10); // p5 settled first, at 50
    }
    create("child", 1, { "resonate:parent": "pending-parent" });
    create("pending-parent", 1);
    resolve("child", 65); // between p4 and p3; kept: its parent is pending
    const first = gc({ settledBefore: 1000, limit: 2 });
    expect(first.changes.deletedPromises).toEqual(["p5", "p4"]);
    expect(first.more).toBe(true);
    const second = gc({ settledBefore: 1000, limit: 2, ...(first.cursor && { after: first.cursor }) });
    expect(second.changes.deletedPromises).toEqual(["p3"]);
    expect(second.kept).toBe(1);
    expect(second.more).toBe(true);
    const third = gc({ settledBefore: 1000, limit: 2, ...(second.cursor && { after: second.cursor }) });
    expect(third.changes.deletedPromises).toEqual(["p2", "p1"]);
    expect(third.more).toBe(true);
    const last = gc({ settledBefore: 1000, limit: 2, ...(third.cursor && { after: third.cursor }) });
    expect(last).toMatchObject({ more: false, kept: 0 });
    expect(last.changes.deletedPromises).toEqual([]);
    expect(ids()).toEqual(["child", "pending-parent"]);
  });

  it("a removed awaiter leaves no callback behind, so a new promise with its id is not woken by the old wait", () => {
    const { store, run, create, resolve, gc } = harness();
    create("waiter", 10, TARGET);
    create("slow", 10, EXTERNAL);
    run({ kind: "task.acquire", data: { id: "waiter", version: 0, pid: "w", ttl: 60_000 } }, 11);
    run(
      {
        kind: "task.suspend",
        data: {
          id: "waiter",
          version: 1,
          actions: [{ kind: "promise.register_callback", data: { awaited: "slow", awaiter: "waiter" } }],
        },
      },
      12,
    );
    run({ kind: "promise.settle", data: { id: "waiter", state: "rejected_canceled" } }, 13);
    expect(store.callbacks("slow")).toEqual(["waiter"]);
    expect(gc({ settledBefore: 100 }).changes.deletedPromises).toEqual(["waiter"]);
    expect(store.callbacks("slow")).toEqual([]);
    expect(store.callbacksByAwaiter(["waiter"])).toEqual([]);

    create("waiter", 200, TARGET);
    run({ kind: "task.acquire", data: { id: "waiter", version: 0, pid: "w", ttl: 60_000 } }, 201);
    resolve("slow", 202);
    expect(store.task("waiter")).toMatchObject({ state: "acquired", resumeIds: [] });
  });

  it("queued unblocks and executes of a removed promise go, and only those", () => {
    const { store, run, create, resolve, gc } = harness();
    create("a", 10, EXTERNAL);
    create("a:notify:b", 10, EXTERNAL); // its unblock keys share the prefix of a's
    for (const id of ["a", "a:notify:b"])
      run({ kind: "promise.register_listener", data: { awaited: id, address: "poll://uni@g/w1" } }, 11);
    resolve("a", 12);
    resolve("a:notify:b", 13);
    const aKey = unblockKey("a", "poll://uni@g/w1");
    const otherKey = unblockKey("a:notify:b", "poll://uni@g/w1");
    expect(store.outboxEntry(aKey)).toBeDefined();
    expect(store.outboxEntry(otherKey)).toBeDefined();
    const result = gc({ settledBefore: 13 });
    expect(result.changes.deletedPromises).toEqual(["a"]);
    expect(store.outboxEntry(aKey)).toBeUndefined();
    expect(store.outboxEntry(otherKey)).toBeDefined();
  });
});
