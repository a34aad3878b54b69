/**
 * The SQLite store's schema, as numbered migrations. Append-only (STYLE.md 15):
 * a released migration is never edited, reordered or removed; a change to the
 * schema is a new entry at the end. `sqlite-store.ts` applies the pending ones
 * at open, in one transaction, and records each in `pledge_migrations`; the
 * store suite checks that a database migrated step by step equals a fresh one.
 *
 * Invariants (asserted by `applyMigrations`):
 *  M1  Versions are 1, 2, 3, … in array order, with no gaps.
 *  M2  Each migration is applied once, in order, inside the opening transaction.
 *
 * Column notes, for the store's readers:
 *  - `param`, `value`, `tags`, `resume_ids`, `promise_param`, `promise_tags` and
 *    `message` hold JSON text written by `JSON.stringify`.
 *  - `promises.branch` is a copy of the `resonate:branch` tag and `tasks.due_at`
 *    of `retryAt ?? expiresAt`, both written by the store with the row so that
 *    `promisesInBranch` and `due` walk an index instead of parsing JSON.
 *  - `promises.armed` is 0 or 1.
 *  - Migration 2 indexes what retention reads (`settledPromises`, `callbacksByAwaiter`):
 *    settled promises by `(settled_at, id)`, callbacks by awaiter.
 *  - Migration 3 indexes promises and tasks by `state`, so `countByState` (the
 *    `/metrics` gauges) is a GROUP BY over an index, not over the rows.
 */

export interface Migration {
  /** 1-based; equals the migration's position in `MIGRATIONS` plus one (M1). */
  version: number;
  /** kebab-case, for logs and the `pledge_migrations` table. */
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "initial-schema",
    sql: `
CREATE TABLE promises (
  id TEXT NOT NULL PRIMARY KEY,
  state TEXT NOT NULL,
  param TEXT NOT NULL,
  value TEXT NOT NULL,
  tags TEXT NOT NULL,
  branch TEXT,
  timeout_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  settled_at INTEGER,
  armed INTEGER NOT NULL
);
CREATE INDEX promises_armed_by_timeout ON promises (timeout_at, id) WHERE armed = 1;
CREATE INDEX promises_by_branch ON promises (branch, id) WHERE branch IS NOT NULL;

CREATE TABLE tasks (
  id TEXT NOT NULL PRIMARY KEY,
  state TEXT NOT NULL,
  version INTEGER NOT NULL,
  resume_ids TEXT NOT NULL,
  pid TEXT,
  ttl INTEGER,
  expires_at INTEGER,
  retry_at INTEGER,
  due_at INTEGER
);
CREATE INDEX tasks_by_due ON tasks (due_at, id) WHERE due_at IS NOT NULL;

CREATE TABLE schedules (
  id TEXT NOT NULL PRIMARY KEY,
  cron TEXT NOT NULL,
  promise_id TEXT NOT NULL,
  promise_timeout INTEGER NOT NULL,
  promise_param TEXT NOT NULL,
  promise_tags TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  next_run_at INTEGER NOT NULL,
  last_run_at INTEGER
);
CREATE INDEX schedules_by_next_run ON schedules (next_run_at, id);

CREATE TABLE callbacks (
  awaited TEXT NOT NULL,
  awaiter TEXT NOT NULL,
  PRIMARY KEY (awaited, awaiter)
) WITHOUT ROWID;

CREATE TABLE listeners (
  awaited TEXT NOT NULL,
  address TEXT NOT NULL,
  PRIMARY KEY (awaited, address)
) WITHOUT ROWID;

CREATE TABLE outbox (
  key TEXT NOT NULL PRIMARY KEY,
  address TEXT NOT NULL,
  message TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX outbox_by_address ON outbox (address, key);
`,
  },
  {
    version: 2,
    name: "retention-indexes",
    sql: `
CREATE INDEX promises_by_settled ON promises (settled_at, id) WHERE settled_at IS NOT NULL;
CREATE INDEX callbacks_by_awaiter ON callbacks (awaiter, awaited);
`,
  },
  {
    version: 3,
    name: "state-indexes",
    sql: `
CREATE INDEX promises_by_state ON promises (state);
CREATE INDEX tasks_by_state ON tasks (state);
`,
  },
];
