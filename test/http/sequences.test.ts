/**
 * The worked sequences of PROTOCOL.md §8, step by step, with the snapshot
 * properties checked after every step that changes state.
 */
import { describe, expect, test } from "vitest";
import {
  executeKeys,
  expectError,
  expectOk,
  external,
  LISTENER,
  targeted,
  timer,
} from "../support/client.js";
import { useServer } from "../support/server.js";

const h = useServer();

describe("§8 worked sequences", () => {
  test("root workflow, happy path: create, fence a child, suspend, the child completes, the root resumes and completes", async () => {
    const { c } = h;
    const rootTarget = "poll://any@default/w1";
    const childTarget = "poll://any@default";
    c.at(100);
    const created = expectOk(await c.taskCreate("r", 1_000_000, { ttl: 60_000, tags: targeted(rootTarget) }));
    expect(created.task).toStrictEqual({
      id: "r",
      state: "acquired",
      version: 1,
      resumes: 0,
      pid: "w1",
      ttl: 60_000,
    });
    expect(executeKeys(await c.check())).toEqual([]);

    c.at(110);
    const fenced = expectOk(
      await c.fence("r", 1, {
        kind: "promise.create",
        data: { id: "r.1", timeoutAt: 1_000_000, tags: targeted(childTarget) },
      }),
    );
    expect(fenced.action.head.status).toBe(200);
    expect(fenced.action.data.promise).toMatchObject({ id: "r.1", state: "pending" });
    expect(await c.task("r.1")).toStrictEqual({ id: "r.1", state: "pending", version: 0, resumes: 0 });
    expect(executeKeys(await c.check())).toEqual([`r.1@0->${childTarget}`]);

    c.at(120);
    expect(expectOk(await c.suspend("r", 1, ["r.1"]))).toStrictEqual({});
    expect(await c.task("r")).toStrictEqual({ id: "r", state: "suspended", version: 1, resumes: 0 });
    await c.check();

    c.at(130);
    expect(expectOk(await c.acquire("r.1", 0, "w2")).task).toMatchObject({ state: "acquired", version: 1 });
    await c.check();

    c.at(140);
    const child = expectOk(await c.fulfill("r.1", 1, "resolved", { data: "MQ==" })).promise;
    expect(child).toMatchObject({ id: "r.1", state: "resolved", settledAt: 140, value: { data: "MQ==" } });
    expect(await c.task("r.1")).toStrictEqual({ id: "r.1", state: "fulfilled", version: 1, resumes: 0 });
    expect(await c.task("r")).toStrictEqual({ id: "r", state: "pending", version: 1, resumes: 1 });
    let snap = await c.check();
    expect(snap.callbacks).toEqual([]);
    expect(executeKeys(snap)).toContain(`r@1->${rootTarget}`);

    c.at(150);
    const acquired = expectOk(await c.acquire("r", 1));
    expect(acquired.task).toStrictEqual({
      id: "r",
      state: "acquired",
      version: 2,
      resumes: 0,
      pid: "w1",
      ttl: 60_000,
    });
    await c.check();

    c.at(160);
    expect(expectOk(await c.fulfill("r", 2, "resolved")).promise).toMatchObject({
      state: "resolved",
      settledAt: 160,
    });
    expect(await c.task("r")).toStrictEqual({ id: "r", state: "fulfilled", version: 2, resumes: 0 });
    snap = await c.check();
    expect(snap.taskTimeouts).toEqual([]);
    expect(snap.promiseTimeouts).toEqual([]);
  });

  test("dead workflow cannot be halted: after its deadline the task reads fulfilled and task.halt is 409", async () => {
    const { c } = h;
    c.at(90);
    expectOk(await c.createPromise("a", 1_000_000, { tags: external() }));
    c.at(100);
    expectOk(await c.taskCreate("x", 300));
    c.at(120);
    expectOk(await c.suspend("x", 1, ["a"]));
    await c.check();
    c.at(500);
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "fulfilled", version: 1, resumes: 0 });
    expectError(await c.call("task.halt", { id: "x" }), 409);
    await c.check();
  });

  test("timer: resolves at its deadline; listener and settle after that change nothing; a replay answers the record", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.createPromise("tm", 300, { tags: timer() }));
    c.at(500);
    const record = await c.promise("tm");
    expect(record).toMatchObject({ state: "resolved", settledAt: 300, value: {} });
    expect(expectOk(await c.registerListener("tm", LISTENER)).promise).toStrictEqual(record);
    expect((await c.check()).listeners).toEqual([]);
    expect(expectOk(await c.settle("tm", "rejected")).promise).toStrictEqual(record);
    expect(
      expectOk(await c.createPromise("tm", 9000, { tags: { other: "x" }, param: { data: "eA==" } })).promise,
    ).toStrictEqual(record);
    await c.check();
  });

  test("fencing: fenced create and settle succeed while the lease holds; fencing itself is 400; after the deadline any fence is 409", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.taskCreate("x", 2000, { ttl: 1000 }));
    const created = expectOk(
      await c.fence("x", 1, { kind: "promise.create", data: { id: "c", timeoutAt: 10_000 } }),
    );
    expect(created.action.head.status).toBe(200);
    c.at(150);
    const settled = expectOk(
      await c.fence("x", 1, { kind: "promise.settle", data: { id: "c", state: "resolved" } }),
    );
    expect(settled.action.head.status).toBe(200);
    expect(settled.action.data.promise).toMatchObject({ id: "c", state: "resolved", settledAt: 150 });
    expectError(await c.fence("x", 1, { kind: "promise.settle", data: { id: "x", state: "resolved" } }), 400);
    await c.check();
    c.at(2500);
    expectError(await c.fence("x", 1, { kind: "promise.create", data: { id: "d", timeoutAt: 10_000 } }), 409);
    expectError(await c.fence("x", 1, { kind: "promise.settle", data: { id: "c", state: "rejected" } }), 409);
    expectError(await c.call("promise.get", { id: "d" }), 404);
    await c.check();
  });

  test("lease loss: an expired lease re-dispatches at the same version; the old holder's fulfill is 409; a new acquire gets the next version", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await c.taskCreate("x", 1_000_000, { ttl: 100 }));
    await c.tick(200);
    expect(await c.task("x")).toStrictEqual({ id: "x", state: "pending", version: 1, resumes: 0 });
    expect(executeKeys(await c.check())).toEqual(["x@1->poll://any@workers"]);
    c.at(210);
    expectError(await c.fulfill("x", 1), 409);
    expect(expectOk(await c.acquire("x", 1, "w2")).task).toMatchObject({
      state: "acquired",
      version: 2,
      pid: "w2",
    });
    await c.check();
  });
});
