/**
 * Unit tests of the pure core: `step` and `sweep` over the reference memory store,
 * with time as an argument. Black-box conformance lives in test/http.
 */
import { describe, expect, it } from "vitest";
import type { StoredTask } from "../../src/core/state.js";
import { type CoreConfig, snapshot, step, sweep } from "../../src/core/step.js";
import type { Request } from "../../src/protocol/requests.js";
import { MemoryStore } from "../../src/store/memory-store.js";

const config: CoreConfig = { retryTimeoutMs: 5000 };
const TARGET = { "resonate:target": "poll://any@g" };

type CoreRequest = Exclude<Request, { kind: "debug.start" | "debug.stop" }>;

function harness() {
  const store = new MemoryStore();
  const run = (request: Omit<CoreRequest, "corrId">, now: number) => {
    const result = step(store, { corrId: "c", ...request } as CoreRequest, now, config);
    store.apply(result.changes);
    return result;
  };
  const tick = (now: number) => {
    const result = sweep(store, now, config);
    store.apply(result.changes);
    return result;
  };
  const task = (id: string): StoredTask | undefined => store.task(id);
  return { store, run, tick, task };
}

describe("step", () => {
  it("is pure: the same request on the same state at the same instant gives the same result", () => {
    const a = harness();
    const b = harness();
    const request = { kind: "promise.create", data: { id: "p", timeoutAt: 100, tags: TARGET } } as const;
    expect(a.run(request, 10)).toEqual(b.run(request, 10));
  });

  it("a failed request writes nothing", () => {
    const { run } = harness();
    const result = run({ kind: "task.acquire", data: { id: "missing", version: 0, pid: "w", ttl: 10 } }, 1);
    expect(result.response.status).toBe(404);
    expect(result.changes.promises).toEqual([]);
    expect(result.changes.tasks).toEqual([]);
  });

  it("a targeted promise born live queues its execute in the same step (eager dispatch)", () => {
    const { run, task } = harness();
    const result = run({ kind: "promise.create", data: { id: "p", timeoutAt: 100, tags: TARGET } }, 10);
    expect(result.messages.map((m) => m.message)).toEqual([
      { kind: "execute", head: {}, data: { task: { id: "p", version: 0 } } },
    ]);
    expect(task("p")).toMatchObject({ state: "pending", version: 0, retryAt: 10 + config.retryTimeoutMs });
  });

  it("resonate:delay holds the first dispatch until its instant", () => {
    const { run, tick, task } = harness();
    const result = run(
      {
        kind: "promise.create",
        data: { id: "p", timeoutAt: 1000, tags: { ...TARGET, "resonate:delay": "50" } },
      },
      10,
    );
    expect(result.messages).toEqual([]);
    expect(task("p")?.retryAt).toBe(50);
    expect(tick(49).messages).toEqual([]);
    expect(tick(50).messages.map((m) => m.key)).toEqual(["execute:p"]);
  });

  it("the version rises by one only on acquisition, and a stale holder is fenced off", () => {
    const { run, tick, task } = harness();
    run(
      {
        kind: "task.create",
        data: {
          pid: "w1",
          ttl: 100,
          action: { kind: "promise.create", data: { id: "r", timeoutAt: 10_000, tags: TARGET } },
        },
      },
      0,
    );
    expect(task("r")?.version).toBe(1);
    tick(100); // lease expires: pending again, same version
    expect(task("r")).toMatchObject({ state: "pending", version: 1 });
    const stale = run(
      {
        kind: "task.fulfill",
        data: {
          id: "r",
          version: 1,
          action: { kind: "promise.settle", data: { id: "r", state: "resolved" } },
        },
      },
      101,
    );
    expect(stale.response.status).toBe(409);
    expect(
      run({ kind: "task.acquire", data: { id: "r", version: 1, pid: "w2", ttl: 100 } }, 102).response.status,
    ).toBe(200);
    expect(task("r")?.version).toBe(2);
  });

  it("a settlement resumes a suspended awaiter and dispatches it inside the same step", () => {
    const { run, task } = harness();
    run(
      {
        kind: "task.create",
        data: {
          pid: "w",
          ttl: 1000,
          action: { kind: "promise.create", data: { id: "r", timeoutAt: 10_000, tags: TARGET } },
        },
      },
      0,
    );
    run(
      { kind: "promise.create", data: { id: "x", timeoutAt: 10_000, tags: { "resonate:external": "true" } } },
      1,
    );
    run(
      {
        kind: "task.suspend",
        data: {
          id: "r",
          version: 1,
          actions: [{ kind: "promise.register_callback", data: { awaited: "x", awaiter: "r" } }],
        },
      },
      2,
    );
    expect(task("r")?.state).toBe("suspended");
    const settled = run({ kind: "promise.settle", data: { id: "x", state: "resolved" } }, 3);
    expect(task("r")).toMatchObject({ state: "pending", resumeIds: ["x"], version: 1 });
    expect(settled.messages.map((m) => m.key)).toEqual(["execute:r"]);
  });

  it("C6: a settlement never wakes an awaiter whose own deadline has passed", () => {
    const { run, store, task } = harness();
    run(
      {
        kind: "task.create",
        data: {
          pid: "w",
          ttl: 100_000,
          action: { kind: "promise.create", data: { id: "r", timeoutAt: 50, tags: TARGET } },
        },
      },
      0,
    );
    run(
      { kind: "promise.create", data: { id: "x", timeoutAt: 10_000, tags: { "resonate:external": "true" } } },
      1,
    );
    run(
      {
        kind: "task.suspend",
        data: {
          id: "r",
          version: 1,
          actions: [{ kind: "promise.register_callback", data: { awaited: "x", awaiter: "r" } }],
        },
      },
      2,
    );
    const settled = run({ kind: "promise.settle", data: { id: "x", state: "resolved" } }, 60);
    expect(settled.messages).toEqual([]);
    expect(task("r")?.state).toBe("fulfilled");
    expect(store.promise("r")?.state).toBe("rejected_timedout");
  });

  it("a schedule catches up every missed occurrence, each promise created at its own instant", () => {
    const { run, tick, store } = harness();
    const minute = 60_000;
    run(
      {
        kind: "schedule.create",
        data: { id: "s", cron: "* * * * *", promiseId: "s.{{.timestamp}}", promiseTimeout: 10 * minute },
      },
      0,
    );
    tick(3 * minute + 1);
    const ids = store
      .searchPromises({ limit: 10 })
      .sort((a, b) => a.createdAt - b.createdAt)
      .map((p) => [p.id, p.createdAt]);
    expect(ids).toEqual([
      [`s.${minute}`, minute],
      [`s.${2 * minute}`, 2 * minute],
      [`s.${3 * minute}`, 3 * minute],
    ]);
    expect(store.schedule("s")).toMatchObject({ lastRunAt: 3 * minute, nextRunAt: 4 * minute });
  });

  it("an internal promise is never armed; an external one is, and the sweep times it out", () => {
    const { run, tick, store } = harness();
    run({ kind: "promise.create", data: { id: "internal", timeoutAt: 10 } }, 0);
    run(
      {
        kind: "promise.create",
        data: { id: "external", timeoutAt: 10, tags: { "resonate:external": "true" } },
      },
      0,
    );
    expect(snapshot(store).promiseTimeouts).toEqual([{ id: "external", timeout: 10 }]);
    tick(10);
    expect(store.promise("external")?.state).toBe("rejected_timedout");
    expect(store.promise("internal")?.state).toBe("pending");
    const read = run({ kind: "promise.get", data: { id: "internal" } }, 11);
    expect(read.response.data).toMatchObject({ promise: { state: "rejected_timedout", settledAt: 10 } });
  });

  it("a sweep reports more work when its limit was reached", () => {
    const { run, store } = harness();
    for (let i = 0; i < 5; i++)
      run(
        {
          kind: "promise.create",
          data: { id: `p${i}`, timeoutAt: 10, tags: { "resonate:external": "true" } },
        },
        0,
      );
    const first = sweep(store, 20, config, 3);
    expect(first.more).toBe(true);
    store.apply(first.changes);
    const second = sweep(store, 20, config, 3);
    expect(second.more).toBe(false);
  });
});
