/**
 * Retention in the server (src/server/shell.ts H5, src/server/retention.ts L1–L3):
 * with `retainMs` the shell deletes settled records older than that in the
 * background, in bounded batches, and logs what it removed; without it nothing
 * is ever deleted. The shell-level tests drive a `ServerShell` on the memory
 * store with a clock that only moves when told; the last one runs a real server
 * on a SQLite file and waits (at most a few seconds) for the background loop.
 */
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { COLLECT_LIMIT } from "../../src/core/retention.js";
import type { Clock, Timers } from "../../src/lib/clock.js";
import { type Logger, silentLogger } from "../../src/lib/logger.js";
import type { Request } from "../../src/protocol/requests.js";
import { ServerShell } from "../../src/server/shell.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { call, cleanUp, ok, serve, temporaryDirectory, waitUntil } from "./helpers.js";

afterEach(cleanUp);

const NEVER: Timers = { setTimeout: () => undefined, clearTimeout: () => {} };
const HOUR = 3_600_000;

function shellAt(
  time: { now: number },
  options: { retainMs?: number; debug?: boolean; logger?: Logger } = {},
) {
  const clock: Clock = { now: () => time.now };
  const store = new MemoryStore();
  const shell = new ServerShell(
    { store, clock, timers: NEVER, logger: options.logger ?? silentLogger },
    {
      debug: options.debug ?? false,
      retryTimeoutMs: 5000,
      unblockTtlMs: HOUR,
      ...(options.retainMs !== undefined && { retainMs: options.retainMs }),
    },
  );
  return { shell, store };
}

let corr = 0;
function request(kind: string, data: Record<string, unknown>): Request {
  corr += 1;
  return { kind, corrId: String(corr), data } as unknown as Request;
}

async function settled(shell: ServerShell, id: string, at: { now: number }) {
  await shell.handle(request("promise.create", { id, timeoutAt: at.now + HOUR }));
  await shell.handle(request("promise.settle", { id, state: "resolved", value: {} }));
}

/** A logger that keeps what `info` was told. */
function recordingLogger(lines: { fields: unknown; message: unknown }[]): Logger {
  const ignore = () => {};
  return {
    info: (fields: unknown, message: unknown) => lines.push({ fields, message }),
    warn: ignore,
    error: ignore,
    debug: ignore,
    fatal: ignore,
  } as unknown as Logger;
}

describe("the shell's retention", () => {
  test("settled records older than retainMs are deleted, newer and pending ones stay, and the removal is logged", async () => {
    const time = { now: 1_000_000 };
    const logged: { fields: unknown; message: unknown }[] = [];
    const { shell, store } = shellAt(time, { retainMs: 60_000, logger: recordingLogger(logged) });
    await settled(shell, "old", time);
    await shell.handle(request("promise.create", { id: "waiting", timeoutAt: time.now + 10 * HOUR }));
    time.now += 50_000;
    await settled(shell, "recent", time);
    time.now += 20_000; // "old" settled 70 s ago, "recent" 20 s ago

    const totals = await shell.retainNow();
    expect(totals).toMatchObject({ promises: 1, tasks: 0, batches: 1 });
    expect(store.searchPromises({ limit: 10 }).map((promise) => promise.id)).toEqual(["recent", "waiting"]);
    expect(logged).toContainEqual({
      fields: { promises: 1, tasks: 0, kept: 0, batches: 1 },
      message: "retention removed settled records",
    });
    const gone = await shell.handle(request("promise.get", { id: "old" }));
    expect(gone.status).toBe(404);
  });

  test("without retainMs nothing is ever deleted", async () => {
    const time = { now: 1_000_000 };
    const { shell, store } = shellAt(time);
    await settled(shell, "kept", time);
    time.now += 365 * 24 * HOUR;
    expect(await shell.retainNow()).toBeUndefined();
    expect(store.promise("kept")?.state).toBe("resolved");
  });

  test("retention does not run while debug mode has the server paused", async () => {
    const time = { now: 1_000_000 };
    const { shell, store } = shellAt(time, { retainMs: 1000, debug: true });
    await settled(shell, "p", time);
    time.now += 10_000;
    await shell.handle(request("debug.start", {}));
    expect(await shell.retainNow()).toBeUndefined();
    expect(store.promise("p")).toBeDefined();
    await shell.handle(request("debug.stop", {}));
    expect(await shell.retainNow()).toMatchObject({ promises: 1 });
  });

  test("a large backlog goes in bounded batches, each a transaction of its own", async () => {
    const time = { now: 1_000_000 };
    const { shell, store } = shellAt(time, { retainMs: 1000 });
    const count = COLLECT_LIMIT * 2 + 10;
    for (let index = 0; index < count; index += 1) await settled(shell, `p${index}`, time);
    time.now += 5_000;
    const commitsBefore = store.stats.commits;
    const totals = await shell.retainNow();
    expect(totals).toMatchObject({ promises: count, batches: 3 });
    expect(store.stats.commits - commitsBefore).toBe(3);
    expect(store.searchPromises({ limit: 10 })).toEqual([]);
  });
});

describe("a server started with retainMs", () => {
  test("removes old settled promises in the background, and leaves pending ones", async () => {
    const directory = temporaryDirectory("pledge-retention-");
    const server = await serve({ store: `sqlite:${join(directory, "retained.db")}`, retainMs: 1000 });
    const timeoutAt = Date.now() + HOUR;
    await ok(server.url, "promise.create", {
      id: "done",
      timeoutAt,
      tags: { "resonate:target": "poll://any@g" },
    });
    await ok(server.url, "promise.settle", { id: "done", state: "resolved", value: {} });
    await ok(server.url, "promise.create", { id: "open", timeoutAt });
    let status = 200;
    const poll = setInterval(() => {
      void call(server.url, "promise.get", { id: "done" }).then((reply) => {
        status = reply.status;
      });
    }, 100);
    try {
      await waitUntil(() => status === 404, "the settled promise to be removed", 10_000);
    } finally {
      clearInterval(poll);
    }
    expect((await call(server.url, "task.get", { id: "done" })).status).toBe(404);
    expect((await ok(server.url, "promise.get", { id: "open" })).promise.state).toBe("pending");
  });
});
