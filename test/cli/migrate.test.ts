/**
 * `pledge migrate --store S` as a real process (issue 5, item 1): it applies the
 * numbered migrations and exits, printing the schema version before → after; run
 * again it says the store is current; a schema newer than the build is refused
 * with the store's own message (exit 1); a SQLite file a server owns is refused
 * naming the owner (exit 1); `memory` and a missing --store are usage (exit 2).
 * On SQLite always, on PostgreSQL when reachable (loud skip otherwise, a failure
 * under CI=true).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIGRATIONS as POSTGRES_MIGRATIONS } from "../../src/store/postgres/migrations.js";
import { MIGRATIONS as SQLITE_MIGRATIONS } from "../../src/store/sqlite/migrations.js";
import { applyMigrations } from "../../src/store/sqlite/sqlite-store.js";
import { dropSchema, freshSchema, POSTGRES_URL, requirePostgres } from "../differential/postgres.js";
import { ensureBuilt, finished, ONE_LINE_REASON, pledge, start, waitForLine } from "./helpers.js";

let directory: string;

beforeAll(async () => {
  await ensureBuilt();
  directory = mkdtempSync(join(tmpdir(), "pledge-cli-migrate-"));
}, 180_000);

afterAll(() => {
  if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
});

const NEWEST_SQLITE = SQLITE_MIGRATIONS.length;
const NEWEST_POSTGRES = POSTGRES_MIGRATIONS.length;

function sqliteVersion(path: string): number {
  const db = new Database(path, { fileMustExist: true });
  try {
    return db.prepare("SELECT max(version) FROM pledge_migrations").pluck().get() as number;
  } finally {
    db.close();
  }
}

describe("pledge migrate on SQLite", () => {
  it("creates and migrates a new file from 0 to the newest version, then says it is current", async () => {
    const path = join(directory, "new.db");
    const first = await pledge(["migrate", "--store", `sqlite:${path}`]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toBe("");
    expect(first.stdout).toBe(
      `sqlite:${path}: schema version 0 → ${NEWEST_SQLITE} (applied ${NEWEST_SQLITE} migrations)\n`,
    );
    expect(sqliteVersion(path)).toBe(NEWEST_SQLITE);
    const again = await pledge(["migrate", "--store", path, "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({
      store: `sqlite:${path}`,
      from: NEWEST_SQLITE,
      to: NEWEST_SQLITE,
      applied: 0,
    });
  });

  it("brings a file at version 1 up to the newest, reading the store from PLEDGE_STORE", async () => {
    const path = join(directory, "old.db");
    const db = new Database(path);
    applyMigrations(db, { migrations: SQLITE_MIGRATIONS.slice(0, 1), description: path });
    db.close();
    const outcome = await pledge(["migrate", "--json"], { env: { PLEDGE_STORE: `sqlite:${path}` } });
    expect(outcome.code, outcome.stderr).toBe(0);
    expect(JSON.parse(outcome.stdout)).toMatchObject({ from: 1, to: NEWEST_SQLITE });
    expect(sqliteVersion(path)).toBe(NEWEST_SQLITE);
  });

  it("refuses a schema newer than this build with the store's message, and changes nothing", async () => {
    const path = join(directory, "newer.db");
    expect((await pledge(["migrate", "--store", path])).code).toBe(0);
    const db = new Database(path);
    db.prepare("INSERT INTO pledge_migrations (version, name) VALUES (?, 'from-the-future')").run(
      NEWEST_SQLITE + 5,
    );
    db.close();
    const outcome = await pledge(["migrate", "--store", `sqlite:${path}`]);
    expect(outcome.code).toBe(1);
    expect(outcome.stdout).toBe("");
    expect(outcome.stderr).toMatch(ONE_LINE_REASON);
    expect(outcome.stderr).toContain(
      `has schema version ${NEWEST_SQLITE + 5}, but this build of Pledge knows versions up to ${NEWEST_SQLITE}; upgrade Pledge`,
    );
    expect(sqliteVersion(path)).toBe(NEWEST_SQLITE + 5);
  });

  it("refuses a file a running server owns, naming the owner's pid", async () => {
    const path = join(directory, "owned.db");
    const server = start(["serve", "--port", "0", "--store", `sqlite:${path}`, "--log-level", "silent"]);
    try {
      await waitForLine(server, /^pledge serving (http:\/\/\S+) /m, 20_000);
      const outcome = await pledge(["migrate", "--store", `sqlite:${path}`]);
      expect(outcome.code).toBe(1);
      expect(outcome.stdout).toBe("");
      expect(outcome.stderr).toMatch(ONE_LINE_REASON);
      expect(outcome.stderr).toContain(`is owned by process ${server.pid}`);
      const exited = finished(server, 20_000);
      server.kill("SIGTERM");
      expect((await exited).code).toBe(0);
    } finally {
      server.kill("SIGKILL");
    }
  });

  it("bad usage exits 2 naming the flag, before opening anything", async () => {
    const memory = await pledge(["migrate", "--store", "memory"]);
    expect(memory.code).toBe(2);
    expect(memory.stderr).toMatch(ONE_LINE_REASON);
    expect(memory.stderr).toContain("--store: memory holds nothing");
    const missing = await pledge(["migrate"], { env: { PLEDGE_STORE: undefined } });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--store: required");
    const unknown = await pledge(["migrate", "--store", "mysql://localhost/x"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("--store: unknown store URL");
  });

  it("an unreachable PostgreSQL is a failed operation (exit 1) with the store's reason", async () => {
    const outcome = await pledge(["migrate", "--store", "postgres://postgres@127.0.0.1:1/none"]);
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toMatch(ONE_LINE_REASON);
    expect(outcome.stderr).toContain("cannot be reached");
  });
});

describe("pledge migrate on PostgreSQL", () => {
  if (!requirePostgres("pledge migrate on PostgreSQL")) return;

  it("migrates a fresh schema from 0, says it is current the second time, and refuses a newer schema", async () => {
    const schema = freshSchema("pledge_migrate");
    const url = `${POSTGRES_URL}?schema=${schema}`;
    try {
      const first = await pledge(["migrate", "--store", url]);
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toMatch(
        new RegExp(
          `\\(schema ${schema}\\): schema version 0 → ${NEWEST_POSTGRES} \\(applied ${NEWEST_POSTGRES} migrations\\)\\n$`,
        ),
      );
      const again = await pledge(["migrate", "--store", url, "--json"]);
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({
        from: NEWEST_POSTGRES,
        to: NEWEST_POSTGRES,
        applied: 0,
      });

      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        await client.query(
          `INSERT INTO ${pg.escapeIdentifier(schema)}.pledge_migrations (version, name) VALUES ($1, 'from-the-future')`,
          [NEWEST_POSTGRES + 5],
        );
      } finally {
        await client.end();
      }
      const newer = await pledge(["migrate", "--store", url]);
      expect(newer.code).toBe(1);
      expect(newer.stdout).toBe("");
      expect(newer.stderr).toMatch(ONE_LINE_REASON);
      expect(newer.stderr).toContain(
        `has schema version ${NEWEST_POSTGRES + 5}, but this build of Pledge knows versions up to ${NEWEST_POSTGRES}`,
      );
    } finally {
      await dropSchema(schema);
    }
  });
});
