/**
 * PROTOCOL.md §10 Part C: one test per conformance item, C1–C12, each with the
 * one right answer. The harness also checks the snapshot properties after each.
 */
import { describe, expect, test } from "vitest";
import {
  call,
  executeKeys,
  executes,
  expectError,
  expectOk,
  external,
  LISTENER,
  TAG_BRANCH,
  TAG_DELAY,
  TARGET,
  targeted,
  timer,
  unblocks,
} from "../support/client.js";
import { AUTH_TOKEN, useServer } from "../support/server.js";

describe("Part C", () => {
  const h = useServer();

  test("C1 — exactly the external promises (external tag, targeted, timer) get a durable timeout and fire on tick untouched; an internal promise gets none", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.createPromise("ext", 1000, { tags: external() }));
    expectOk(await c.createPromise("tgt", 1000, { tags: targeted() }));
    expectOk(await c.createPromise("tmr", 1000, { tags: timer() }));
    expectOk(await c.createPromise("int", 1000));
    expectOk(await c.registerListener("ext"));
    expectOk(await c.registerListener("tmr"));
    expectOk(await c.taskCreate("w", 100_000));
    expectOk(await c.suspend("w", 1, ["tmr"]));

    let snap = await c.check();
    const armed = [...snap.promiseTimeouts].sort((a, b) => a.id.localeCompare(b.id));
    expect(armed).toEqual([
      { id: "ext", timeout: 1000 },
      { id: "tgt", timeout: 1000 },
      { id: "tmr", timeout: 1000 },
      { id: "w", timeout: 100_000 },
    ]);

    // nobody touches the promises: only the tick fires their deadlines
    await c.tick(1000);
    snap = await c.check();
    const stored = new Map(snap.promises.map((p) => [p.id, p]));
    expect(stored.get("ext")).toMatchObject({ state: "rejected_timedout", settledAt: 1000 });
    expect(stored.get("tgt")).toMatchObject({ state: "rejected_timedout", settledAt: 1000 });
    expect(stored.get("tmr")).toMatchObject({ state: "resolved", settledAt: 1000, value: {} });
    expect(stored.get("int")).toMatchObject({ state: "pending" });
    expect(snap.tasks.find((t) => t.id === "tgt")).toMatchObject({ state: "fulfilled" });
    expect(snap.promiseTimeouts).toEqual([{ id: "w", timeout: 100_000 }]);
    expect(unblocks(snap, "ext").map((m) => m.address)).toEqual([LISTENER]);
    expect(unblocks(snap, "tmr").map((m) => m.address)).toEqual([LISTENER]);
    // the awaiter of the timer is woken by the tick (ObligationsAreDischargeable)
    expect(snap.tasks.find((t) => t.id === "w")).toMatchObject({ state: "pending", version: 1, resumes: 1 });
    expect(executeKeys(snap)).toContain(`w@1->${TARGET}`);
    // the internal promise's deadline is projection only
    expect(await c.promise("int")).toMatchObject({ state: "rejected_timedout", settledAt: 1000 });
  });

  test("C2 — a callback on an internal awaited promise is 422, in promise.register_callback and in task.suspend", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.createPromise("int", 100_000, { tags: { "resonate:scope": "global" } }));
    expectOk(await c.taskCreate("x", 100_000));
    expectError(await c.registerCallback("int", "x"), 422);
    expectError(await c.suspend("x", 1, ["int"]), 422);
    expect(await c.task("x")).toMatchObject({ state: "acquired", version: 1 });
    expect((await c.snap()).callbacks).toEqual([]);
  });

  test("C3 — a listener on an internal awaited promise is 422", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.createPromise("int", 100_000, { tags: { "resonate:external": "false" } }));
    expectError(await c.registerListener("int", LISTENER), 422);
    expectError(await c.registerListener("int", "http://example.test/hook"), 422);
    expect((await c.snap()).listeners).toEqual([]);
  });

  test("C4 — task.create, task.halt and task.continue are judged on the projected task: a timed-out task is fulfilled for all three", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.taskCreate("x", 300));
    expectOk(await c.createPromise("y", 300, { tags: targeted() }));
    c.at(200);
    expectOk(await c.call("task.halt", { id: "y" }));
    c.at(500);
    const data = expectOk(await c.taskCreate("x", 100_000, { pid: "w2" }));
    expect(data.task).toStrictEqual({ id: "x", state: "fulfilled", version: 1, resumes: 0 });
    expect(data.promise).toMatchObject({ id: "x", state: "rejected_timedout", settledAt: 300 });
    expect(data.preload).toEqual([]);
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "fulfilled", version: 1, resumes: 0 });
    expectError(await c.call("task.halt", { id: "x" }), 409);
    expectError(await c.call("task.continue", { id: "y" }), 409);
    expect(await c.task("y")).toStrictEqual({ id: "y", state: "fulfilled", version: 0, resumes: 0 });
    expect((await c.snap()).taskTimeouts).toEqual([]);
  });

  test("C5 — lease expiry and retry dispatch gate on the projection: a task whose promise is dead is never re-dispatched", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.createPromise("x", 3000, { tags: targeted() }));
    expectOk(await c.acquire("x", 0, "w1", 100));
    expectOk(await c.createPromise("y", 3000, { tags: targeted(TARGET, { [TAG_DELAY]: "2500" }) }));
    expect(executes(await c.snap(), "y")).toEqual([]);
    // the lease of x expired at 200 and y's first dispatch is due at 2500, but both promises died at 3000
    await c.tick(6000);
    const snap = await c.check();
    expect(executes(snap, "x").map((m) => m.message.data.task.version)).not.toContain(1);
    expect(executes(snap, "y")).toEqual([]);
    expect(snap.tasks.find((t) => t.id === "x")).toStrictEqual({
      id: "x",
      state: "fulfilled",
      version: 1,
      resumes: 0,
    });
    expect(snap.tasks.find((t) => t.id === "y")).toStrictEqual({
      id: "y",
      state: "fulfilled",
      version: 0,
      resumes: 0,
    });
    expect(snap.taskTimeouts).toEqual([]);
  });

  test("C6 — a settled promise never wakes an awaiter whose own deadline has passed", async () => {
    const { c } = h;
    c.at(100);
    // a settlement after the awaiter's deadline, nothing ticked
    expectOk(await c.taskCreate("w", 1000));
    expectOk(await c.createPromise("a", 100_000, { tags: external() }));
    c.at(110);
    expectOk(await c.suspend("w", 1, ["a"]));
    // both deadlines reached in the same tick
    expectOk(await c.taskCreate("w2", 5000));
    expectOk(await c.createPromise("a2", 5000, { tags: external() }));
    expectOk(await c.suspend("w2", 1, ["a2"]));

    c.at(2000);
    expectOk(await c.settle("a", "resolved"));
    expect(await c.task("w")).toStrictEqual({ id: "w", state: "fulfilled", version: 1, resumes: 0 });
    let snap = await c.check();
    expect(executes(snap, "w")).toEqual([]);

    await c.tick(5000);
    snap = await c.check();
    expect(snap.promises.find((p) => p.id === "a2")).toMatchObject({ state: "rejected_timedout" });
    expect(snap.tasks.find((t) => t.id === "w2")).toStrictEqual({
      id: "w2",
      state: "fulfilled",
      version: 1,
      resumes: 0,
    });
    expect(executes(snap, "w2")).toEqual([]);
    expect(snap.callbacks).toEqual([]);
  });

  test("C7 — a heartbeat on a task whose promise is logically settled does not extend the lease", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.taskCreate("x", 500, { ttl: 1000 }));
    c.at(600);
    expect(expectOk(await c.heartbeat("w1", [{ id: "x", version: 1 }]))).toStrictEqual({});
    const snap = await c.check();
    expect(snap.taskTimeouts.filter((t) => t.id === "x" && t.timeout === 1600)).toEqual([]);
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "fulfilled", version: 1, resumes: 0 });
    await c.tick(2000);
    expect(executes(await c.check(), "x")).toEqual([]);
  });

  test("C8 — every record in every response is projected: all endpoints agree on a promise past its deadline", async () => {
    const { c } = h;
    c.at(100);
    const branch = { [TAG_BRANCH]: "r" };
    expectOk(await c.taskCreate("r", 100_000, { tags: targeted(TARGET, branch) }));
    expectOk(await c.createPromise("p", 300, { tags: branch }));
    expectOk(await c.createPromise("t", 300, { tags: targeted() }));
    c.at(500);
    const p = await c.promise("p");
    expect(p).toStrictEqual({
      id: "p",
      state: "rejected_timedout",
      param: {},
      value: {},
      tags: branch,
      timeoutAt: 300,
      createdAt: 100,
      settledAt: 300,
    });
    const t = await c.promise("t");
    expect(t).toMatchObject({ state: "rejected_timedout", settledAt: 300 });
    expect(expectOk(await c.createPromise("p", 9000)).promise).toStrictEqual(p);
    expect(expectOk(await c.settle("p", "resolved")).promise).toStrictEqual(p);
    expect((await c.ok("promise.search", { state: "rejected_timedout" })).promises).toStrictEqual([p, t]);
    expect(
      (await c.ok("promise.search", { state: "pending" })).promises.map((x: { id: string }) => x.id),
    ).toEqual(["r"]);
    expect(await c.task("t")).toStrictEqual({ id: "t", state: "fulfilled", version: 0, resumes: 0 });
    expect((await c.ok("task.search", { state: "fulfilled" })).tasks).toStrictEqual([
      { id: "t", state: "fulfilled", version: 0, resumes: 0 },
    ]);
    expect(expectOk(await c.registerListener("t")).promise).toStrictEqual(t);
    const created = expectOk(
      await c.fence("r", 1, { kind: "promise.create", data: { id: "p", timeoutAt: 9000 } }),
    );
    expect(created.action.data.promise).toStrictEqual(p);
    expect(created.preload).toStrictEqual([p]);
    const settled = expectOk(
      await c.fence("r", 1, { kind: "promise.settle", data: { id: "p", state: "rejected" } }),
    );
    expect(settled.action.data.promise).toStrictEqual(p);
    expect(await c.promise("p")).toStrictEqual(p);
  });

  test("C9 — a queued execute never names a version the server has not issued", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.createPromise("x", 100_000, { tags: targeted() }));
    expect(executeKeys(await c.check())).toEqual([`x@0->${TARGET}`]);
    expectOk(await c.acquire("x", 0));
    await c.check();
    c.at(200);
    expectOk(await c.release("x", 1));
    expect(executeKeys(await c.check())).toEqual([`x@1->${TARGET}`]);
    expectOk(await c.acquire("x", 1, "w2", 100));
    await c.check();
    await c.tick(300);
    expect(await c.task("x")).toMatchObject({ state: "pending", version: 2 });
    expect(executeKeys(await c.check())).toEqual([`x@2->${TARGET}`]);
    await c.tick(5300);
    expect(executeKeys(await c.check())).toEqual([`x@2->${TARGET}`]);
  });

  test("C10 — two workers never both hold a valid claim: acquisition is a compare-and-set that bumps the version", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.createPromise("x", 100_000, { tags: targeted() }));
    expectOk(await c.acquire("x", 0, "A", 100));
    expectError(await c.acquire("x", 0, "B", 100), 409);
    await c.tick(200);
    expect(await c.task("x")).toMatchObject({ state: "pending", version: 1 });
    c.at(210);
    expect(expectOk(await c.acquire("x", 1, "B", 10_000)).task).toMatchObject({ version: 2, pid: "B" });
    // the old holder (A, version 1) fails every holder operation
    expectError(await c.fulfill("x", 1), 409);
    expectError(await c.release("x", 1), 409);
    expectError(await c.fence("x", 1, { kind: "promise.create", data: { id: "c", timeoutAt: 9000 } }), 409);
    expectOk(await c.createPromise("e", 100_000, { tags: external() }));
    expectError(await c.suspend("x", 1, ["e"]), 409);
    c.at(300);
    expectOk(await c.heartbeat("A", [{ id: "x", version: 1 }]));
    expect((await c.snap()).taskTimeouts).toEqual([{ id: "x", type: 1, timeout: 10_210 }]);
    expect(await c.task("x")).toMatchObject({ state: "acquired", version: 2, pid: "B" });
    expect(expectOk(await c.fulfill("x", 2)).promise.state).toBe("resolved");
    // joining with task.create bumps the version; a stale acquire then fails
    expectOk(await c.createPromise("y", 100_000, { tags: targeted() }));
    expect(expectOk(await c.taskCreate("y", 100_000, { pid: "C" })).task).toMatchObject({
      version: 1,
      pid: "C",
    });
    expectError(await c.acquire("y", 0, "D"), 409);
  });

  test("C11 — a settled or logically settled promise gains no callback and no listener", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.taskCreate("x", 100_000));
    expectOk(await c.createPromise("done", 100_000, { tags: external() }));
    expectOk(await c.createPromise("late", 300, { tags: external() }));
    const done = expectOk(await c.settle("done", "rejected")).promise;
    c.at(500);
    const late = await c.promise("late");
    expect(late).toMatchObject({ state: "rejected_timedout" });
    for (const [id, record] of [
      ["done", done],
      ["late", late],
    ] as const) {
      expect(expectOk(await c.registerCallback(id, "x")).promise).toStrictEqual(record);
      expect(expectOk(await c.registerListener(id)).promise).toStrictEqual(record);
    }
    const snap = await c.check();
    expect(snap.callbacks).toEqual([]);
    expect(snap.listeners).toEqual([]);
    expect(unblocks(snap)).toEqual([]);
    expect(await c.task("x")).toMatchObject({ state: "acquired", resumes: 0 });
  });
});

describe("Part C with auth", () => {
  const h = useServer({ auth: true });

  test("C12 — the debug.* surface is authenticated like every other operation", async () => {
    const { url } = h;
    const kinds: [string, unknown][] = [
      ["debug.snap", {}],
      ["debug.tick", { time: 1000 }],
      ["debug.reset", {}],
      ["debug.start", {}],
      ["debug.stop", {}],
    ];
    for (const [kind, data] of kinds) {
      expectError(await call(url, kind, data, { time: 1000 }), 401);
      expectError(await call(url, kind, data, { time: 1000, token: "wrong" }), 401);
    }
    for (const [kind, data] of kinds) {
      expectOk(await call(url, kind, data, { time: 1000, token: AUTH_TOKEN }));
    }
    expectOk(await call(url, "debug.start", {}, { time: 1000, token: AUTH_TOKEN }));
    h.c.at(1000);
  });
});
