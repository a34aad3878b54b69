/**
 * The SQLite store: the shared suite on a file and in memory, then what only
 * this store promises: durability across reopen, one owner per file, schema
 * versions and migrations, pragmas, rollback and error mapping.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AssertionError } from "../../src/lib/assert.js";
import { MIGRATIONS } from "../../src/store/sqlite/migrations.js";
import {
  applyMigrations,
  openSqliteStore,
  prefixUpperBound,
  SqliteOwnedError,
  type SqliteStore,
} from "../../src/store/sqlite/sqlite-store.js";
import { type Store, StoreSchemaError, StoreUnavailableError } from "../../src/store/store.js";
import { changesOf, describeStore, promiseFixture } from "./store-suite.js";

const directories = new Map<Store, string>();

describeStore(
  "sqlite file",
  async () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "pledge-sqlite-"));
    const store = openSqliteStore({ path: path.join(directory, "pledge.db") });
    directories.set(store, directory);
    return store;
  },
  async (store) => {
    await store.close();
    fs.rmSync(directories.get(store) ?? "", { recursive: true, force: true });
    directories.delete(store);
  },
);

describeStore("sqlite :memory:", async () => openSqliteStore({ path: ":memory:" }));

const repositoryRoot = fileURLToPath(new URL("../../", import.meta.url));
const storeModule = pathToFileURL(
  fileURLToPath(new URL("../../src/store/sqlite/sqlite-store.ts", import.meta.url)),
);

/** A script for another process: opens the file, then obeys lines on stdin (`url <u>`, `crash`). */
const ownerScript = `
import { createInterface } from "node:readline";
import { openSqliteStore } from ${JSON.stringify(storeModule.href)};
const store = openSqliteStore({ path: process.argv[2] });
process.stdout.write("ready\\n");
for await (const line of createInterface({ input: process.stdin })) {
  if (line.startsWith("url ")) store.setOwnerUrl(line.slice(4));
  if (line === "crash") process.kill(process.pid, "SIGKILL");
  process.stdout.write("done\\n");
}
await store.close();
`;

interface Owner {
  child: ChildProcess;
  /** Sends one command and resolves after the owner answers. */
  send(command: string): Promise<void>;
  exited: Promise<void>;
}

async function startOwner(directory: string, databasePath: string): Promise<Owner> {
  const script = path.join(directory, "owner.mts");
  fs.writeFileSync(script, ownerScript);
  const child = spawn(process.execPath, ["--import", "tsx", script, databasePath], {
    cwd: repositoryRoot,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  let buffered = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    let end = buffered.indexOf("\n");
    while (end >= 0) {
      lines.push(buffered.slice(0, end));
      buffered = buffered.slice(end + 1);
      waiters.shift()?.();
      end = buffered.indexOf("\n");
    }
  });
  const nextLine = () =>
    new Promise<void>((resolve, reject) => {
      if (lines.length > waiters.length) return resolve();
      waiters.push(resolve);
      void exited.then(() => reject(new Error("the owner process exited")));
    });
  await nextLine();
  return {
    child,
    exited,
    send: async (command) => {
      child.stdin?.write(`${command}\n`);
      await nextLine();
    },
  };
}

describe("sqlite store on a file", () => {
  let directory: string;
  let databasePath: string;
  const opened: SqliteStore[] = [];
  const owners: Owner[] = [];
  const open = (options: { sync?: "full" | "normal"; ownerUrl?: string } = {}) => {
    const store = openSqliteStore({ path: databasePath, ...options });
    opened.push(store);
    return store;
  };

  beforeEach(() => {
    directory = fs.mkdtempSync(path.join(os.tmpdir(), "pledge-sqlite-"));
    databasePath = path.join(directory, "pledge.db");
  });

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    for (const owner of owners.splice(0)) {
      owner.child.stdin?.end();
      await owner.exited;
    }
    fs.rmSync(directory, { recursive: true, force: true });
  });

  describe("durability", () => {
    it("data survives closing and reopening the file", async () => {
      const first = open();
      const written = promiseFixture("p1", { state: "resolved", value: { data: "kept" }, settledAt: 9 });
      await first.transaction((tx) =>
        tx.apply(changesOf({ promises: [written], callbacks: new Map([["p1", ["p0"]]]) })),
      );
      await first.close();
      const second = open();
      expect(await second.transaction((tx) => [tx.promise("p1"), tx.callbacks("p1")])).toStrictEqual([
        written,
        ["p0"],
      ]);
    });

    it("the file is in WAL mode with synchronous FULL by default", async () => {
      const store = open();
      expect(store.synchronous).toBe("full");
      await store.close();
      const raw = new Database(databasePath);
      expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
      raw.close();
    });

    it("synchronous is NORMAL when asked", () => {
      expect(open({ sync: "normal" }).synchronous).toBe("normal");
    });
  });

  describe("one owner per file", () => {
    it("a second process opening an owned file is told the owner's pid, and its URL once recorded", async () => {
      const owner = await startOwner(directory, databasePath);
      owners.push(owner);
      const pid = owner.child.pid;
      expect(() => open()).toThrow(new RegExp(`is owned by process ${pid}, which serves no HTTP; stop it`));
      await owner.send("url http://127.0.0.1:8123");
      let refusal: unknown;
      try {
        open();
      } catch (error) {
        refusal = error;
      }
      expect(refusal).toBeInstanceOf(SqliteOwnedError);
      expect((refusal as Error).message).toBe(
        `sqlite:${databasePath} is owned by process ${pid}, reachable at http://127.0.0.1:8123; ` +
          "stop it or point your client at that URL (pledge … --url http://127.0.0.1:8123)",
      );
      expect(refusal).toMatchObject({ ownerPid: pid, ownerUrl: "http://127.0.0.1:8123" });
    });

    it("a second open in the same process is refused, naming this process", () => {
      open({ ownerUrl: "http://127.0.0.1:8001" });
      expect(() => open()).toThrow(`is owned by process ${process.pid} (this process), reachable at`);
    });

    it("a file whose owner was killed is taken over at once, and the takeover is reported", async () => {
      const owner = await startOwner(directory, databasePath);
      await owner.send("url http://127.0.0.1:8123").catch(() => {});
      owner.child.stdin?.write("crash\n");
      await owner.exited;
      expect(owner.child.signalCode).toBe("SIGKILL");
      expect(fs.existsSync(`${databasePath}.lock`)).toBe(true);
      const store = open();
      expect(store.tookOverStaleLock).toBe(true);
      expect(JSON.parse(fs.readFileSync(`${databasePath}.lock`, "utf8"))).toMatchObject({ pid: process.pid });
    });

    it("a lock file naming a live process that does not hold the file is stale (a reused pid)", () => {
      fs.writeFileSync(`${databasePath}.lock`, JSON.stringify({ pid: process.pid, startedAt: "earlier" }));
      expect(open().tookOverStaleLock).toBe(true);
    });

    it("a cleanly closed file leaves no lock file, and the next owner takes over nothing", async () => {
      const first = open({ ownerUrl: "http://127.0.0.1:8001" });
      expect(first.tookOverStaleLock).toBe(false);
      expect(JSON.parse(fs.readFileSync(`${databasePath}.lock`, "utf8"))).toMatchObject({
        pid: process.pid,
        url: "http://127.0.0.1:8001",
      });
      await first.close();
      expect(fs.existsSync(`${databasePath}.lock`)).toBe(false);
      expect(open().tookOverStaleLock).toBe(false);
    });

    it("setOwnerUrl records the URL in the lock file", () => {
      open().setOwnerUrl("http://127.0.0.1:9000");
      expect(JSON.parse(fs.readFileSync(`${databasePath}.lock`, "utf8"))).toMatchObject({
        pid: process.pid,
        url: "http://127.0.0.1:9000",
      });
    });
  });

  describe("schema", () => {
    it("migrations are numbered 1, 2, 3… in order, with distinct names", () => {
      expect(MIGRATIONS.map((migration) => migration.version)).toEqual(
        MIGRATIONS.map((_, index) => index + 1),
      );
      expect(new Set(MIGRATIONS.map((migration) => migration.name)).size).toBe(MIGRATIONS.length);
    });

    it("a migrated database equals a fresh one", async () => {
      const schemaOf = (file: string) => {
        const raw = new Database(file);
        const schema = {
          objects: raw
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
            .all(),
          applied: raw.prepare("SELECT version, name FROM pledge_migrations ORDER BY version").all(),
        };
        raw.close();
        return schema;
      };
      const freshPath = path.join(directory, "fresh.db");
      await openSqliteStore({ path: freshPath }).close();
      const fresh = schemaOf(freshPath);
      expect(fresh.applied).toHaveLength(MIGRATIONS.length);

      const steppedPath = path.join(directory, "stepped.db");
      for (let known = 0; known <= MIGRATIONS.length; known += 1) {
        const raw = new Database(steppedPath);
        const versions = applyMigrations(raw, {
          migrations: MIGRATIONS.slice(0, known),
          description: "stepped",
        });
        raw.close();
        expect(versions).toEqual({ from: Math.max(known - 1, 0), to: known });
      }
      await openSqliteStore({ path: steppedPath }).close();
      expect(schemaOf(steppedPath)).toStrictEqual(fresh);
    });

    it("a database with a newer schema version is refused, naming both versions", async () => {
      await open().close();
      opened.length = 0;
      const raw = new Database(databasePath);
      raw.prepare("INSERT INTO pledge_migrations (version, name) VALUES (?, ?)").run(99, "from-the-future");
      raw.close();
      expect(() => open()).toThrow(StoreSchemaError);
      expect(() => open()).toThrow(
        `sqlite:${databasePath} has schema version 99, but this build of Pledge knows versions up to ${MIGRATIONS.length}; upgrade Pledge to open it`,
      );
      expect(fs.existsSync(`${databasePath}.lock`)).toBe(false);
    });

    it("a file that is not a SQLite database is refused as unusable", () => {
      fs.writeFileSync(databasePath, "this is not a database, it is a text file of some length".repeat(100));
      expect(() => open()).toThrow(StoreSchemaError);
    });

    it("a file in a missing directory is reported unavailable", () => {
      databasePath = path.join(directory, "missing", "pledge.db");
      expect(() => open()).toThrow(StoreUnavailableError);
    });
  });

  describe("transactions", () => {
    const attempt = (store: SqliteStore, failure: unknown) =>
      store.transaction((tx) => {
        tx.apply(changesOf({ promises: [promiseFixture("p1")], callbacks: new Map([["p1", ["p0"]]]) }));
        throw failure;
      });
    const nothingApplied = async (store: SqliteStore) =>
      expect(await store.transaction((tx) => [tx.promise("p1"), tx.allCallbacks()])).toEqual([undefined, []]);

    it("a failure inside work rolls back everything the transaction applied", async () => {
      const store = open();
      await expect(attempt(store, new Error("step failed"))).rejects.toThrow("step failed");
      await nothingApplied(store);
      expect(store.stats.commits).toBe(1);
    });

    it.each(["SQLITE_BUSY", "SQLITE_IOERR_WRITE", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_LOCKED"])(
      "%s inside a transaction rolls it back and surfaces as StoreUnavailableError",
      async (code) => {
        const store = open();
        const failure = attempt(store, new Database.SqliteError("simulated", code));
        await expect(failure).rejects.toThrow(StoreUnavailableError);
        await expect(failure).rejects.toThrow(new RegExp(`${code}`));
        await nothingApplied(store);
      },
    );

    it("other SQLite errors pass through unchanged", async () => {
      const store = open();
      const constraint = new Database.SqliteError("simulated", "SQLITE_CONSTRAINT_PRIMARYKEY");
      await expect(attempt(store, constraint)).rejects.toBe(constraint);
      await nothingApplied(store);
    });

    it("work that returns a promise is refused and nothing is applied", async () => {
      const store = open();
      const asynchronous = store.transaction(async (tx) => {
        tx.apply(changesOf({ promises: [promiseFixture("p1")] }));
      });
      await expect(asynchronous).rejects.toThrow(AssertionError);
      await nothingApplied(store);
    });

    it("a transaction started inside another transaction's work is refused", async () => {
      const store = open();
      let inner: Promise<unknown> | undefined;
      await store.transaction(() => {
        inner = store.transaction(() => 1);
        inner.catch(() => {});
      });
      await expect(inner).rejects.toThrow(/inside another transaction/);
    });

    it("the handle refuses to answer after its transaction ended", async () => {
      const store = open();
      const handle = await store.transaction((tx) => tx);
      expect(() => handle.promise("p1")).toThrow(AssertionError);
    });

    it("a closed store refuses transactions, and ping reports it unavailable", async () => {
      const store = open();
      await store.close();
      await expect(store.transaction(() => 1)).rejects.toThrow("is closed");
      await expect(store.ping()).rejects.toThrow(StoreUnavailableError);
    });
  });

  describe("ordering", () => {
    it("ids above U+FFFF sort after U+E000–U+FFFF, unlike JavaScript (documented in sqlite-store.ts)", async () => {
      const store = open();
      const ids = ["a\uff01", "a\u{1f600}"];
      await store.transaction((tx) => tx.apply(changesOf({ promises: ids.map((id) => promiseFixture(id)) })));
      const found = await store.transaction((tx) => tx.searchPromises({ limit: 10 }));
      expect(found.map((promise) => promise.id)).toEqual(["a\uff01", "a\u{1f600}"]);
      expect([...ids].sort()).toEqual(["a\u{1f600}", "a\uff01"]);
    });

    it("the prefix upper bound raises the last code point below U+10FFFF", () => {
      expect(prefixUpperBound("abc")).toBe("abd");
      expect(prefixUpperBound("a\ud7ff")).toBe("a\ue000");
      expect(prefixUpperBound("a\uffff")).toBe("a\u{10000}");
      expect(prefixUpperBound("a\u{1f600}")).toBe("a\u{1f601}");
      expect(prefixUpperBound("a\u{10ffff}\u{10ffff}")).toBe("b");
      expect(prefixUpperBound("\u{10ffff}")).toEqual(Buffer.alloc(0));
      expect(prefixUpperBound("")).toEqual(Buffer.alloc(0));
    });
  });
});
