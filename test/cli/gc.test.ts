/**
 * `pledge gc` and `pledge serve --retain` as real processes (issue 5, item 4):
 * gc removes settled promises (and their tasks) settled before the cut-off and
 * leaves the rest, on SQLite and on PostgreSQL (when reachable; loud skip
 * otherwise, a failure under CI=true); it refuses a SQLite file a server owns
 * with the store's "owned by process …" message; bad usage exits 2 naming the
 * flag. A server started with `--retain` removes old settled promises by itself.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cutOffArgument } from "../../src/cli/gc.js";
import { type CliIo, runCli } from "../../src/cli/program.js";
import { type CoreConfig, step } from "../../src/core/step.js";
import { openPostgresStore } from "../../src/store/postgres/postgres-store.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { Store } from "../../src/store/store.js";
import { dropSchema, freshSchema, POSTGRES_URL, requirePostgres } from "../differential/postgres.js";
import { ensureBuilt, finished, ONE_LINE_REASON, pledge, start, waitForLine } from "./helpers.js";

let directory: string;

beforeAll(async () => {
  await ensureBuilt();
  directory = mkdtempSync(join(tmpdir(), "pledge-cli-gc-"));
}, 180_000);

afterAll(() => {
  if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
});

const HOUR = 3_600_000;
const config: CoreConfig = { retryTimeoutMs: 5000 };
const TARGET = { "resonate:target": "poll://any@g" };

/**
 * Writes, through the core, promises settled 3 h ago ("old-*", the targeted one
 * with a task), one settled just now ("fresh") and one pending ("open").
 */
async function populate(store: Store): Promise<void> {
  const now = Date.now();
  let corr = 0;
  const run = (request: Record<string, unknown>, at: number) =>
    store.transaction((tx) => {
      corr += 1;
      const result = step(
        tx,
        { corrId: String(corr), ...request } as unknown as Parameters<typeof step>[1],
        at,
        config,
      );
      if (result.response.status >= 400) throw new Error(JSON.stringify(result.response));
      tx.apply(result.changes);
    });
  const settledAt = (id: string, at: number, tags: Record<string, string> = {}) =>
    run({ kind: "promise.create", data: { id, timeoutAt: at + HOUR, tags } }, at - 1).then(() =>
      run({ kind: "promise.settle", data: { id, state: "resolved", value: {} } }, at),
    );
  await settledAt("old-job", now - 3 * HOUR, TARGET);
  await settledAt("old-value", now - 3 * HOUR);
  await settledAt("fresh", now);
  await run({ kind: "promise.create", data: { id: "open", timeoutAt: now + 10 * HOUR } }, now - 4 * HOUR);
}

async function promiseIds(store: Store): Promise<string[]> {
  return store.transaction((tx) => tx.searchPromises({ limit: 100 }).map((promise) => promise.id));
}

async function sqliteFile(name: string): Promise<string> {
  const path = join(directory, name);
  const store = openSqliteStore({ path });
  await populate(store);
  await store.close();
  return path;
}

describe("pledge gc on SQLite", () => {
  it("removes promises settled before the cut-off with their tasks, keeps the newer and the pending, and says how many", async () => {
    const path = await sqliteFile("gc.db");
    const outcome = await pledge(["gc", "--store", `sqlite:${path}`, "--before", "1h"]);
    expect(outcome.code, outcome.stderr).toBe(0);
    expect(outcome.stdout).toMatch(
      /^removed 2 promises and 1 tasks settled before \d{4}-\d\d-\d\dT[\d:.]+Z\n$/,
    );
    expect(outcome.stderr).toBe(""); // no progress line: stderr is not a terminal
    const store = openSqliteStore({ path });
    try {
      expect(await promiseIds(store)).toEqual(["fresh", "open"]);
      expect(await store.transaction((tx) => tx.task("old-job"))).toBeUndefined();
    } finally {
      await store.close();
    }
    const again = await pledge(["gc", "--store", path, "--before", "1h", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ promises: 0, tasks: 0, kept: 0, batches: 1 });
  });

  it("takes an ISO 8601 time as the cut-off and answers JSON with --json", async () => {
    const path = await sqliteFile("gc-iso.db");
    const before = new Date(Date.now() - HOUR).toISOString();
    const outcome = await pledge(["gc", "--store", `sqlite:${path}`, "--before", before, "--json"]);
    expect(outcome.code, outcome.stderr).toBe(0);
    expect(JSON.parse(outcome.stdout)).toEqual({ before, promises: 2, tasks: 1, kept: 0, batches: 1 });
  });

  it("refuses a file a running server owns, naming the owner's pid, and deletes nothing", async () => {
    const path = await sqliteFile("owned.db");
    const server = start(["serve", "--port", "0", "--store", `sqlite:${path}`, "--log-level", "silent"]);
    try {
      const [, url] = await waitForLine(server, /^pledge serving (http:\/\/\S+) /m, 20_000);
      const outcome = await pledge(["gc", "--store", `sqlite:${path}`, "--before", "0s"]);
      expect(outcome.code).toBe(1);
      expect(outcome.stdout).toBe("");
      expect(outcome.stderr).toMatch(ONE_LINE_REASON);
      expect(outcome.stderr).toContain(`is owned by process ${server.pid}, reachable at ${url}`);
      const exited = finished(server, 20_000);
      server.kill("SIGTERM");
      expect((await exited).code).toBe(0);
    } finally {
      server.kill("SIGKILL");
    }
    const store = openSqliteStore({ path });
    try {
      expect(await promiseIds(store)).toEqual(["fresh", "old-job", "old-value", "open"]);
    } finally {
      await store.close();
    }
  });

  it("a missing file is a failed operation (exit 1), and no file is created", async () => {
    const path = join(directory, "missing.db");
    const outcome = await pledge(["gc", "--store", `sqlite:${path}`, "--before", "1d"]);
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toMatch(ONE_LINE_REASON);
    expect(outcome.stderr).toContain("does not exist");
    expect(existsSync(path)).toBe(false);
  });
});

describe("pledge gc usage", () => {
  function io(env: Record<string, string> = {}): CliIo & { out: string; err: string } {
    const captured = {
      out: "",
      err: "",
      stdout(text: string) {
        captured.out += text;
      },
      stderr(text: string) {
        captured.err += text;
      },
      env,
      now: () => Date.UTC(2026, 3, 1),
      waitForStop: () => new Promise<string>(() => {}),
    };
    return captured;
  }

  it.each([
    [["gc", "--store", "sqlite:x.db"], "--before"],
    [["gc", "--before", "1d"], "--store"],
    [["gc", "--store", "sqlite:x.db", "--before", "yesterday"], "--before"],
    [["gc", "--store", "sqlite:x.db", "--before", "2026-04-01T10:00"], "--before"],
    [["gc", "--store", "sqlite:x.db", "--before", "-1d"], "--before"],
    [["gc", "--store", "memory", "--before", "1d"], "--store"],
    [["gc", "--store", "redis://h", "--before", "1d"], "--store"],
  ])("exits 2 with a one-line reason naming the flag for %j", async (argv, flag) => {
    const captured = io();
    expect(await runCli(argv, captured)).toBe(2);
    expect(captured.out).toBe("");
    expect(captured.err).toMatch(ONE_LINE_REASON);
    expect(captured.err).toContain(flag);
  });

  it("--before is now minus a duration, or an ISO 8601 time with its zone, or a UTC date", () => {
    const now = Date.UTC(2026, 3, 10, 12);
    expect(cutOffArgument("7d", now)).toBe(Date.UTC(2026, 3, 3, 12));
    expect(cutOffArgument("0s", now)).toBe(now);
    expect(cutOffArgument("2026-04-01T00:00:00Z", now)).toBe(Date.UTC(2026, 3, 1));
    expect(cutOffArgument("2026-04-01T02:00:00.5+02:00", now)).toBe(Date.UTC(2026, 3, 1) + 500);
    expect(cutOffArgument("2026-04-01", now)).toBe(Date.UTC(2026, 3, 1));
  });

  it("on a terminal, stderr shows a progress counter per batch, ended by a newline", async () => {
    const path = await sqliteFile("progress.db");
    const terminal = io();
    terminal.stderrIsTty = true;
    terminal.now = () => Date.now();
    const code = await runCli(["gc", "--store", path, "--before", "1h"], terminal);
    expect(code, terminal.err).toBe(0);
    expect(terminal.err).toBe("\rremoved 2 promises, 1 tasks…\n");
    expect(terminal.out).toMatch(/^removed 2 promises and 1 tasks settled before /);
  });

  it("the help says plainly that idempotence ends when gc removes a record", async () => {
    const captured = io();
    expect(await runCli(["gc", "--help"], captured)).toBe(0);
    expect(captured.out.replace(/\s+/g, " ")).toContain(
      "an id is idempotent only while its record exists; after gc removes it, a request with the same id starts afresh",
    );
  });
});

describe("pledge gc on PostgreSQL", () => {
  if (!requirePostgres("pledge gc on PostgreSQL")) return;

  it("removes promises settled before the cut-off with their tasks, and keeps the rest", async () => {
    const schema = freshSchema("pledge_gc");
    const store = await openPostgresStore({ url: POSTGRES_URL, schema });
    try {
      await populate(store);
      const url = `${POSTGRES_URL}?schema=${schema}`;
      const outcome = await pledge(["gc", "--store", url, "--before", "1h", "--json"]);
      expect(outcome.code, outcome.stderr).toBe(0);
      expect(JSON.parse(outcome.stdout)).toMatchObject({ promises: 2, tasks: 1, kept: 0 });
      expect(await promiseIds(store)).toEqual(["fresh", "open"]);
    } finally {
      await store.close();
      await dropSchema(schema);
    }
  });
});

describe("pledge serve --retain", () => {
  it("removes old settled promises in the background and logs how many", async () => {
    const path = join(directory, "retained.db");
    const server = start([
      "serve",
      "--port",
      "0",
      "--store",
      `sqlite:${path}`,
      "--retain",
      "1s",
      "--log-level",
      "info",
    ]);
    try {
      const [, url] = await waitForLine(
        server,
        /^pledge serving (http:\/\/\S+) \(store [^)]*, retain 1s\)/m,
        20_000,
      );
      const created = await pledge([
        "promises",
        "create",
        "short-lived",
        "--timeout",
        "1h",
        "--url",
        url ?? "",
      ]);
      expect(created.code, created.stderr).toBe(0);
      const resolved = await pledge(["promises", "resolve", "short-lived", "--url", url ?? ""]);
      expect(resolved.code, resolved.stderr).toBe(0);
      await waitForLine(server, /"promises":1.*"retention removed settled records"/, 10_000);
      const gone = await pledge(["promises", "get", "short-lived", "--url", url ?? ""]);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toContain("404");
      const exited = finished(server, 20_000);
      server.kill("SIGTERM");
      expect((await exited).code).toBe(0);
    } finally {
      server.kill("SIGKILL");
    }
  });
});
