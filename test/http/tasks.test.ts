/**
 * Task operations over HTTP (PROTOCOL.md §5, §3.2, §3.4, §3.6–§3.8), black box:
 * create/acquire/fence/heartbeat/suspend/fulfill/release/halt/continue/search,
 * the internal transitions R4–R6 driven by requests and `debug.tick`, and
 * preload.
 */
import { describe, expect, test } from "vitest";
import {
  type Client,
  executeKeys,
  expectError,
  expectOk,
  external,
  LISTENER,
  nextCorrId,
  TAG_BRANCH,
  TAG_DELAY,
  TARGET,
  targeted,
  timer,
  unblocks,
  VERSION,
} from "../support/client.js";
import { useServer } from "../support/server.js";

const h = useServer();

/** A task acquired at version 1 by `w1` through `task.create`. */
async function acquiredTask(c: Client, id: string, timeoutAt = 100_000, ttl = 60_000): Promise<void> {
  const data = expectOk(await c.taskCreate(id, timeoutAt, { ttl }));
  expect(data.task).toMatchObject({ state: "acquired", version: 1 });
}

async function externalPromise(c: Client, id: string, timeoutAt = 100_000): Promise<void> {
  expectOk(await c.createPromise(id, timeoutAt, { tags: external() }));
}

function inner(kind: string, data: unknown) {
  return { kind, head: { corrId: nextCorrId(), version: VERSION }, data };
}

describe("task.get", () => {
  test("answers 400 when id is missing or empty", async () => {
    expectError(await h.c.call("task.get", {}), 400);
    expectError(await h.c.call("task.get", { id: "" }), 400);
  });

  test("answers 404 for an unknown id and for an untargeted promise's id", async () => {
    const { c } = h;
    c.at(100);
    await externalPromise(c, "p");
    expectError(await c.call("task.get", { id: "missing" }), 404);
    expectError(await c.call("task.get", { id: "p" }), 404);
  });

  test("answers 200 with the task record", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("x", 100_000, { tags: targeted() });
    expect(await c.ok("task.get", { id: "x" })).toStrictEqual({
      task: { id: "x", state: "pending", version: 0, resumes: 0 },
    });
  });

  test("reads fulfilled once the task's promise has timed out, without any tick", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x", 300);
    c.at(300);
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "fulfilled", version: 1, resumes: 0 });
  });
});

describe("task.create", () => {
  test("creates the promise and its task acquired at version 1, without an execute", async () => {
    const { c } = h;
    c.at(100);
    const data = expectOk(
      await c.taskCreate("r", 10_000, { pid: "w7", ttl: 30_000, param: { data: "cA==" } }),
    );
    expect(data).toStrictEqual({
      task: { id: "r", state: "acquired", version: 1, resumes: 0, pid: "w7", ttl: 30_000 },
      promise: {
        id: "r",
        state: "pending",
        param: { data: "cA==" },
        value: {},
        tags: targeted(),
        timeoutAt: 10_000,
        createdAt: 100,
      },
      preload: [],
    });
    const snap = await c.snap();
    expect(snap.messages).toEqual([]);
    expect(snap.taskTimeouts).toEqual([{ id: "r", type: 1, timeout: 30_100 }]);
    expect(snap.promiseTimeouts).toEqual([{ id: "r", timeout: 10_000 }]);
  });

  test("answers 400 for malformed data and creates nothing", async () => {
    const { c } = h;
    c.at(100);
    const action = inner("promise.create", { id: "r", timeoutAt: 10_000, tags: targeted() });
    const cases: unknown[] = [
      { ttl: 1000, action },
      { pid: "w1", action },
      { pid: "w1", ttl: -1, action },
      { pid: "w1", ttl: 1.5, action },
      { pid: "w1", ttl: 1000 },
      { pid: "w1", ttl: 1000, action: "x" },
      { pid: "w1", ttl: 1000, action: inner("promise.settle", { id: "r", state: "resolved" }) },
      { pid: "w1", ttl: 1000, action: { kind: "promise.create", head: {} } },
      { pid: "w1", ttl: 1000, action: inner("promise.create", { timeoutAt: 10_000, tags: targeted() }) },
      { pid: "w1", ttl: 1000, action: inner("promise.create", { id: "r", tags: targeted() }) },
      { pid: "w1", ttl: 1000, action: inner("promise.create", { id: "r", timeoutAt: 10_000 }) },
      {
        pid: "w1",
        ttl: 1000,
        action: inner("promise.create", { id: "r", timeoutAt: 10_000, tags: external() }),
      },
    ];
    for (const data of cases) expectError(await c.call("task.create", data), 400);
    const snap = await c.snap();
    expect(snap.promises).toEqual([]);
    expect(snap.tasks).toEqual([]);
  });

  test("accepts a timer that is also targeted (Pledge's interop decision)", async () => {
    const { c } = h;
    c.at(100);
    const data = expectOk(await c.taskCreate("tm", 1000, { tags: { ...timer(), ...targeted() } }));
    expect(data.task).toMatchObject({ state: "acquired", version: 1 });
    await c.tick(1000);
    expect(await c.promise("tm")).toMatchObject({ state: "resolved", settledAt: 1000 });
  });

  test("born dead: the promise is rejected_timedout and the task fulfilled at version 0", async () => {
    const { c } = h;
    c.at(1000);
    const data = expectOk(await c.taskCreate("x", 500));
    expect(data.task).toStrictEqual({ id: "x", state: "fulfilled", version: 0, resumes: 0 });
    expect(data.promise).toMatchObject({ state: "rejected_timedout", createdAt: 500, settledAt: 500 });
    expect(data.preload).toEqual([]);
    const timerData = expectOk(await c.taskCreate("tm", 500, { tags: { ...timer(), ...targeted() } }));
    expect(timerData.promise).toMatchObject({ state: "resolved", createdAt: 500, settledAt: 500 });
    expect(timerData.task).toMatchObject({ state: "fulfilled", version: 0 });
    expect((await c.snap()).messages).toEqual([]);
  });

  test("on an existing untargeted promise answers 422", async () => {
    const { c } = h;
    c.at(100);
    await externalPromise(c, "p");
    expectError(await c.taskCreate("p", 100_000), 422);
    expectError(await c.taskCreate("p", 100_000), 422);
  });

  test("on an existing pending task acquires it (version + 1) and never overwrites the promise", async () => {
    const { c } = h;
    c.at(100);
    const created = expectOk(await c.createPromise("x", 100_000, { tags: targeted() })).promise;
    c.at(200);
    const data = expectOk(
      await c.taskCreate("x", 999_999, {
        pid: "w2",
        ttl: 1000,
        tags: targeted("other"),
        param: { data: "eA==" },
      }),
    );
    expect(data.task).toStrictEqual({
      id: "x",
      state: "acquired",
      version: 1,
      resumes: 0,
      pid: "w2",
      ttl: 1000,
    });
    expect(data.promise).toStrictEqual(created);
    expect((await c.snap()).taskTimeouts).toEqual([{ id: "x", type: 1, timeout: 1200 }]);
  });

  test("bumps whatever version the pending task is at", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("x", 100_000, { tags: targeted() });
    expectOk(await c.acquire("x", 0));
    expectOk(await c.release("x", 1));
    expect(expectOk(await c.taskCreate("x", 100_000)).task).toMatchObject({ state: "acquired", version: 2 });
  });

  test("on an acquired, suspended or halted task answers 409", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "acq");
    expectError(await c.taskCreate("acq", 100_000), 409);

    await acquiredTask(c, "sus");
    await externalPromise(c, "a");
    expectOk(await c.suspend("sus", 1, ["a"]));
    expectError(await c.taskCreate("sus", 100_000), 409);

    await c.createPromise("hal", 100_000, { tags: targeted() });
    expectOk(await c.call("task.halt", { id: "hal" }));
    expectError(await c.taskCreate("hal", 100_000), 409);
  });

  test("on a fulfilled task answers 200 with the fulfilled task, the settled promise and an empty preload", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("x", 100_000, { tags: targeted(TARGET, { [TAG_BRANCH]: "x" }) });
    await c.createPromise("x.1", 100_000, { tags: { [TAG_BRANCH]: "x" } });
    const settled = expectOk(await c.settle("x", "resolved")).promise;
    c.at(200);
    const data = expectOk(await c.taskCreate("x", 100_000));
    expect(data).toStrictEqual({
      task: { id: "x", state: "fulfilled", version: 0, resumes: 0 },
      promise: settled,
      preload: [],
    });
  });
});

describe("task.acquire", () => {
  test("acquires a pending task: version + 1, pid, ttl, lease at now + ttl, retry timer removed", async () => {
    const { c } = h;
    c.at(100);
    const created = expectOk(await c.createPromise("x", 100_000, { tags: targeted() })).promise;
    c.at(200);
    const data = expectOk(await c.acquire("x", 0, "w9", 3000));
    expect(data).toStrictEqual({
      task: { id: "x", state: "acquired", version: 1, resumes: 0, pid: "w9", ttl: 3000 },
      promise: created,
      preload: [],
    });
    expect((await c.snap()).taskTimeouts).toEqual([{ id: "x", type: 1, timeout: 3200 }]);
  });

  test("answers 400 for malformed data", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("x", 100_000, { tags: targeted() });
    const cases: unknown[] = [
      { version: 0, pid: "w1", ttl: 1000 },
      { id: "", version: 0, pid: "w1", ttl: 1000 },
      { id: "x", pid: "w1", ttl: 1000 },
      { id: "x", version: -1, pid: "w1", ttl: 1000 },
      { id: "x", version: 0.5, pid: "w1", ttl: 1000 },
      { id: "x", version: "0", pid: "w1", ttl: 1000 },
      { id: "x", version: 0, ttl: 1000 },
      { id: "x", version: 0, pid: "w1" },
      { id: "x", version: 0, pid: "w1", ttl: -5 },
      { id: "x", version: 0, pid: "w1", ttl: 2.5 },
    ];
    for (const data of cases) expectError(await c.call("task.acquire", data), 400);
    expect(await c.task("x")).toMatchObject({ state: "pending", version: 0 });
  });

  test("answers 404 when there is no task", async () => {
    const { c } = h;
    c.at(100);
    await externalPromise(c, "p");
    expectError(await c.acquire("missing", 0), 404);
    expectError(await c.acquire("p", 0), 404);
  });

  test("a second acquire of the same version answers 409 (exclusive, not idempotent)", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("x", 100_000, { tags: targeted() });
    expectOk(await c.acquire("x", 0, "w1"));
    expectError(await c.acquire("x", 0, "w2"), 409);
    expectError(await c.acquire("x", 0, "w1"), 409);
    expect(await c.task("x")).toMatchObject({ state: "acquired", version: 1, pid: "w1" });
  });

  test("a wrong version answers 409", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("x", 100_000, { tags: targeted() });
    expectError(await c.acquire("x", 1), 409);
    expectError(await c.acquire("x", 7), 409);
    expect(await c.task("x")).toMatchObject({ state: "pending", version: 0 });
  });

  test("acquiring a task whose promise timed out answers 409", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("x", 300, { tags: targeted() });
    c.at(300);
    expectError(await c.acquire("x", 0), 409);
    expect(await c.task("x")).toMatchObject({ state: "fulfilled", version: 0 });
  });

  test("acquiring a suspended, halted or fulfilled task answers 409", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "s");
    await externalPromise(c, "a");
    expectOk(await c.suspend("s", 1, ["a"]));
    expectError(await c.acquire("s", 1), 409);

    await c.createPromise("hal", 100_000, { tags: targeted() });
    expectOk(await c.call("task.halt", { id: "hal" }));
    expectError(await c.acquire("hal", 0), 409);

    await c.createPromise("f", 100_000, { tags: targeted() });
    expectOk(await c.settle("f", "resolved"));
    expectError(await c.acquire("f", 0), 409);
  });

  test("accepts ttl 0", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("x", 100_000, { tags: targeted() });
    expect(expectOk(await c.acquire("x", 0, "w1", 0)).task).toMatchObject({ state: "acquired", ttl: 0 });
  });

  test("acquisition clears buffered resumes", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("x", 100_000, { tags: targeted() });
    await externalPromise(c, "a");
    expectOk(await c.registerCallback("a", "x"));
    expectOk(await c.settle("a", "resolved"));
    expect(await c.task("x")).toMatchObject({ state: "pending", version: 0, resumes: 1 });
    expect(expectOk(await c.acquire("x", 0)).task).toMatchObject({
      state: "acquired",
      version: 1,
      resumes: 0,
    });
  });
});

describe("task.fence", () => {
  test("a fenced create answers outer 200 with the inner promise.create reply, echoing the outer corrId", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "r");
    c.at(150);
    const reply = await c.call(
      "task.fence",
      { id: "r", version: 1, action: inner("promise.create", { id: "r.1", timeoutAt: 5000 }) },
      { corrId: "outer-corr" },
    );
    expect(reply.corrId).toBe("outer-corr");
    expect(expectOk(reply)).toStrictEqual({
      action: {
        kind: "promise.create",
        head: { corrId: "outer-corr", status: 200, version: VERSION },
        data: {
          promise: {
            id: "r.1",
            state: "pending",
            param: {},
            value: {},
            tags: {},
            timeoutAt: 5000,
            createdAt: 150,
          },
        },
      },
      preload: [],
    });
    expect(await c.promise("r.1")).toMatchObject({ state: "pending", createdAt: 150 });
  });

  test("a fenced settle settles another promise and runs its cascade", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "r");
    await externalPromise(c, "a");
    expectOk(await c.registerListener("a"));
    c.at(200);
    const data = expectOk(
      await c.fence("r", 1, { kind: "promise.settle", data: { id: "a", state: "rejected" } }),
    );
    expect(data.action.kind).toBe("promise.settle");
    expect(data.action.head.status).toBe(200);
    expect(data.action.data.promise).toMatchObject({ id: "a", state: "rejected", settledAt: 200 });
    expect(unblocks(await c.snap(), "a")).toHaveLength(1);
  });

  test("a fenced create of a targeted child creates its pending task and queues its execute", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "r");
    const data = expectOk(
      await c.fence("r", 1, {
        kind: "promise.create",
        data: { id: "r.1", timeoutAt: 100_000, tags: targeted("poll://any@default") },
      }),
    );
    expect(data.action.head.status).toBe(200);
    expect(await c.task("r.1")).toMatchObject({ state: "pending", version: 0 });
    expect(executeKeys(await c.snap())).toEqual(["r.1@0->poll://any@default"]);
  });

  test("a fenced create replay answers the existing promise", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "r");
    const first = expectOk(
      await c.fence("r", 1, { kind: "promise.create", data: { id: "c", timeoutAt: 5000 } }),
    );
    c.at(200);
    const again = expectOk(
      await c.fence("r", 1, { kind: "promise.create", data: { id: "c", timeoutAt: 9000 } }),
    );
    expect(again.action.data.promise).toStrictEqual(first.action.data.promise);
  });

  test("answers outer 400 for a missing or malformed action, another kind, or acting on its own id", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "r");
    const cases: unknown[] = [
      { id: "r", version: 1 },
      { id: "r", version: 1, action: "x" },
      { id: "r", version: 1, action: { head: {}, data: { id: "c", timeoutAt: 5000 } } },
      { id: "r", version: 1, action: { kind: "promise.create", head: {} } },
      { id: "r", version: 1, action: { kind: "promise.create", head: {}, data: "x" } },
      { id: "r", version: 1, action: inner("promise.get", { id: "c" }) },
      { id: "r", version: 1, action: inner("task.fence", { id: "c" }) },
      { id: "r", version: 1, action: inner("promise.settle", { id: "r", state: "resolved" }) },
      { id: "r", version: 1, action: inner("promise.create", { id: "r", timeoutAt: 5000 }) },
      { version: 1, action: inner("promise.create", { id: "c", timeoutAt: 5000 }) },
      { id: "r", action: inner("promise.create", { id: "c", timeoutAt: 5000 }) },
      // acting on its own id is 400 before existence
      { id: "missing", version: 1, action: inner("promise.settle", { id: "missing", state: "resolved" }) },
    ];
    for (const data of cases) expectError(await c.call("task.fence", data), 400);
    expect((await c.promise("r")).state).toBe("pending");
    expect((await c.snap()).promises.map((p) => p.id)).toEqual(["r"]);
  });

  test("a fenced settle of a missing promise is outer 200 with inner 404 and string data", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "r");
    const data = expectOk(
      await c.fence("r", 1, { kind: "promise.settle", data: { id: "nope", state: "resolved" } }),
    );
    expect(data.action.kind).toBe("promise.settle");
    expect(data.action.head.status).toBe(404);
    expect(typeof data.action.data).toBe("string");
  });

  test("a fenced settle with an unsettable state is outer 200 with inner 400", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "r");
    await externalPromise(c, "a");
    for (const state of ["rejected_timedout", "pending", "garbage"]) {
      const data = expectOk(await c.fence("r", 1, { kind: "promise.settle", data: { id: "a", state } }));
      expect(data.action.head.status).toBe(400);
      expect(typeof data.action.data).toBe("string");
    }
    expect((await c.promise("a")).state).toBe("pending");
  });

  test("a fenced create with malformed data is outer 200 with inner 400", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "r");
    for (const bad of [{ id: "c" }, { id: "c", timeoutAt: -1 }, { id: "", timeoutAt: 5000 }]) {
      const data = expectOk(await c.fence("r", 1, { kind: "promise.create", data: bad }));
      expect(data.action.head.status).toBe(400);
      expect(typeof data.action.data).toBe("string");
    }
    expect((await c.snap()).promises.map((p) => p.id)).toEqual(["r"]);
  });

  test("answers 404 for a missing task and 409 when the task is not acquired or the version moved", async () => {
    const { c } = h;
    c.at(100);
    const create = { kind: "promise.create", data: { id: "c", timeoutAt: 5000 } };
    expectError(await c.fence("missing", 1, create), 404);
    await c.createPromise("x", 100_000, { tags: targeted() });
    expectError(await c.fence("x", 0, create), 409);
    expectOk(await c.acquire("x", 0));
    expectError(await c.fence("x", 0, create), 409);
    expectError(await c.fence("x", 2, create), 409);
    expectError(await c.call("promise.get", { id: "c" }), 404);
  });

  test("the lease is not extended by a fence", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "r", 100_000, 1000);
    c.at(500);
    expectOk(await c.fence("r", 1, { kind: "promise.create", data: { id: "c", timeoutAt: 5000 } }));
    expect((await c.snap()).taskTimeouts).toEqual([{ id: "r", type: 1, timeout: 1100 }]);
  });
});

describe("task.heartbeat", () => {
  test("extends the lease of each matching task to now + its ttl", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x", 100_000, 1000);
    await acquiredTask(c, "y", 100_000, 2000);
    c.at(600);
    expect(
      expectOk(
        await c.heartbeat("w1", [
          { id: "x", version: 1 },
          { id: "y", version: 1 },
        ]),
      ),
    ).toStrictEqual({});
    const timeouts = (await c.snap()).taskTimeouts.sort((a, b) => a.id.localeCompare(b.id));
    expect(timeouts).toEqual([
      { id: "x", type: 1, timeout: 1600 },
      { id: "y", type: 1, timeout: 2600 },
    ]);
  });

  test("an extended lease does not expire at its old deadline", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x", 100_000, 1000);
    c.at(600);
    expectOk(await c.heartbeat("w1", [{ id: "x", version: 1 }]));
    await c.tick(1100);
    expect(await c.task("x")).toMatchObject({ state: "acquired", version: 1 });
    await c.tick(1600);
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "pending", version: 1, resumes: 0 });
  });

  test("an empty task list answers 200", async () => {
    expect(expectOk(await h.c.heartbeat("w1", []))).toStrictEqual({});
  });

  test("skips silently another pid, an old version, a task not acquired and an unknown id", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x", 100_000, 1000);
    await c.createPromise("p", 100_000, { tags: targeted() });
    c.at(600);
    expectOk(await c.heartbeat("w2", [{ id: "x", version: 1 }]));
    expectOk(await c.heartbeat("w1", [{ id: "x", version: 0 }]));
    expectOk(
      await c.heartbeat("w1", [
        { id: "p", version: 0 },
        { id: "missing", version: 1 },
      ]),
    );
    const snap = await c.snap();
    expect(snap.taskTimeouts.find((t) => t.id === "x")).toEqual({ id: "x", type: 1, timeout: 1100 });
    expect(snap.taskTimeouts.find((t) => t.id === "p")).toEqual({ id: "p", type: 0, timeout: 5100 });
  });

  test("answers 400 for malformed data", async () => {
    const { c } = h;
    const cases: unknown[] = [
      { tasks: [] },
      { pid: "w1" },
      { pid: "w1", tasks: "x" },
      { pid: "w1", tasks: [{ id: "x" }] },
      { pid: "w1", tasks: [{ version: 1 }] },
      { pid: "w1", tasks: [{ id: "x", version: -1 }] },
    ];
    for (const data of cases) expectError(await c.call("task.heartbeat", data), 400);
  });
});

describe("task.suspend", () => {
  test("parks the task: suspended, lease cleared, a callback on every awaited promise", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    await externalPromise(c, "a");
    await externalPromise(c, "b");
    c.at(200);
    expect(expectOk(await c.suspend("x", 1, ["a", "b"]))).toStrictEqual({});
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "suspended", version: 1, resumes: 0 });
    const snap = await c.snap();
    expect(snap.callbacks.map((cb) => `${cb.awaited}<-${cb.awaiter}`).sort()).toEqual(["a<-x", "b<-x"]);
    expect(snap.taskTimeouts).toEqual([]);
  });

  test("answers 300 with preload when an awaited promise is already settled, keeping the task and its lease", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x", 100_000, 1000);
    await externalPromise(c, "a");
    await externalPromise(c, "b");
    expectOk(await c.settle("a", "resolved"));
    c.at(200);
    const reply = await c.suspend("x", 1, ["b", "a"]);
    const data = expectOk(reply, 300);
    expect(Array.isArray(data.preload)).toBe(true);
    expect(await c.task("x")).toMatchObject({ state: "acquired", version: 1, pid: "w1", ttl: 1000 });
    const snap = await c.snap();
    expect(snap.callbacks).toEqual([]);
    expect(snap.taskTimeouts).toEqual([{ id: "x", type: 1, timeout: 1100 }]);
  });

  test("answers 300 when an awaited promise is only logically settled (past its deadline)", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    await externalPromise(c, "a", 300);
    c.at(300);
    expectOk(await c.suspend("x", 1, ["a"]), 300);
    expect(await c.task("x")).toMatchObject({ state: "acquired", version: 1 });
    expect((await c.snap()).callbacks).toEqual([]);
  });

  test("answers 400 before existence for empty actions, awaiting itself or awaiting the same promise twice", async () => {
    const { c } = h;
    c.at(100);
    for (const id of ["missing", "x"]) {
      if (id === "x") await acquiredTask(c, "x");
      await externalPromise(c, `a-${id}`);
      expectError(await c.call("task.suspend", { id, version: 1, actions: [] }), 400);
      expectError(await c.call("task.suspend", { id, version: 1 }), 400);
      expectError(await c.suspend(id, 1, [id]), 400);
      expectError(await c.suspend(id, 1, [`a-${id}`, `a-${id}`]), 400);
    }
    expect(await c.task("x")).toMatchObject({ state: "acquired" });
    expect((await c.snap()).callbacks).toEqual([]);
  });

  test("answers 404 for a missing task and 409 when not acquired or the version moved", async () => {
    const { c } = h;
    c.at(100);
    await externalPromise(c, "a");
    expectError(await c.suspend("missing", 1, ["a"]), 404);
    await c.createPromise("x", 100_000, { tags: targeted() });
    expectError(await c.suspend("x", 0, ["a"]), 409);
    expectOk(await c.acquire("x", 0));
    expectError(await c.suspend("x", 0, ["a"]), 409);
    expectError(await c.suspend("x", 2, ["a"]), 409);
    expect((await c.snap()).callbacks).toEqual([]);
  });

  test("answers 409 when the task's promise has timed out", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x", 300);
    await externalPromise(c, "a");
    c.at(400);
    expectError(await c.suspend("x", 1, ["a"]), 409);
  });

  test("answers 422 when an awaited promise is missing, registering nothing (all or nothing)", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    await externalPromise(c, "a");
    expectError(await c.suspend("x", 1, ["a", "missing"]), 422);
    expect(await c.task("x")).toMatchObject({ state: "acquired", version: 1 });
    expect((await c.snap()).callbacks).toEqual([]);
  });

  test("answers 422 when an awaited promise is internal, registering nothing", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    await externalPromise(c, "a");
    await c.createPromise("i", 100_000);
    expectError(await c.suspend("x", 1, ["a", "i"]), 422);
    expect(await c.task("x")).toMatchObject({ state: "acquired", version: 1 });
    expect((await c.snap()).callbacks).toEqual([]);
  });

  test("a suspended task wakes when an awaited promise settles: pending, resumes 1, execute at its version", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    await externalPromise(c, "a");
    await externalPromise(c, "b");
    expectOk(await c.suspend("x", 1, ["a", "b"]));
    c.at(300);
    expectOk(await c.settle("a", "resolved"));
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "pending", version: 1, resumes: 1 });
    let snap = await c.check();
    expect(executeKeys(snap)).toEqual([`x@1->${TARGET}`]);
    expect(snap.taskTimeouts).toEqual([{ id: "x", type: 0, timeout: 5300 }]);
    expect(snap.callbacks).toEqual([{ awaiter: "x", awaited: "b" }]);
    // the second awaited settling while the task is pending buffers a second resume
    c.at(400);
    expectOk(await c.settle("b", "resolved"));
    expect(await c.task("x")).toMatchObject({ state: "pending", version: 1, resumes: 2 });
    snap = await c.check();
    expect(snap.callbacks).toEqual([]);
  });

  test("a successful suspend clears buffered resumes", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    await externalPromise(c, "a");
    await externalPromise(c, "b");
    expectOk(await c.registerCallback("a", "x"));
    expectOk(await c.settle("a", "resolved"));
    expect(await c.task("x")).toMatchObject({ state: "acquired", resumes: 1 });
    expectOk(await c.suspend("x", 1, ["b"]));
    expect(await c.task("x")).toMatchObject({ state: "suspended", resumes: 0 });
  });
});

describe("task.fulfill", () => {
  test("settles the task's own promise and fulfils the task", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    c.at(200);
    const value = { data: "b2s=" };
    const data = expectOk(await c.fulfill("x", 1, "resolved", value));
    expect(data).toStrictEqual({
      promise: {
        id: "x",
        state: "resolved",
        param: {},
        value,
        tags: targeted(),
        timeoutAt: 100_000,
        createdAt: 100,
        settledAt: 200,
      },
    });
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "fulfilled", version: 1, resumes: 0 });
    const snap = await c.snap();
    expect(snap.taskTimeouts).toEqual([]);
    expect(snap.promiseTimeouts).toEqual([]);
  });

  test.each(["rejected", "rejected_canceled"])("may settle the task's promise as %s", async (state) => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    expect(expectOk(await c.fulfill("x", 1, state)).promise.state).toBe(state);
  });

  test("answers 400 for malformed data or an unsettable state", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    const settle = (state: string) => inner("promise.settle", { id: "x", state });
    const cases: unknown[] = [
      { version: 1, action: settle("resolved") },
      { id: "x", action: settle("resolved") },
      { id: "x", version: 1 },
      { id: "x", version: 1, action: settle("rejected_timedout") },
      { id: "x", version: 1, action: settle("pending") },
      { id: "x", version: 1, action: settle("garbage") },
      { id: "x", version: 1, action: inner("promise.create", { id: "x", timeoutAt: 100 }) },
    ];
    for (const data of cases) expectError(await c.call("task.fulfill", data), 400);
    expect(await c.task("x")).toMatchObject({ state: "acquired" });
  });

  test("answers 404 for a missing task and 409 when not acquired, the version moved or the promise settled", async () => {
    const { c } = h;
    c.at(100);
    expectError(await c.fulfill("missing", 1), 404);
    await c.createPromise("x", 100_000, { tags: targeted() });
    expectError(await c.fulfill("x", 0), 409);
    expectOk(await c.acquire("x", 0));
    expectError(await c.fulfill("x", 0), 409);
    expectError(await c.fulfill("x", 2), 409);
    await acquiredTask(c, "y", 300);
    c.at(300);
    expectError(await c.fulfill("y", 1), 409);
    expect(await c.promise("y")).toMatchObject({ state: "rejected_timedout" });
  });

  test("fulfilling wakes awaiters and unblocks listeners in the same request", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "child");
    await acquiredTask(c, "parent");
    expectOk(await c.suspend("parent", 1, ["child"]));
    expectOk(await c.registerListener("child"));
    c.at(200);
    const settled = expectOk(await c.fulfill("child", 1)).promise;
    expect(await c.task("parent")).toMatchObject({ state: "pending", version: 1, resumes: 1 });
    const snap = await c.snap();
    expect(executeKeys(snap)).toEqual([`parent@1->${TARGET}`]);
    expect(unblocks(snap, "child").map((m) => m.message.data.promise)).toEqual([settled]);
  });
});

describe("task.release", () => {
  test("returns the task to pending at the same version and queues an execute at once", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    c.at(200);
    expect(expectOk(await c.release("x", 1))).toStrictEqual({});
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "pending", version: 1, resumes: 0 });
    const snap = await c.snap();
    expect(executeKeys(snap)).toEqual([`x@1->${TARGET}`]);
    expect(snap.taskTimeouts).toEqual([{ id: "x", type: 0, timeout: 5200 }]);
  });

  test("keeps buffered resumes", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    await externalPromise(c, "a");
    expectOk(await c.registerCallback("a", "x"));
    expectOk(await c.settle("a", "resolved"));
    expectOk(await c.release("x", 1));
    expect(await c.task("x")).toMatchObject({ state: "pending", resumes: 1 });
  });

  test("answers 400 for malformed data, 404 for a missing task, 409 when not acquired or the version moved", async () => {
    const { c } = h;
    c.at(100);
    expectError(await c.call("task.release", { id: "x" }), 400);
    expectError(await c.call("task.release", { version: 1 }), 400);
    expectError(await c.call("task.release", { id: "x", version: -1 }), 400);
    expectError(await c.release("missing", 1), 404);
    await c.createPromise("x", 100_000, { tags: targeted() });
    expectError(await c.release("x", 0), 409);
    expectOk(await c.acquire("x", 0));
    expectError(await c.release("x", 0), 409);
    expectError(await c.release("x", 2), 409);
    expect(await c.task("x")).toMatchObject({ state: "acquired", version: 1 });
  });
});

describe("task.halt", () => {
  test("halts a pending task: no timers, version kept, never dispatched and not acquirable", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("x", 100_000, { tags: targeted(TARGET, { [TAG_DELAY]: "2000" }) });
    expect(expectOk(await c.call("task.halt", { id: "x" }))).toStrictEqual({});
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "halted", version: 0, resumes: 0 });
    expect((await c.snap()).taskTimeouts).toEqual([]);
    expectError(await c.acquire("x", 0), 409);
    await c.tick(10_000);
    expect((await c.snap()).messages).toEqual([]);
    expect(await c.task("x")).toMatchObject({ state: "halted" });
  });

  test("halts an acquired task, revoking its lease", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    expectOk(await c.call("task.halt", { id: "x" }));
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "halted", version: 1, resumes: 0 });
    expectError(await c.fulfill("x", 1), 409);
    expectError(await c.release("x", 1), 409);
  });

  test("halts a suspended task whose callbacks stay registered; a settlement then buffers a resume", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    await externalPromise(c, "a");
    expectOk(await c.suspend("x", 1, ["a"]));
    expectOk(await c.call("task.halt", { id: "x" }));
    expect((await c.snap()).callbacks).toEqual([{ awaiter: "x", awaited: "a" }]);
    expectOk(await c.settle("a", "resolved"));
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "halted", version: 1, resumes: 1 });
    expect((await c.snap()).messages).toEqual([]);
  });

  test("halting a halted task answers 200", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    expectOk(await c.call("task.halt", { id: "x" }));
    expect(expectOk(await c.call("task.halt", { id: "x" }))).toStrictEqual({});
  });

  test("halting a fulfilled task answers 409", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    expectOk(await c.fulfill("x", 1));
    expectError(await c.call("task.halt", { id: "x" }), 409);
  });

  test("answers 400 without an id and 404 for a missing task", async () => {
    const { c } = h;
    c.at(100);
    await externalPromise(c, "p");
    expectError(await c.call("task.halt", {}), 400);
    expectError(await c.call("task.halt", { id: "missing" }), 404);
    expectError(await c.call("task.halt", { id: "p" }), 404);
  });
});

describe("task.continue", () => {
  test("continues a halted task: pending at the same version with an execute queued at once", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x");
    expectOk(await c.call("task.halt", { id: "x" }));
    c.at(300);
    expect(expectOk(await c.call("task.continue", { id: "x" }))).toStrictEqual({});
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "pending", version: 1, resumes: 0 });
    const snap = await c.snap();
    expect(executeKeys(snap)).toEqual([`x@1->${TARGET}`]);
    expect(snap.taskTimeouts).toEqual([{ id: "x", type: 0, timeout: 5300 }]);
  });

  test("answers 409 when the task is pending, acquired, suspended or fulfilled", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("p", 100_000, { tags: targeted() });
    expectError(await c.call("task.continue", { id: "p" }), 409);
    await acquiredTask(c, "a");
    expectError(await c.call("task.continue", { id: "a" }), 409);
    await externalPromise(c, "e");
    expectOk(await c.suspend("a", 1, ["e"]));
    expectError(await c.call("task.continue", { id: "a" }), 409);
    await acquiredTask(c, "f");
    expectOk(await c.fulfill("f", 1));
    expectError(await c.call("task.continue", { id: "f" }), 409);
  });

  test("answers 400 without an id and 404 for a missing task", async () => {
    expectError(await h.c.call("task.continue", {}), 400);
    expectError(await h.c.call("task.continue", { id: "missing" }), 404);
  });
});

describe("task.search", () => {
  const ids = (data: { tasks: { id: string }[] }) => data.tasks.map((t) => t.id);

  test("answers tasks in ascending id order, filtered by state", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("c", 100_000, { tags: targeted() });
    await acquiredTask(c, "b");
    await c.createPromise("a", 100_000, { tags: targeted() });
    await acquiredTask(c, "d");
    expectOk(await c.fulfill("d", 1));
    expect(ids(await c.ok("task.search", {}))).toEqual(["a", "b", "c", "d"]);
    expect(ids(await c.ok("task.search", { state: "pending" }))).toEqual(["a", "c"]);
    expect(ids(await c.ok("task.search", { state: "acquired" }))).toEqual(["b"]);
    expect(ids(await c.ok("task.search", { state: "fulfilled" }))).toEqual(["d"]);
    expect(ids(await c.ok("task.search", { state: "halted" }))).toEqual([]);
    const all = await c.ok("task.search", {});
    expect(all.tasks[1]).toStrictEqual({
      id: "b",
      state: "acquired",
      version: 1,
      resumes: 0,
      pid: "w1",
      ttl: 60_000,
    });
    expect(all.cursor).toBeUndefined();
  });

  test("filters on the projected state: a task whose promise timed out is fulfilled", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("old", 300, { tags: targeted() });
    await c.createPromise("young", 100_000, { tags: targeted() });
    c.at(500);
    expect(ids(await c.ok("task.search", { state: "pending" }))).toEqual(["young"]);
    const fulfilled = await c.ok("task.search", { state: "fulfilled" });
    expect(fulfilled.tasks).toStrictEqual([{ id: "old", state: "fulfilled", version: 0, resumes: 0 }]);
  });

  test("pages with a cursor and a default limit of 100", async () => {
    const { c } = h;
    c.at(100);
    for (let i = 0; i < 101; i += 1) {
      expectOk(await c.createPromise(`t${String(i).padStart(3, "0")}`, 100_000, { tags: targeted() }));
    }
    const page = await c.ok("task.search", {});
    expect(page.tasks).toHaveLength(100);
    expect(page.cursor).toBe("t099");
    const rest = await c.ok("task.search", { cursor: page.cursor });
    expect(ids(rest)).toEqual(["t100"]);
    expect(rest.cursor).toBeUndefined();
    const small = await c.ok("task.search", { limit: 2, cursor: "t049" });
    expect(ids(small)).toEqual(["t050", "t051"]);
    expect(small.cursor).toBe("t051");
  });

  test("answers 400 for a limit outside 1–1000 and for an unknown state", async () => {
    const { c } = h;
    for (const limit of [0, 1001, 2.5, "5"]) expectError(await c.call("task.search", { limit }), 400);
    for (const state of ["resolved", "garbage"]) expectError(await c.call("task.search", { state }), 400);
    expectOk(await c.call("task.search", { limit: 1000 }));
  });
});

describe("internal transitions", () => {
  test("a lease that expires returns the task to pending at the same version and re-dispatches it", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x", 100_000, 100);
    await c.tick(199);
    expect(await c.task("x")).toMatchObject({ state: "acquired", version: 1 });
    await c.tick(200);
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "pending", version: 1, resumes: 0 });
    const snap = await c.check();
    expect(executeKeys(snap)).toEqual([`x@1->${TARGET}`]);
    expect(snap.taskTimeouts).toEqual([{ id: "x", type: 0, timeout: 5200 }]);
  });

  test("an unclaimed pending task is re-dispatched every retryTimeout", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("x", 100_000, { tags: targeted() });
    await c.tick(5099);
    expect((await c.snap()).taskTimeouts).toEqual([{ id: "x", type: 0, timeout: 5100 }]);
    await c.tick(5100);
    let snap = await c.check();
    expect(snap.taskTimeouts).toEqual([{ id: "x", type: 0, timeout: 10_100 }]);
    expect(executeKeys(snap)).toEqual([`x@0->${TARGET}`]);
    await c.tick(10_100);
    snap = await c.check();
    expect(snap.taskTimeouts).toEqual([{ id: "x", type: 0, timeout: 15_100 }]);
  });

  test("a buffered resume on a pending task does not change its state", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("x", 100_000, { tags: targeted() });
    await externalPromise(c, "a");
    await externalPromise(c, "b");
    expectOk(await c.registerCallback("a", "x"));
    expectOk(await c.registerCallback("b", "x"));
    expectOk(await c.settle("a", "resolved"));
    expectOk(await c.settle("b", "resolved"));
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "pending", version: 0, resumes: 2 });
  });

  test("the timeout of a targeted promise fires on tick and fulfils its task, unblocking listeners", async () => {
    const { c } = h;
    c.at(100);
    await acquiredTask(c, "x", 1000);
    expectOk(await c.registerListener("x", LISTENER));
    await c.tick(1000);
    const snap = await c.check();
    expect(snap.promises[0]).toMatchObject({ id: "x", state: "rejected_timedout", settledAt: 1000 });
    expect(snap.tasks[0]).toStrictEqual({ id: "x", state: "fulfilled", version: 1, resumes: 0 });
    expect(unblocks(snap, "x")).toHaveLength(1);
  });
});

describe("preload", () => {
  async function family(c: Client): Promise<void> {
    c.at(100);
    const branch = { [TAG_BRANCH]: "r" };
    await c.createPromise("r", 100_000, { tags: targeted(TARGET, branch) });
    await c.createPromise("r.2", 300, { tags: branch });
    await c.createPromise("r.1", 100_000, { tags: external(branch) });
    await c.createPromise("r.10", 100_000, { tags: branch });
    await c.createPromise("z", 100_000, { tags: { [TAG_BRANCH]: "z" } });
    await c.createPromise("untagged", 100_000);
  }

  async function expected(c: Client) {
    return [await c.promise("r.1"), await c.promise("r.10"), await c.promise("r.2")];
  }

  test("task.acquire preloads the branch-mates, projected, sorted by id, excluding the task's own promise", async () => {
    const { c } = h;
    await family(c);
    c.at(500);
    const data = expectOk(await c.acquire("r", 0));
    const mates = await expected(c);
    expect(mates[2]).toMatchObject({ state: "rejected_timedout", settledAt: 300 });
    expect(data.preload).toStrictEqual(mates);
  });

  test("task.create on an existing pending task preloads the same branch-mates", async () => {
    const { c } = h;
    await family(c);
    c.at(500);
    const data = expectOk(
      await c.taskCreate("r", 100_000, { tags: targeted(TARGET, { [TAG_BRANCH]: "r" }) }),
    );
    expect(data.preload).toStrictEqual(await expected(c));
  });

  test("task.fence preloads the branch-mates", async () => {
    const { c } = h;
    await family(c);
    c.at(500);
    expectOk(await c.acquire("r", 0));
    const fenced = expectOk(
      await c.fence("r", 1, { kind: "promise.create", data: { id: "q", timeoutAt: 9000 } }),
    );
    expect(fenced.preload).toStrictEqual(await expected(c));
  });

  test('a fenced create with "pledge:settle" makes a settled branch-mate, in the preload it answers', async () => {
    const { c } = h;
    await family(c);
    c.at(500);
    expectOk(await c.acquire("r", 0));
    const fenced = expectOk(
      await c.fence("r", 1, {
        kind: "promise.create",
        data: {
          id: "r.9",
          timeoutAt: 9000,
          tags: { [TAG_BRANCH]: "r" },
          "pledge:settle": { state: "resolved", value: { data: "eA==" } },
        },
      }),
    );
    expect(fenced.action.head.status).toBe(200);
    expect(fenced.action.data.promise).toMatchObject({ id: "r.9", state: "resolved", settledAt: 500 });
    expect(fenced.preload).toContainEqual(fenced.action.data.promise);
  });

  test("a task.suspend answered 300 carries the branch-mates as preload", async () => {
    const { c } = h;
    await family(c);
    c.at(500);
    expectOk(await c.acquire("r", 0));
    expectOk(await c.settle("r.1", "resolved"));
    const data = expectOk(await c.suspend("r", 1, ["r.1"]), 300);
    expect(data.preload).toStrictEqual(await expected(c));
  });

  describe('Pledge\'s "pledge:preload": false on task.fence (ADR 0006)', () => {
    const fenceQuietly = (c: Client, action: unknown, extra: Record<string, unknown> = {}) =>
      c.call("task.fence", { id: "r", version: 1, action, "pledge:preload": false, ...extra });

    test("answers an empty preload and does what the fence does without it", async () => {
      const { c } = h;
      await family(c);
      c.at(500);
      expectOk(await c.acquire("r", 0));
      const quiet = expectOk(
        await fenceQuietly(c, {
          kind: "promise.create",
          head: { corrId: "i", version: "2026-04-01" },
          data: { id: "q", timeoutAt: 9000, tags: { [TAG_BRANCH]: "r" } },
        }),
      );
      expect(quiet.preload).toEqual([]);
      expect(quiet.action.data.promise).toStrictEqual(await c.promise("q"));
      // The same fence without the field preloads the branch, q included.
      const loud = expectOk(
        await c.fence("r", 1, {
          kind: "promise.create",
          data: { id: "q", timeoutAt: 9000, tags: { [TAG_BRANCH]: "r" } },
        }),
      );
      expect(loud.preload.map((promise: { id: string }) => promise.id)).toEqual(["q", "r.1", "r.10", "r.2"]);
    });

    test("takes only false: true, null, a string or a number answer 400 naming the field", async () => {
      const { c } = h;
      await family(c);
      c.at(500);
      expectOk(await c.acquire("r", 0));
      for (const value of [true, null, "false", 0]) {
        const reply = await c.call("task.fence", {
          id: "r",
          version: 1,
          action: { kind: "promise.create", data: { id: "q", timeoutAt: 9000 } },
          "pledge:preload": value,
        });
        expectError(reply, 400);
        expect(reply.data).toMatch(/^data\["pledge:preload"\]/);
      }
      expect(await c.call("promise.get", { id: "q" })).toMatchObject({ status: 404 });
    });

    test("the server names the extension in Pledge-Extensions", async () => {
      const response = await fetch(`${h.url}/`, { method: "POST", body: "{}" });
      const named = (response.headers.get("pledge-extensions") ?? "").split(",").map((name) => name.trim());
      expect(named).toEqual(expect.arrayContaining(["preload-opt-out", "batch", "settle-on-create"]));
    });
  });

  test("preload is empty when the task's promise has no branch tag", async () => {
    const { c } = h;
    await family(c);
    await c.createPromise("solo", 100_000, { tags: targeted() });
    expect(expectOk(await c.acquire("solo", 0)).preload).toEqual([]);
  });
});
