/**
 * Promise operations over HTTP (PROTOCOL.md §4, §3.1, §3.5, §7), black box.
 * Every test runs on a fresh debug server with the clock stamped on every
 * request; the harness checks the snapshot properties after each test.
 */
import { describe, expect, test } from "vitest";
import {
  executes,
  expectError,
  expectOk,
  external,
  LISTENER,
  TAG_DELAY,
  TARGET,
  targeted,
  timer,
  unblocks,
} from "../support/client.js";
import { useServer } from "../support/server.js";

const h = useServer();

describe("promise.get", () => {
  test("answers 400 when id is missing, empty or not a string", async () => {
    const { c } = h;
    expectError(await c.call("promise.get", {}), 400);
    expectError(await c.call("promise.get", { id: "" }), 400);
    expectError(await c.call("promise.get", { id: 7 }), 400);
  });

  test("answers 404 for an unknown id", async () => {
    expectError(await h.c.call("promise.get", { id: "nope" }), 404);
  });

  test("answers 200 with the record", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 1000, { tags: { k: "v" } });
    c.at(150);
    const data = expectOk(await c.call("promise.get", { id: "p" }));
    expect(data).toStrictEqual({
      promise: {
        id: "p",
        state: "pending",
        param: {},
        value: {},
        tags: { k: "v" },
        timeoutAt: 1000,
        createdAt: 100,
      },
    });
  });

  test("reads a promise past its deadline as rejected_timedout with settledAt = timeoutAt (projection)", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 300);
    c.at(300);
    expect(await c.promise("p")).toStrictEqual({
      id: "p",
      state: "rejected_timedout",
      param: {},
      value: {},
      tags: {},
      timeoutAt: 300,
      createdAt: 100,
      settledAt: 300,
    });
  });
});

describe("promise.create", () => {
  test("creates a pending promise with createdAt = now, the given param and tags, and an empty value", async () => {
    const { c } = h;
    c.at(100);
    const param = { headers: { a: "b" }, data: "eyJmdW5jIjoiZiJ9" };
    const data = expectOk(await c.createPromise("p", 1000, { param, tags: { k: "v" } }));
    expect(data).toStrictEqual({
      promise: {
        id: "p",
        state: "pending",
        param,
        value: {},
        tags: { k: "v" },
        timeoutAt: 1000,
        createdAt: 100,
      },
    });
  });

  test("stores a missing param and missing tags as empty objects", async () => {
    const { c } = h;
    c.at(100);
    const data = expectOk(await c.call("promise.create", { id: "p", timeoutAt: 1000 }));
    expect(data.promise.param).toStrictEqual({});
    expect(data.promise.tags).toStrictEqual({});
    expect(data.promise.value).toStrictEqual({});
  });

  test("stores and echoes param.data verbatim without decoding it", async () => {
    const { c } = h;
    c.at(100);
    const param = { data: "not base64 at all ✓" };
    expect(expectOk(await c.createPromise("p", 1000, { param })).promise.param).toStrictEqual(param);
    expect((await c.promise("p")).param).toStrictEqual(param);
  });

  test("an idempotent replay answers 200 with the existing record and ignores the new fields", async () => {
    const { c } = h;
    c.at(100);
    const first = expectOk(await c.createPromise("p", 1000, { tags: { k: "v" }, param: { data: "AA==" } }));
    c.at(200);
    const again = expectOk(
      await c.createPromise("p", 9000, { tags: targeted(), param: { data: "BB==", headers: { x: "y" } } }),
    );
    expect(again.promise).toStrictEqual(first.promise);
    const snap = await c.snap();
    expect(snap.promises).toHaveLength(1);
    expect(snap.tasks).toHaveLength(0);
    expect(snap.messages).toHaveLength(0);
  });

  test("a replay of a settled promise answers the settled record", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 1000);
    const settled = expectOk(await c.settle("p", "resolved", { data: "eA==" })).promise;
    c.at(200);
    expect(expectOk(await c.createPromise("p", 5000)).promise).toStrictEqual(settled);
  });

  test("a promise created at its deadline is born rejected_timedout with createdAt = settledAt = timeoutAt", async () => {
    const { c } = h;
    c.at(1000);
    const atDeadline = expectOk(await c.createPromise("p", 1000, { tags: external() })).promise;
    expect(atDeadline).toStrictEqual({
      id: "p",
      state: "rejected_timedout",
      param: {},
      value: {},
      tags: external(),
      timeoutAt: 1000,
      createdAt: 1000,
      settledAt: 1000,
    });
    const past = expectOk(await c.createPromise("q", 400)).promise;
    expect(past).toMatchObject({
      state: "rejected_timedout",
      createdAt: 400,
      settledAt: 400,
      timeoutAt: 400,
    });
    const snap = await c.snap();
    expect(snap.promiseTimeouts).toEqual([]);
    expect(snap.promises.map((p) => p.state)).toEqual(["rejected_timedout", "rejected_timedout"]);
  });

  test("a timer born past its deadline is resolved", async () => {
    const { c } = h;
    c.at(1000);
    const record = expectOk(await c.createPromise("t", 500, { tags: timer() })).promise;
    expect(record).toMatchObject({ state: "resolved", value: {}, createdAt: 500, settledAt: 500 });
  });

  test("a targeted promise born dead gets a fulfilled task at version 0 and no execute", async () => {
    const { c } = h;
    c.at(1000);
    expectOk(await c.createPromise("x", 900, { tags: targeted() }));
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "fulfilled", version: 0, resumes: 0 });
    const snap = await c.snap();
    expect(snap.messages).toEqual([]);
    expect(snap.taskTimeouts).toEqual([]);
  });

  test("a targeted promise gets a pending task at version 0 and an execute queued to its target at once", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.createPromise("x", 100_000, { tags: targeted() }));
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "pending", version: 0, resumes: 0 });
    const snap = await c.snap();
    expect(executes(snap)).toHaveLength(1);
    const [execute] = executes(snap);
    expect(execute?.address).toBe(TARGET);
    expect(execute?.message.kind).toBe("execute");
    expect(execute?.message.data).toStrictEqual({ task: { id: "x", version: 0 } });
    expect(snap.taskTimeouts).toEqual([{ id: "x", type: 0, timeout: 5100 }]);
    expect(snap.promiseTimeouts).toEqual([{ id: "x", timeout: 100_000 }]);
  });

  test("any string is a target: a promise targeted at w1 is dispatched to w1", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.createPromise("x", 100_000, { tags: targeted("w1") }));
    const snap = await c.snap();
    expect(executes(snap).map((m) => m.address)).toEqual(["w1"]);
  });

  test("rejects malformed data with 400 and creates nothing", async () => {
    const { c } = h;
    c.at(100);
    const cases: unknown[] = [
      { timeoutAt: 1000 },
      { id: "", timeoutAt: 1000 },
      { id: "a\u0000b", timeoutAt: 1000 },
      { id: 5, timeoutAt: 1000 },
      { id: "p" },
      { id: "p", timeoutAt: 1.5 },
      { id: "p", timeoutAt: -1 },
      { id: "p", timeoutAt: "1000" },
      { id: "p", timeoutAt: 1000, tags: "x" },
      { id: "p", timeoutAt: 1000, tags: { k: 1 } },
      { id: "p", timeoutAt: 1000, param: 5 },
    ];
    for (const data of cases) expectError(await c.call("promise.create", data), 400);
    expect((await c.snap()).promises).toEqual([]);
  });

  test("a 400 names the field at fault", async () => {
    const { c } = h;
    c.at(100);
    const reply = await c.call("promise.create", { id: "p" });
    expectError(reply, 400);
    expect(reply.data).toContain("timeoutAt");
  });

  describe('Pledge\'s "pledge:settle" (ADR 0005)', () => {
    const SETTLE = "pledge:settle";

    test("creates the promise already settled, as a create then a settle at the same instant", async () => {
      const { c } = h;
      c.at(100);
      const made = expectOk(
        await c.call("promise.create", {
          id: "p",
          timeoutAt: 1000,
          param: { data: "AA==" },
          [SETTLE]: { state: "resolved", value: { data: "eA==" } },
        }),
      ).promise;
      expect(made).toMatchObject({
        state: "resolved",
        value: { data: "eA==" },
        createdAt: 100,
        settledAt: 100,
      });
      expect(expectOk(await c.call("promise.get", { id: "p" })).promise).toStrictEqual(made);
      const snap = await c.snap();
      expect(snap.promiseTimeouts).toHaveLength(0);
    });

    test("a replay answers the record made the first time, whatever it asks now", async () => {
      const { c } = h;
      c.at(100);
      const first = expectOk(
        await c.call("promise.create", { id: "p", timeoutAt: 1000, [SETTLE]: { state: "rejected" } }),
      );
      c.at(200);
      const again = expectOk(
        await c.call("promise.create", {
          id: "p",
          timeoutAt: 1000,
          [SETTLE]: { state: "resolved", value: { data: "x" } },
        }),
      );
      expect(again.promise).toStrictEqual(first.promise);
      expect(first.promise.state).toBe("rejected");
    });

    test("an existing pending promise is answered pending: the extension never settles what it did not create", async () => {
      const { c } = h;
      c.at(100);
      await c.createPromise("p", 1000);
      const reply = expectOk(
        await c.call("promise.create", { id: "p", timeoutAt: 1000, [SETTLE]: { state: "resolved" } }),
      );
      expect(reply.promise.state).toBe("pending");
    });

    test("a promise born past its deadline is timed out, not settled as asked", async () => {
      const { c } = h;
      c.at(2000);
      const reply = expectOk(
        await c.call("promise.create", { id: "p", timeoutAt: 1000, [SETTLE]: { state: "resolved" } }),
      );
      expect(reply.promise.state).toBe("rejected_timedout");
    });

    test("refuses a targeted promise or a timer with 400 naming the field, and creates nothing", async () => {
      const { c } = h;
      c.at(100);
      for (const tags of [targeted(), timer()]) {
        const reply = await c.call("promise.create", {
          id: "p",
          timeoutAt: 1000,
          tags,
          [SETTLE]: { state: "resolved" },
        });
        expectError(reply, 400);
        expect(reply.data).toContain(`data["${SETTLE}"]`);
      }
      expectError(await c.call("promise.get", { id: "p" }), 404);
    });

    test("a bad settlement is a 400 naming the field; task.create does not take the extension", async () => {
      const { c } = h;
      c.at(100);
      for (const settle of [
        { state: "pending" },
        { state: "resolved", extra: 1 },
        "resolved",
        { state: "resolved", value: 7 },
      ]) {
        const reply = await c.call("promise.create", { id: "p", timeoutAt: 1000, [SETTLE]: settle });
        expectError(reply, 400);
        expect(reply.data).toContain(SETTLE);
      }
      const task = await c.call("task.create", {
        pid: "w",
        ttl: 1000,
        action: {
          kind: "promise.create",
          head: {},
          data: { id: "t", timeoutAt: 1000, tags: targeted(), [SETTLE]: { state: "resolved" } },
        },
      });
      expectError(task, 400);
      expect(task.data).toContain(SETTLE);
    });
  });

  test("a timer that is also targeted is accepted: it gets a task and an execute, and resolves at its deadline", async () => {
    const { c } = h;
    c.at(100);
    const record = expectOk(
      await c.createPromise("tm", 1000, { tags: { ...timer(), ...targeted() } }),
    ).promise;
    expect(record.state).toBe("pending");
    expect(await c.task("tm")).toMatchObject({ state: "pending", version: 0 });
    expect(executes(await c.snap(), "tm")).toHaveLength(1);
    await c.tick(1000);
    const snap = await c.check();
    expect(snap.promises[0]).toMatchObject({ id: "tm", state: "resolved", settledAt: 1000, value: {} });
    expect(snap.tasks[0]).toMatchObject({ id: "tm", state: "fulfilled" });
  });

  test("a timer resolves at its deadline: on tick in storage, and by projection on read", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.createPromise("t1", 1000, { tags: timer() }));
    expectOk(await c.createPromise("t2", 2000, { tags: timer() }));
    c.at(999);
    expect((await c.promise("t1")).state).toBe("pending");
    await c.tick(1000);
    const snap = await c.check();
    expect(snap.promises.find((p) => p.id === "t1")).toMatchObject({
      state: "resolved",
      value: {},
      settledAt: 1000,
    });
    expect(snap.promises.find((p) => p.id === "t2")).toMatchObject({ state: "pending" });
    c.at(2000);
    expect(await c.promise("t2")).toMatchObject({ state: "resolved", value: {}, settledAt: 2000 });
  });

  test("lineage tags are stored verbatim and not validated", async () => {
    const { c } = h;
    c.at(100);
    const tags = {
      "resonate:origin": "somewhere.else",
      "resonate:parent": "unrelated",
      "resonate:branch": "other-branch",
      "resonate:prefix": "a.b",
      "resonate:scope": "global",
    };
    expect(expectOk(await c.createPromise("p", 1000, { tags })).promise.tags).toStrictEqual(tags);
  });

  test("a future resonate:delay postpones the first dispatch until the delay instant", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.createPromise("x", 100_000, { tags: targeted(TARGET, { [TAG_DELAY]: "2000" }) }));
    let snap = await c.check();
    expect(snap.messages).toEqual([]);
    expect(snap.taskTimeouts).toEqual([{ id: "x", type: 0, timeout: 2000 }]);
    await c.tick(1999);
    snap = await c.check();
    expect(snap.messages).toEqual([]);
    await c.tick(2000);
    snap = await c.check();
    expect(executes(snap, "x").map((m) => m.message.data.task)).toEqual([{ id: "x", version: 0 }]);
    expect(snap.taskTimeouts).toEqual([{ id: "x", type: 0, timeout: 7000 }]);
  });

  test("a resonate:delay already in the past dispatches at once", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.createPromise("x", 100_000, { tags: targeted(TARGET, { [TAG_DELAY]: "50" }) }));
    const snap = await c.snap();
    expect(executes(snap, "x")).toHaveLength(1);
    expect(snap.taskTimeouts).toEqual([{ id: "x", type: 0, timeout: 5100 }]);
  });
});

describe("promise.settle", () => {
  test.each(["resolved", "rejected", "rejected_canceled"])(
    "settles a pending promise to %s with the given value and settledAt = now",
    async (state) => {
      const { c } = h;
      c.at(100);
      await c.createPromise("p", 1000, { param: { data: "cA==" } });
      c.at(250);
      const value = { headers: { h: "1" }, data: "dg==" };
      const data = expectOk(await c.settle("p", state, value));
      expect(data).toStrictEqual({
        promise: {
          id: "p",
          state,
          param: { data: "cA==" },
          value,
          tags: {},
          timeoutAt: 1000,
          createdAt: 100,
          settledAt: 250,
        },
      });
      expect(await c.promise("p")).toStrictEqual(data.promise);
    },
  );

  test("a settle without value stores an empty value", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 1000);
    expect(expectOk(await c.settle("p", "resolved")).promise.value).toStrictEqual({});
  });

  test("answers 400 for an unsettable state before checking existence", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 1000);
    for (const id of ["p", "missing"]) {
      for (const state of ["pending", "rejected_timedout", "garbage", "", undefined, 3]) {
        expectError(await c.call("promise.settle", { id, state }), 400);
      }
    }
    expect((await c.promise("p")).state).toBe("pending");
  });

  test("answers 400 when id is missing or empty", async () => {
    const { c } = h;
    expectError(await c.call("promise.settle", { state: "resolved" }), 400);
    expectError(await c.call("promise.settle", { id: "", state: "resolved" }), 400);
  });

  test("answers 404 for an unknown promise", async () => {
    expectError(await h.c.settle("missing", "resolved"), 404);
  });

  test("settling a settled promise is absorbing: 200 with the existing record whatever is asked", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 1000);
    c.at(200);
    const first = expectOk(await c.settle("p", "resolved", { data: "QQ==" })).promise;
    c.at(300);
    for (const state of ["rejected", "rejected_canceled", "resolved"]) {
      expect(expectOk(await c.settle("p", state, { data: "Qg==" })).promise).toStrictEqual(first);
    }
    expect(first).toMatchObject({ state: "resolved", value: { data: "QQ==" }, settledAt: 200 });
  });

  test("a settle after the deadline answers 200 with rejected_timedout and does not store the value", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 500);
    c.at(600);
    const record = expectOk(await c.settle("p", "resolved", { data: "eA==" })).promise;
    expect(record).toMatchObject({ state: "rejected_timedout", value: {}, settledAt: 500 });
    expect(await c.promise("p")).toStrictEqual(record);
  });

  test("a settle exactly at the deadline already answers rejected_timedout", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 500, { tags: external() });
    c.at(500);
    expect(expectOk(await c.settle("p", "rejected")).promise).toMatchObject({
      state: "rejected_timedout",
      settledAt: 500,
    });
  });

  test("a late settle of a timer answers resolved with settledAt = timeoutAt", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("t", 500, { tags: timer() });
    c.at(900);
    expect(expectOk(await c.settle("t", "rejected", { data: "eA==" })).promise).toMatchObject({
      state: "resolved",
      value: {},
      settledAt: 500,
    });
  });

  test("settling a targeted promise from outside fulfils its task and the worker's later task.fulfill gets 409", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.taskCreate("x", 100_000));
    c.at(200);
    expectOk(await c.settle("x", "rejected_canceled"));
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "fulfilled", version: 1, resumes: 0 });
    expectError(await c.fulfill("x", 1), 409);
    const snap = await c.snap();
    expect(snap.taskTimeouts).toEqual([]);
    expect(snap.promiseTimeouts).toEqual([]);
  });

  test("the settlement queues an unblock with the settled record to every listener, in the same request", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 10_000, { tags: external() });
    expectOk(await c.registerListener("p", LISTENER));
    expectOk(await c.registerListener("p", "http://example.test/hook"));
    c.at(200);
    const settled = expectOk(await c.settle("p", "resolved", { data: "dg==" })).promise;
    const snap = await c.snap();
    const messages = unblocks(snap, "p");
    expect(messages.map((m) => m.address).sort()).toEqual(["http://example.test/hook", LISTENER].sort());
    for (const m of messages) {
      expect(m.message.kind).toBe("unblock");
      expect(m.message.data.promise).toStrictEqual(settled);
    }
    expect(snap.listeners).toEqual([]);
    // drained once: an absorbing settle queues nothing more
    expectOk(await c.settle("p", "rejected"));
    expect(unblocks(await c.snap(), "p")).toHaveLength(2);
  });
});

describe("promise.register_callback", () => {
  test("answers 400 when awaited or awaiter is missing or empty, or when they are equal", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("a", 1000, { tags: external() });
    await c.createPromise("x", 1000, { tags: targeted() });
    expectError(await c.call("promise.register_callback", { awaiter: "x" }), 400);
    expectError(await c.call("promise.register_callback", { awaited: "a" }), 400);
    expectError(await c.call("promise.register_callback", { awaited: "", awaiter: "x" }), 400);
    expectError(await c.registerCallback("x", "x"), 400);
    expectError(await c.registerCallback("missing", "missing"), 400);
  });

  test("answers 404 when the awaited promise does not exist, before looking at the awaiter", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("x", 1000, { tags: targeted() });
    expectError(await c.registerCallback("missing", "x"), 404);
    expectError(await c.registerCallback("missing", "also-missing"), 404);
  });

  test("answers 422 when the awaiter promise does not exist", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("a", 1000, { tags: external() });
    expectError(await c.registerCallback("a", "missing"), 422);
  });

  test("answers 422 when the awaiter is not targeted", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("a", 1000, { tags: external() });
    await c.createPromise("w", 1000, { tags: external() });
    expectError(await c.registerCallback("a", "w"), 422);
    expect((await c.snap()).callbacks).toEqual([]);
  });

  test("answers 422 when the awaited promise is internal", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("a", 1000);
    await c.createPromise("x", 1000, { tags: targeted() });
    expectError(await c.registerCallback("a", "x"), 422);
    expect((await c.snap()).callbacks).toEqual([]);
  });

  test("registers the awaiter on a pending external awaited, idempotently, answering the awaited record", async () => {
    const { c } = h;
    c.at(100);
    const a = expectOk(await c.createPromise("a", 1000, { tags: external() })).promise;
    await c.createPromise("x", 1000, { tags: targeted() });
    expect(expectOk(await c.registerCallback("a", "x")).promise).toStrictEqual(a);
    expect(expectOk(await c.registerCallback("a", "x")).promise).toStrictEqual(a);
    expect((await c.snap()).callbacks).toEqual([{ awaiter: "x", awaited: "a" }]);
  });

  test("accepts timers and targeted promises as awaited (both are external)", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("t", 1000, { tags: timer() });
    await c.createPromise("y", 1000, { tags: targeted() });
    await c.createPromise("x", 1000, { tags: targeted() });
    expectOk(await c.registerCallback("t", "x"));
    expectOk(await c.registerCallback("y", "x"));
    const callbacks = (await c.snap()).callbacks.map((cb) => `${cb.awaited}<-${cb.awaiter}`).sort();
    expect(callbacks).toEqual(["t<-x", "y<-x"]);
  });

  test("on a settled awaited registers nothing and answers the settled record", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("a", 1000, { tags: external() });
    await c.createPromise("x", 1000, { tags: targeted() });
    const settled = expectOk(await c.settle("a", "resolved")).promise;
    expect(expectOk(await c.registerCallback("a", "x")).promise).toStrictEqual(settled);
    expect((await c.snap()).callbacks).toEqual([]);
    expect(await c.task("x")).toMatchObject({ state: "pending", resumes: 0 });
  });

  test("on a settled awaited does not wake a suspended awaiter (no direct resume)", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.taskCreate("x", 100_000));
    await c.createPromise("a", 100_000, { tags: external() });
    await c.createPromise("b", 100_000, { tags: external() });
    expectOk(await c.suspend("x", 1, ["b"]));
    expectOk(await c.settle("a", "resolved"));
    expectOk(await c.registerCallback("a", "x"));
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "suspended", version: 1, resumes: 0 });
    expect(executes(await c.snap(), "x")).toEqual([]);
  });

  test("registers nothing when the awaiter's own promise is already settled", async () => {
    const { c } = h;
    c.at(100);
    const a = expectOk(await c.createPromise("a", 1000, { tags: external() })).promise;
    await c.createPromise("x", 1000, { tags: targeted() });
    expectOk(await c.settle("x", "resolved"));
    expect(expectOk(await c.registerCallback("a", "x")).promise).toStrictEqual(a);
    expect((await c.snap()).callbacks).toEqual([]);
  });
});

describe("promise.register_listener", () => {
  test("answers 400 when a field is missing or the address is not deliverable", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 1000, { tags: external() });
    expectError(await c.call("promise.register_listener", { address: LISTENER }), 400);
    expectError(await c.call("promise.register_listener", { awaited: "p" }), 400);
    for (const address of ["", "w1", "poll://no-at-sign", "clients"]) {
      expectError(await c.registerListener("p", address), 400);
    }
    expect((await c.snap()).listeners).toEqual([]);
  });

  test("accepts http, https and poll addresses", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 1000, { tags: external() });
    const addresses = ["http://h/x", "https://h/y", "poll://uni@g/c1", "poll://any@g", "poll://any@g/c2"];
    for (const address of addresses) expectOk(await c.registerListener("p", address));
    const snap = await c.snap();
    expect(snap.listeners.map((l) => l.address).sort()).toEqual([...addresses].sort());
    expect(snap.listeners.every((l) => l.id === "p")).toBe(true);
  });

  test("answers 404 for an unknown promise", async () => {
    expectError(await h.c.registerListener("missing"), 404);
  });

  test("answers 422 for an internal promise", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 1000);
    expectError(await c.registerListener("p"), 422);
  });

  test("registers on a pending promise, idempotently, answering the record", async () => {
    const { c } = h;
    c.at(100);
    const p = expectOk(await c.createPromise("p", 1000, { tags: external() })).promise;
    expect(expectOk(await c.registerListener("p")).promise).toStrictEqual(p);
    expect(expectOk(await c.registerListener("p")).promise).toStrictEqual(p);
    expect((await c.snap()).listeners).toEqual([{ id: "p", address: LISTENER }]);
    c.at(200);
    expectOk(await c.settle("p", "resolved"));
    expect(unblocks(await c.snap(), "p")).toHaveLength(1);
  });

  test("on a settled promise registers nothing and answers the settled record", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 1000, { tags: external() });
    const settled = expectOk(await c.settle("p", "rejected")).promise;
    expect(expectOk(await c.registerListener("p")).promise).toStrictEqual(settled);
    const snap = await c.snap();
    expect(snap.listeners).toEqual([]);
    expect(snap.messages).toEqual([]);
  });
});

describe("promise.search", () => {
  async function createMany(ids: string[], tags: Record<string, string> = {}): Promise<void> {
    for (const id of ids) expectOk(await h.c.createPromise(id, 100_000, { tags }));
  }
  const ids = (data: { promises: { id: string }[] }) => data.promises.map((p) => p.id);

  test("answers the promises in ascending id order, without cursor when nothing more exists", async () => {
    const { c } = h;
    c.at(100);
    await createMany(["c", "a", "b"]);
    const data = await c.ok("promise.search", {});
    expect(ids(data)).toEqual(["a", "b", "c"]);
    expect(data.cursor).toBeUndefined();
  });

  test("answers an empty list when nothing matches", async () => {
    const data = await h.c.ok("promise.search", {});
    expect(data).toStrictEqual({ promises: [] });
  });

  test("filters by exact state", async () => {
    const { c } = h;
    c.at(100);
    await createMany(["a", "b", "c"]);
    expectOk(await c.settle("b", "resolved"));
    expectOk(await c.settle("c", "rejected"));
    expect(ids(await c.ok("promise.search", { state: "pending" }))).toEqual(["a"]);
    expect(ids(await c.ok("promise.search", { state: "resolved" }))).toEqual(["b"]);
    expect(ids(await c.ok("promise.search", { state: "rejected" }))).toEqual(["c"]);
    expect(ids(await c.ok("promise.search", { state: "rejected_canceled" }))).toEqual([]);
  });

  test("filters on the projected state and answers projected records", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.createPromise("old", 300));
    expectOk(await c.createPromise("young", 100_000));
    c.at(500);
    expect(ids(await c.ok("promise.search", { state: "pending" }))).toEqual(["young"]);
    const timedOut = await c.ok("promise.search", { state: "rejected_timedout" });
    expect(timedOut.promises).toStrictEqual([await c.promise("old")]);
    const all = await c.ok("promise.search", {});
    expect(all.promises.map((p: { state: string }) => p.state)).toEqual(["rejected_timedout", "pending"]);
  });

  test("filters by tags: every given key and value must be present", async () => {
    const { c } = h;
    c.at(100);
    await createMany(["a"], { env: "prod", team: "x" });
    await createMany(["b"], { env: "prod" });
    await createMany(["c"], { env: "dev", team: "x" });
    expect(ids(await c.ok("promise.search", { tags: { env: "prod" } }))).toEqual(["a", "b"]);
    expect(ids(await c.ok("promise.search", { tags: { env: "prod", team: "x" } }))).toEqual(["a"]);
    expect(ids(await c.ok("promise.search", { tags: { team: "y" } }))).toEqual([]);
  });

  test("filters by an id prefix ending in *", async () => {
    const { c } = h;
    c.at(100);
    await createMany(["order-7", "order-70", "order-7.1", "order-8", "xorder-7"]);
    expect(ids(await c.ok("promise.search", { id: "order-7*" }))).toEqual([
      "order-7",
      "order-7.1",
      "order-70",
    ]);
    expect(ids(await c.ok("promise.search", { id: "order-*" }))).toEqual([
      "order-7",
      "order-7.1",
      "order-70",
      "order-8",
    ]);
  });

  test("pages with a cursor: ids strictly greater than it, the cursor present only while more results exist", async () => {
    const { c } = h;
    c.at(100);
    await createMany(["p1", "p2", "p3", "p4", "p5"]);
    const page1 = await c.ok("promise.search", { limit: 2 });
    expect(ids(page1)).toEqual(["p1", "p2"]);
    expect(page1.cursor).toBe("p2");
    const page2 = await c.ok("promise.search", { limit: 2, cursor: page1.cursor });
    expect(ids(page2)).toEqual(["p3", "p4"]);
    expect(page2.cursor).toBe("p4");
    const page3 = await c.ok("promise.search", { limit: 2, cursor: page2.cursor });
    expect(ids(page3)).toEqual(["p5"]);
    expect(page3.cursor).toBeUndefined();
    const exact = await c.ok("promise.search", { limit: 5 });
    expect(ids(exact)).toHaveLength(5);
    expect(exact.cursor).toBeUndefined();
    expect(ids(await c.ok("promise.search", { cursor: "p3" }))).toEqual(["p4", "p5"]);
    expect(ids(await c.ok("promise.search", { cursor: "p2x" }))).toEqual(["p3", "p4", "p5"]);
  });

  test("the default limit is 100", async () => {
    const { c } = h;
    c.at(100);
    await createMany(Array.from({ length: 101 }, (_, i) => `p${String(i).padStart(3, "0")}`));
    const page = await c.ok("promise.search", {});
    expect(page.promises).toHaveLength(100);
    expect(page.cursor).toBe("p099");
    const rest = await c.ok("promise.search", { cursor: page.cursor });
    expect(ids(rest)).toEqual(["p100"]);
    expect(rest.cursor).toBeUndefined();
  });

  test("limit must be an integer from 1 to 1000, else 400", async () => {
    const { c } = h;
    for (const limit of [0, -1, 1001, 1.5, "10", null]) {
      expectError(await c.call("promise.search", { limit }), 400);
    }
    expectOk(await c.call("promise.search", { limit: 1 }));
    expectOk(await c.call("promise.search", { limit: 1000 }));
  });

  test("an unknown state or tags that are not an object answer 400", async () => {
    const { c } = h;
    for (const state of ["acquired", "garbage", "", 1]) {
      expectError(await c.call("promise.search", { state }), 400);
    }
    for (const tags of ["x", 1, ["a"]]) {
      expectError(await c.call("promise.search", { tags }), 400);
    }
  });
});
