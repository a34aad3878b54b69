/**
 * The envelope (PROTOCOL.md §1.2–§1.4), the debug surface (§1.6–§1.7) and
 * authentication (§1.5), as fixed by Pledge's decisions: HTTP status mirrors
 * `head.status`; error `data` is a string with `head.error = {code, retryable}`;
 * unknown kind and wrong version are 400; debug.* needs `--debug`; with a token
 * set, a request without it is an ordinary 401 envelope before any other check.
 */
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import {
  Client,
  call,
  executes,
  expectError,
  expectOk,
  external,
  post,
  type Reply,
  SNAPSHOT_KEYS,
  targeted,
  VERSION,
} from "../support/client.js";
import { AUTH_TOKEN, type Started, start, useServer } from "../support/server.js";

/** Reads an SSE stream until its first event with data; comment lines are keep-alives. */
async function firstSseEvent(
  response: Response,
  timeoutMs: number,
): Promise<{ event?: string; data: string }> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const deadline = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`SSE stream ended without an event: ${JSON.stringify(buffer)}`);
      buffer += decoder.decode(value, { stream: true });
      const blocks = buffer.replace(/\r\n/g, "\n").split("\n\n");
      buffer = blocks.pop() ?? "";
      for (const block of blocks) {
        const lines = block.split("\n");
        const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, ""));
        if (data.length === 0) continue;
        const event = lines
          .find((l) => l.startsWith("event:"))
          ?.slice(6)
          .trim();
        return { ...(event === undefined ? {} : { event }), data: data.join("\n") };
      }
    }
  } finally {
    clearTimeout(deadline);
  }
}

function expectErrorHead(reply: Reply, status: number): void {
  expectError(reply, status);
  const context = JSON.stringify(reply.body);
  expect(typeof reply.head?.error?.code, context).toBe("string");
  expect(reply.head.error.code.length, context).toBeGreaterThan(0);
  expect(typeof reply.head.error.retryable, context).toBe("boolean");
}

describe("envelope", () => {
  const h = useServer();

  test("a reply echoes kind and corrId, carries the version, and its HTTP status equals head.status, as JSON", async () => {
    const { url } = h;
    const ok = await call(url, "promise.create", { id: "p", timeoutAt: 1000 }, { time: 100, corrId: "c-1" });
    expect(ok.httpStatus).toBe(200);
    expect(ok.body).toMatchObject({
      kind: "promise.create",
      head: { corrId: "c-1", status: 200, version: VERSION },
    });
    expect(ok.contentType).toContain("application/json");
    const missing = await call(url, "promise.get", { id: "nope" }, { time: 100, corrId: "c-2" });
    expect(missing.httpStatus).toBe(404);
    expect(missing.body).toMatchObject({
      kind: "promise.get",
      head: { corrId: "c-2", status: 404, version: VERSION },
    });
    expect(missing.contentType).toContain("application/json");
  });

  test("error replies carry data as a string and head.error with a code and a retryable flag", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("i", 100_000);
    await c.createPromise("x", 100_000, { tags: targeted() });
    expectErrorHead(await c.call("promise.get", {}), 400);
    expectErrorHead(await c.call("promise.get", { id: "nope" }), 404);
    expectErrorHead(await c.acquire("x", 5), 409);
    expectErrorHead(await c.registerListener("i"), 422);
    expectErrorHead(await c.call("no.such.kind", {}), 400);
    expectErrorHead(await c.call("promise.get", { id: "i" }, { version: "2020-01-01" }), 400);
  });

  test("a successful reply carries no head.error", async () => {
    const { c } = h;
    const reply = await c.call("promise.search", {});
    expectOk(reply);
    expect(reply.head.error).toBeUndefined();
  });

  test("an unknown kind answers 400", async () => {
    const { c } = h;
    for (const kind of ["promise.destroy", "task.explode", "hello"]) {
      const reply = await c.call(kind, {});
      expectError(reply, 400);
      expect(reply.kind).toBe(kind);
    }
  });

  test("a wrong or missing version answers 400 naming 2026-04-01", async () => {
    const { c } = h;
    for (const version of ["2025-01-01", "", null]) {
      const reply = await c.call("promise.get", { id: "p" }, { version });
      expectError(reply, 400);
      expect(reply.data).toContain("2026-04-01");
      expect(reply.head.version).toBe(VERSION);
    }
  });

  test("a body that is not JSON answers 400 with kind unknown and corrId 0", async () => {
    const reply = await post(h.url, "{not json");
    expectError(reply, 400);
    expect(reply.kind).toBe("unknown");
    expect(reply.corrId).toBe("0");
    expect(reply.head.version).toBe(VERSION);
  });

  test("an envelope missing kind, head, corrId or data answers 400, echoing what it can read", async () => {
    const { url } = h;
    const head = { corrId: "k1", version: VERSION };
    const noKind = await post(url, JSON.stringify({ head, data: {} }));
    expectError(noKind, 400);
    expect(noKind.kind).toBe("unknown");
    expect(noKind.corrId).toBe("k1");
    const noHead = await post(url, JSON.stringify({ kind: "promise.get", data: { id: "p" } }));
    expectError(noHead, 400);
    expect(noHead.kind).toBe("promise.get");
    expect(noHead.corrId).toBe("0");
    const noCorrId = await post(
      url,
      JSON.stringify({ kind: "promise.get", head: { version: VERSION }, data: {} }),
    );
    expectError(noCorrId, 400);
    expect(noCorrId.corrId).toBe("0");
    const noData = await post(url, JSON.stringify({ kind: "promise.get", head }));
    expectError(noData, 400);
    expect(noData.corrId).toBe("k1");
    expect(noData.kind).toBe("promise.get");
  });

  test("an empty kind answers 400", async () => {
    expectError(await h.c.call("", {}), 400);
  });

  test("a data that is not an object answers 400", async () => {
    for (const data of [[], "x", 3, null]) expectError(await h.c.call("promise.search", data), 400);
  });

  test("GET /health and GET /ready answer 200", async () => {
    expect((await fetch(`${h.url}/health`)).status).toBe(200);
    expect((await fetch(`${h.url}/ready`)).status).toBe(200);
  });
});

describe("debug surface", () => {
  const h = useServer();

  test("debug.snap has the seven arrays, all empty on a fresh server", async () => {
    const snap = await h.c.snap();
    expect(Object.keys(snap).sort()).toEqual([...SNAPSHOT_KEYS].sort());
    for (const key of SNAPSHOT_KEYS) expect(snap[key]).toEqual([]);
  });

  test("debug.snap lists promises as stored, not projected", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("i", 300);
    c.at(500);
    expect(await c.promise("i")).toMatchObject({ state: "rejected_timedout" });
    const snap = await c.snap();
    expect(snap.promises).toHaveLength(1);
    expect(snap.promises[0]).toMatchObject({ id: "i", timeoutAt: 300 });
  });

  test("debug.reset deletes promises, tasks, callbacks, listeners, schedules, timers and messages", async () => {
    const { c } = h;
    c.at(100);
    await c.createPromise("a", 100_000, { tags: external() });
    await c.createPromise("x", 100_000, { tags: targeted() });
    expectOk(await c.registerCallback("a", "x"));
    expectOk(await c.registerListener("a"));
    expectOk(await c.taskCreate("r", 100_000));
    expectOk(
      await c.call("schedule.create", {
        id: "s",
        cron: "* * * * *",
        promiseId: "{{.id}}",
        promiseTimeout: 1000,
      }),
    );
    const before = await c.snap();
    for (const key of SNAPSHOT_KEYS) expect(before[key].length, key).toBeGreaterThan(0);
    await c.reset();
    const after = await c.snap();
    for (const key of SNAPSHOT_KEYS) expect(after[key], key).toEqual([]);
    expectError(await c.call("promise.get", { id: "a" }), 404);
    expectError(await c.call("task.get", { id: "x" }), 404);
    expectError(await c.call("schedule.get", { id: "s" }), 404);
    expect(await c.ok("schedule.search", {})).toStrictEqual({ schedules: [] });
    // the schedule really is gone: no occurrence fires later
    await c.tick(10 * 60_000);
    expect((await c.snap()).promises).toEqual([]);
  });

  test("debug.tick answers an empty array", async () => {
    const reply = await h.c.tick(1000);
    expect(reply.data).toStrictEqual([]);
  });

  test("debug.tick without an integer time answers 400, and so does a debug_time that differs from time", async () => {
    const { c, url } = h;
    c.at(1000);
    for (const data of [{}, { time: "5" }, { time: 1.5 }, { time: -1 }]) {
      expectError(await c.call("debug.tick", data), 400);
    }
    expectError(await c.call("debug.tick", { time: 2000 }, { time: 1999 }), 400);
    expectOk(await call(url, "debug.tick", { time: 2000 }));
    c.at(2000);
  });

  test("debug.start and debug.stop answer 200 with {}", async () => {
    const { c } = h;
    expect(await c.ok("debug.stop", {})).toStrictEqual({});
    expect(await c.ok("debug.start", {})).toStrictEqual({});
  });

  test("debug.start holds messages in the outbox; debug.stop resumes delivery to a connected SSE worker", async () => {
    const { c, url } = h;
    const controller = new AbortController();
    try {
      c.at(100);
      const timeoutAt = Date.now() + 3_600_000;
      expectOk(await c.createPromise("x", timeoutAt, { tags: targeted("poll://any@workers") }));
      expect(executes(await c.snap(), "x")).toHaveLength(1);
      const response = await fetch(`${url}/poll/workers/w1`, { signal: controller.signal });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toContain("text/event-stream");
      expect(executes(await c.snap(), "x")).toHaveLength(1);
      expectOk(await c.call("debug.stop", {}));
      const event = await firstSseEvent(response, 10_000);
      expect(event.event).toBeUndefined();
      expect(JSON.parse(event.data)).toMatchObject({
        kind: "execute",
        data: { task: { id: "x", version: 0 } },
      });
    } finally {
      controller.abort();
      await h.c.call("debug.start", {});
    }
  });

  test("resonate:debug_time is the request's now", async () => {
    const { c } = h;
    c.at(12_345);
    expect(expectOk(await c.createPromise("p", 99_999)).promise.createdAt).toBe(12_345);
    c.at(99_999);
    expect((await c.promise("p")).state).toBe("rejected_timedout");
  });
});

describe("without --debug", () => {
  let server: Started;
  beforeEach(async () => {
    server = await start({ debug: false });
  });
  afterEach(async () => {
    await server.close();
  });

  test("every debug.* kind answers 403", async () => {
    for (const [kind, data] of [
      ["debug.start", {}],
      ["debug.stop", {}],
      ["debug.reset", {}],
      ["debug.tick", { time: 1000 }],
      ["debug.snap", {}],
    ] as const) {
      const reply = await call(server.url, kind, data);
      expectErrorHead(reply, 403);
      expect(reply.kind).toBe(kind);
    }
  });

  test("resonate:debug_time is ignored: now is the wall clock", async () => {
    const reply = await call(server.url, "promise.create", { id: "p", timeoutAt: 200 }, { time: 100 });
    expect(expectOk(reply).promise).toMatchObject({
      state: "rejected_timedout",
      createdAt: 200,
      settledAt: 200,
    });
    const wall = Date.now();
    const live = expectOk(
      await call(server.url, "promise.create", { id: "q", timeoutAt: wall + 3_600_000 }, { time: 5 }),
    );
    expect(live.promise.state).toBe("pending");
    expect(live.promise.createdAt).toBeGreaterThanOrEqual(wall - 60_000);
  });
});

describe("auth", () => {
  const h = useServer({ auth: true });

  test("a request without a token or with a wrong token answers 401", async () => {
    const { url } = h;
    expectErrorHead(await call(url, "promise.search", {}), 401);
    expectErrorHead(await call(url, "promise.search", {}, { token: "wrong" }), 401);
    expectErrorHead(await call(url, "promise.search", {}, { headAuth: "wrong" }), 401);
  });

  test("the token is accepted from the Authorization header", async () => {
    expectOk(
      await call(h.url, "promise.create", { id: "p", timeoutAt: 1000 }, { token: AUTH_TOKEN, time: 100 }),
    );
  });

  test("the token is accepted from head.auth", async () => {
    expectOk(
      await call(h.url, "promise.create", { id: "p", timeoutAt: 1000 }, { headAuth: AUTH_TOKEN, time: 100 }),
    );
    const viaHead = new Client(h.url, {});
    expect((await viaHead.call("promise.get", { id: "p" }, { headAuth: AUTH_TOKEN })).status).toBe(200);
  });

  test("a 401 is an ordinary envelope: kind and corrId echoed, version, head.status 401, data a string", async () => {
    const reply = await call(h.url, "promise.get", { id: "p" }, { corrId: "auth-1" });
    expectError(reply, 401);
    expect(reply.body).toMatchObject({
      kind: "promise.get",
      head: { corrId: "auth-1", status: 401, version: VERSION },
    });
    expect(reply.contentType).toContain("application/json");
  });

  test("a body that does not parse answers 401 with kind unknown and corrId 0", async () => {
    const reply = await post(h.url, "{nope");
    expectError(reply, 401);
    expect(reply.kind).toBe("unknown");
    expect(reply.corrId).toBe("0");
  });

  test("401 comes before every other check", async () => {
    const { url } = h;
    expectError(await call(url, "no.such.kind", {}), 401);
    expectError(await call(url, "promise.get", { id: "p" }, { version: "1999-01-01" }), 401);
    expectError(await call(url, "promise.get", {}), 401);
    expectError(await call(url, "promise.get", "not an object"), 401);
    expectError(await call(url, "promise.settle", { id: "p", state: "garbage" }), 401);
    expectError(await call(url, "", {}), 401);
  });

  test("an existing id and a missing id get identical answers without the token", async () => {
    const { url } = h;
    expectOk(
      await call(url, "promise.create", { id: "exists", timeoutAt: 1000 }, { token: AUTH_TOKEN, time: 100 }),
    );
    const existing = await call(url, "promise.get", { id: "exists" }, { corrId: "same" });
    const missing = await call(url, "promise.get", { id: "missing" }, { corrId: "same" });
    expect(existing.httpStatus).toBe(401);
    expect(missing.httpStatus).toBe(existing.httpStatus);
    expect(missing.body).toStrictEqual(existing.body);
    const settleExisting = await call(
      url,
      "promise.settle",
      { id: "exists", state: "resolved" },
      { corrId: "s" },
    );
    const settleMissing = await call(
      url,
      "promise.settle",
      { id: "missing", state: "resolved" },
      { corrId: "s" },
    );
    expect(settleMissing.body).toStrictEqual(settleExisting.body);
    expect((await h.c.promise("exists")).state).toBe("pending");
  });

  test("debug.* without the token answers 401", async () => {
    for (const kind of ["debug.snap", "debug.reset", "debug.start", "debug.stop"]) {
      expectError(await call(h.url, kind, {}), 401);
    }
    expectError(await call(h.url, "debug.tick", { time: 10 }, { time: 10 }), 401);
  });

  test("GET /health stays open", async () => {
    expect((await fetch(`${h.url}/health`)).status).toBe(200);
  });

  test("the SSE poll endpoint without the token answers 401", async () => {
    const controller = new AbortController();
    try {
      const response = await fetch(`${h.url}/poll/default/w1`, { signal: controller.signal });
      expect(response.status).toBe(401);
    } finally {
      controller.abort();
    }
  });
});
