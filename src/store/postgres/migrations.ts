/**
 * The PostgreSQL store's schema, as numbered migrations. Append-only (STYLE.md 15):
 * a released migration is never edited, reordered or removed; a change to the
 * schema is a new entry at the end. `postgres-store.ts` applies the pending ones
 * at open, in one transaction holding a transaction-scoped advisory lock, so
 * several replicas starting together apply each migration once.
 *
 * Invariants (asserted by `applyMigrations`):
 *  M1  Versions are 1, 2, 3, … in array order, with no gaps.
 *  M2  Each migration is applied once, in order, inside the opening transaction.
 *
 * Column notes, for the store's readers:
 *  - Every text key is `COLLATE "C"`: byte order of UTF-8, which is code-point
 *    order, Pledge's one order (src/lib/order.ts) and the memory store's.
 *  - `param`, `value`, `tags`, `resume_ids`, `promise_param`, `promise_tags` and
 *    `message` hold JSON text written by `JSON.stringify` (text, not jsonb:
 *    jsonb reorders keys, and records must read back exactly as written).
 *  - `promises.branch` is a copy of the `resonate:branch` tag and `tasks.due_at`
 *    of `retryAt ?? expiresAt`, written by the store with the row.
 *  - PostgreSQL text cannot hold NUL, which tags and addresses may contain (ids
 *    may not). Columns that hold such strings raw — `branch`, `listeners.address`,
 *    `outbox.key`, `outbox.address` and the keys and values of the `*_index` JSONB
 *    copies of tags that searches use — hold them encoded by `encodeText`
 *    (text.ts), which keeps code-point order and prefixes. JSON text columns need
 *    nothing: `JSON.stringify` escapes NUL.
 *  - Instants and durations are `bigint` (milliseconds), read back as numbers.
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
  id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  state TEXT NOT NULL,
  param TEXT NOT NULL,
  value TEXT NOT NULL,
  tags TEXT NOT NULL,
  tags_index JSONB NOT NULL,
  branch TEXT COLLATE "C",
  timeout_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  settled_at BIGINT,
  armed BOOLEAN NOT NULL
);
CREATE INDEX promises_armed_by_timeout ON promises (timeout_at, id) WHERE armed;
CREATE INDEX promises_by_branch ON promises (branch, id) WHERE branch IS NOT NULL;

CREATE TABLE tasks (
  id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  state TEXT NOT NULL,
  version BIGINT NOT NULL,
  resume_ids TEXT NOT NULL,
  pid TEXT,
  ttl BIGINT,
  expires_at BIGINT,
  retry_at BIGINT,
  due_at BIGINT
);
CREATE INDEX tasks_by_due ON tasks (due_at, id) WHERE due_at IS NOT NULL;

CREATE TABLE schedules (
  id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  cron TEXT NOT NULL,
  promise_id TEXT NOT NULL,
  promise_timeout BIGINT NOT NULL,
  promise_param TEXT NOT NULL,
  promise_tags TEXT NOT NULL,
  promise_tags_index JSONB NOT NULL,
  created_at BIGINT NOT NULL,
  next_run_at BIGINT NOT NULL,
  last_run_at BIGINT
);
CREATE INDEX schedules_by_next_run ON schedules (next_run_at, id);

CREATE TABLE callbacks (
  awaited TEXT COLLATE "C" NOT NULL,
  awaiter TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (awaited, awaiter)
);

CREATE TABLE listeners (
  awaited TEXT COLLATE "C" NOT NULL,
  address TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (awaited, address)
);

CREATE TABLE outbox (
  key TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  address TEXT COLLATE "C" NOT NULL,
  message TEXT NOT NULL,
  created_at BIGINT NOT NULL
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
