/**
 * Schedule operations over HTTP (PROTOCOL.md §6, §2.4, §3.9 R7), black box.
 * Occurrences fire only through `debug.tick` (the harness paused the loops).
 * Cron is UTC with minute resolution; the debug clock starts at the epoch, so
 * `* * * * *` occurs at 60000, 120000, …
 */
import { describe, expect, test } from "vitest";
import {
  type Client,
  executes,
  expectError,
  expectOk,
  external,
  TARGET,
  targeted,
  timer,
} from "../support/client.js";
import { useServer } from "../support/server.js";

const h = useServer();

const MINUTE = 60_000;

function scheduleCreate(c: Client, data: Record<string, unknown>) {
  return c.call("schedule.create", {
    id: "s",
    cron: "* * * * *",
    promiseId: "{{.id}}.{{.timestamp}}",
    promiseTimeout: 1_000_000,
    ...data,
  });
}

describe("schedule.create", () => {
  test("stores the schedule with createdAt = now and nextRunAt the first occurrence after now", async () => {
    const { c } = h;
    c.at(100);
    const data = expectOk(
      await c.call("schedule.create", {
        id: "s",
        cron: "* * * * *",
        promiseId: "{{.id}}.{{.timestamp}}",
        promiseTimeout: 5000,
      }),
    );
    expect(data).toStrictEqual({
      schedule: {
        id: "s",
        cron: "* * * * *",
        promiseId: "{{.id}}.{{.timestamp}}",
        promiseTimeout: 5000,
        promiseParam: {},
        promiseTags: {},
        createdAt: 100,
        nextRunAt: MINUTE,
      },
    });
  });

  test("stores promiseParam and promiseTags as given", async () => {
    const { c } = h;
    c.at(100);
    const promiseParam = { headers: { a: "b" }, data: "eA==" };
    const promiseTags = targeted(TARGET, { team: "x" });
    const data = expectOk(await scheduleCreate(c, { promiseParam, promiseTags }));
    expect(data.schedule.promiseParam).toStrictEqual(promiseParam);
    expect(data.schedule.promiseTags).toStrictEqual(promiseTags);
  });

  test("nextRunAt is strictly after now, even when now is an occurrence", async () => {
    const { c } = h;
    c.at(MINUTE);
    expect(expectOk(await scheduleCreate(c, {})).schedule.nextRunAt).toBe(2 * MINUTE);
  });

  test("evaluates cron in UTC", async () => {
    const { c } = h;
    c.at(100);
    expect(expectOk(await scheduleCreate(c, { id: "noon", cron: "0 12 * * *" })).schedule.nextRunAt).toBe(
      12 * 60 * MINUTE,
    );
    expect(expectOk(await scheduleCreate(c, { id: "five", cron: "*/5 * * * *" })).schedule.nextRunAt).toBe(
      5 * MINUTE,
    );
  });

  test("an idempotent replay answers the existing schedule without comparing", async () => {
    const { c } = h;
    c.at(100);
    const first = expectOk(await scheduleCreate(c, {})).schedule;
    c.at(200);
    const again = expectOk(
      await scheduleCreate(c, {
        cron: "0 12 * * *",
        promiseId: "other",
        promiseTimeout: 1,
        promiseTags: { a: "b" },
      }),
    ).schedule;
    expect(again).toStrictEqual(first);
  });

  test("accepts promiseTags that make a targeted timer (Pledge's interop decision)", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await scheduleCreate(c, { promiseTags: { ...timer(), ...targeted() } }));
  });

  test("accepts promiseTags without a target", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await scheduleCreate(c, { promiseTags: { k: "v" } }));
  });

  test("accepts a schedule id containing a dot", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await scheduleCreate(c, { id: "nightly.report" }));
    await c.tick(MINUTE);
    expect((await c.promise(`nightly.report.${MINUTE}`)).state).toBe("pending");
  });

  test("answers 400 for malformed data or an unparseable cron, and stores nothing", async () => {
    const { c } = h;
    c.at(100);
    const cases: Record<string, unknown>[] = [
      { id: undefined },
      { id: "" },
      { cron: undefined },
      { cron: "not a cron" },
      { cron: "61 * * * *" },
      { cron: "* * * *" },
      { promiseId: undefined },
      { promiseTimeout: undefined },
      { promiseTimeout: -1 },
      { promiseTimeout: 1.5 },
      { promiseTimeout: "10" },
      { promiseTags: "x" },
      { promiseTags: { k: 1 } },
      { promiseParam: 5 },
    ];
    for (const data of cases) expectError(await scheduleCreate(c, data), 400);
    expect(await c.ok("schedule.search", {})).toStrictEqual({ schedules: [] });
  });
});

describe("schedule.get and schedule.delete", () => {
  test("schedule.get answers 400 without id, 404 when absent, 200 with the record", async () => {
    const { c } = h;
    c.at(100);
    expectError(await c.call("schedule.get", {}), 400);
    expectError(await c.call("schedule.get", { id: "s" }), 404);
    const created = expectOk(await scheduleCreate(c, {})).schedule;
    expect(await c.ok("schedule.get", { id: "s" })).toStrictEqual({ schedule: created });
  });

  test("schedule.delete answers 400 without id, 404 when absent, 200 {} and the schedule is gone", async () => {
    const { c } = h;
    c.at(100);
    expectError(await c.call("schedule.delete", {}), 400);
    expectError(await c.call("schedule.delete", { id: "s" }), 404);
    expectOk(await scheduleCreate(c, {}));
    expect(await c.ok("schedule.delete", { id: "s" })).toStrictEqual({});
    expectError(await c.call("schedule.get", { id: "s" }), 404);
    expectError(await c.call("schedule.delete", { id: "s" }), 404);
  });

  test("deleting a schedule stops future occurrences and leaves created promises alone", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await scheduleCreate(c, {}));
    await c.tick(MINUTE);
    c.at(MINUTE + 10_000);
    expectOk(await c.call("schedule.delete", { id: "s" }));
    await c.tick(5 * MINUTE);
    const snap = await c.check();
    expect(snap.promises.map((p) => p.id)).toEqual([`s.${MINUTE}`]);
    expect((await c.promise(`s.${MINUTE}`)).state).toBe("pending");
  });

  test("a deleted schedule id can be created again", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await scheduleCreate(c, {}));
    expectOk(await c.call("schedule.delete", { id: "s" }));
    c.at(200);
    const again = expectOk(await scheduleCreate(c, { cron: "*/5 * * * *" })).schedule;
    expect(again).toMatchObject({ cron: "*/5 * * * *", createdAt: 200, nextRunAt: 5 * MINUTE });
  });
});

describe("R7: schedule occurrences", () => {
  test("an occurrence creates the promise at its instant with the schedule's param, tags and timeout", async () => {
    const { c } = h;
    c.at(100);
    const promiseParam = { data: "cA==" };
    const promiseTags = { team: "x" };
    expectOk(await scheduleCreate(c, { promiseTimeout: 30_000, promiseParam, promiseTags }));
    await c.tick(MINUTE - 1);
    expect((await c.snap()).promises).toEqual([]);
    await c.tick(MINUTE);
    expect(await c.promise(`s.${MINUTE}`)).toStrictEqual({
      id: `s.${MINUTE}`,
      state: "pending",
      param: promiseParam,
      value: {},
      tags: promiseTags,
      timeoutAt: MINUTE + 30_000,
      createdAt: MINUTE,
    });
    expect((await c.ok("schedule.get", { id: "s" })).schedule).toMatchObject({
      lastRunAt: MINUTE,
      nextRunAt: 2 * MINUTE,
    });
  });

  test("missed occurrences are all caught up in one tick, each at its own instant", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await scheduleCreate(c, {}));
    await c.tick(3 * MINUTE + 20_000);
    const snap = await c.check();
    expect(snap.promises.map((p) => [p.id, p.createdAt, p.timeoutAt]).sort()).toEqual(
      [
        [`s.${MINUTE}`, MINUTE, MINUTE + 1_000_000],
        [`s.${2 * MINUTE}`, 2 * MINUTE, 2 * MINUTE + 1_000_000],
        [`s.${3 * MINUTE}`, 3 * MINUTE, 3 * MINUTE + 1_000_000],
      ].sort(),
    );
    expect((await c.ok("schedule.get", { id: "s" })).schedule).toMatchObject({
      lastRunAt: 3 * MINUTE,
      nextRunAt: 4 * MINUTE,
    });
  });

  test("templated ids expand {{.id}} to the schedule id and {{.timestamp}} to the occurrence in ms", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await scheduleCreate(c, { id: "a", promiseId: "job-{{.id}}-{{.timestamp}}" }));
    expectOk(await scheduleCreate(c, { id: "b", promiseId: "{{.timestamp}}/{{.id}}" }));
    await c.tick(2 * MINUTE);
    const ids = (await c.snap()).promises.map((p) => p.id).sort();
    expect(ids).toEqual([`${2 * MINUTE}/b`, `${MINUTE}/b`, `job-a-${2 * MINUTE}`, `job-a-${MINUTE}`].sort());
  });

  test("an occurrence whose promise id already exists creates nothing and overwrites nothing", async () => {
    const { c } = h;
    c.at(100);
    const existing = expectOk(await c.createPromise("fixed-s", 5_000_000, { tags: { mine: "yes" } })).promise;
    expectOk(await scheduleCreate(c, { promiseId: "fixed-{{.id}}", promiseTags: { theirs: "yes" } }));
    await c.tick(3 * MINUTE);
    const snap = await c.check();
    expect(snap.promises).toHaveLength(1);
    expect(await c.promise("fixed-s")).toStrictEqual(existing);
    expect((await c.ok("schedule.get", { id: "s" })).schedule).toMatchObject({
      lastRunAt: 3 * MINUTE,
      nextRunAt: 4 * MINUTE,
    });
  });

  test("a targeted occurrence gets a pending task and an execute to its target", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await scheduleCreate(c, { promiseTags: targeted() }));
    await c.tick(MINUTE);
    const id = `s.${MINUTE}`;
    expect(await c.task(id)).toStrictEqual({ id, state: "pending", version: 0, resumes: 0 });
    const snap = await c.check();
    expect(executes(snap, id).map((m) => [m.address, m.message.data.task])).toEqual([
      [TARGET, { id, version: 0 }],
    ]);
    expect(snap.promiseTimeouts).toEqual([{ id, timeout: MINUTE + 1_000_000 }]);
    expect(snap.taskTimeouts).toEqual([{ id, type: 0, timeout: MINUTE + 5000 }]);
  });

  test("an external occurrence gets a durable timeout", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await scheduleCreate(c, { promiseTags: external(), promiseTimeout: 10_000 }));
    await c.tick(MINUTE);
    expect((await c.check()).promiseTimeouts).toEqual([{ id: `s.${MINUTE}`, timeout: MINUTE + 10_000 }]);
    await c.tick(MINUTE + 10_000);
    const snap = await c.check();
    expect(snap.promises[0]).toMatchObject({ state: "rejected_timedout", settledAt: MINUTE + 10_000 });
  });

  test("a caught-up occurrence whose deadline already passed reads as timed out at its deadline", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await scheduleCreate(c, { promiseTimeout: 1000 }));
    await c.tick(3 * MINUTE + 30_000);
    expect(await c.promise(`s.${MINUTE}`)).toMatchObject({
      state: "rejected_timedout",
      createdAt: MINUTE,
      timeoutAt: MINUTE + 1000,
      settledAt: MINUTE + 1000,
    });
  });

  test("with promiseTimeout 0 each occurrence's promise is born dead at its instant", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await scheduleCreate(c, { promiseTimeout: 0, promiseTags: targeted() }));
    await c.tick(MINUTE);
    const id = `s.${MINUTE}`;
    expect(await c.promise(id)).toMatchObject({
      state: "rejected_timedout",
      createdAt: MINUTE,
      timeoutAt: MINUTE,
      settledAt: MINUTE,
    });
    expect(await c.task(id)).toMatchObject({ state: "fulfilled", version: 0 });
    expect((await c.snap()).messages).toEqual([]);
  });

  test("a tick before the next occurrence creates nothing and leaves the schedule unchanged", async () => {
    const { c } = h;
    c.at(100);
    const created = expectOk(await scheduleCreate(c, { cron: "0 12 * * *" })).schedule;
    await c.tick(11 * 60 * MINUTE);
    expect((await c.snap()).promises).toEqual([]);
    expect((await c.ok("schedule.get", { id: "s" })).schedule).toStrictEqual(created);
  });
});

describe("schedule.search", () => {
  const ids = (data: { schedules: { id: string }[] }) => data.schedules.map((s) => s.id);

  test("answers schedules in ascending id order with a default limit of 10", async () => {
    const { c } = h;
    c.at(100);
    for (let i = 11; i >= 0; i -= 1)
      expectOk(await scheduleCreate(c, { id: `s${String(i).padStart(2, "0")}` }));
    const page = await c.ok("schedule.search", {});
    expect(ids(page)).toEqual(Array.from({ length: 10 }, (_, i) => `s${String(i).padStart(2, "0")}`));
    expect(page.cursor).toBe("s09");
    const rest = await c.ok("schedule.search", { cursor: page.cursor });
    expect(ids(rest)).toEqual(["s10", "s11"]);
    expect(rest.cursor).toBeUndefined();
  });

  test("answers full records", async () => {
    const { c } = h;
    c.at(100);
    const created = expectOk(await scheduleCreate(c, {})).schedule;
    expect(await c.ok("schedule.search", {})).toStrictEqual({ schedules: [created] });
  });

  test("filters on promiseTags: every given key and value must be present", async () => {
    const { c } = h;
    c.at(100);
    expectOk(await scheduleCreate(c, { id: "a", promiseTags: { env: "prod", team: "x" } }));
    expectOk(await scheduleCreate(c, { id: "b", promiseTags: { env: "prod" } }));
    expectOk(await scheduleCreate(c, { id: "c", promiseTags: { env: "dev" } }));
    expect(ids(await c.ok("schedule.search", { tags: { env: "prod" } }))).toEqual(["a", "b"]);
    expect(ids(await c.ok("schedule.search", { tags: { env: "prod", team: "x" } }))).toEqual(["a"]);
    expect(ids(await c.ok("schedule.search", { tags: { env: "qa" } }))).toEqual([]);
  });

  test("pages with a cursor: ids strictly greater than it", async () => {
    const { c } = h;
    c.at(100);
    for (const id of ["a", "b", "c"]) expectOk(await scheduleCreate(c, { id }));
    const page = await c.ok("schedule.search", { limit: 2 });
    expect(ids(page)).toEqual(["a", "b"]);
    expect(page.cursor).toBe("b");
    const rest = await c.ok("schedule.search", { limit: 2, cursor: "b" });
    expect(ids(rest)).toEqual(["c"]);
    expect(rest.cursor).toBeUndefined();
  });

  test("answers 400 for a limit outside 1–1000 or tags that are not an object", async () => {
    const { c } = h;
    for (const limit of [0, 1001, 1.5, "3"]) expectError(await c.call("schedule.search", { limit }), 400);
    for (const tags of ["x", 3]) expectError(await c.call("schedule.search", { tags }), 400);
    expectOk(await c.call("schedule.search", { limit: 1000 }));
  });
});
