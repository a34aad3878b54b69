/**
 * The PostgreSQL store's reads: what a replay pass missed (`fetchReads`), and
 * what a batch's requests name, fetched before its first pass (`prefetch`). Every
 * answer is the database's as of the transaction's current state, in the shape
 * the `StateReader` method gives it; the replay cache (replay.ts) decides which
 * layer an answer belongs to.
 */
import pg from "pg";
import type {
  DueWork,
  OutboxQuery,
  PromiseQuery,
  ScheduleQuery,
  SettledQuery,
  StoredPromise,
  TaskQuery,
} from "../../core/state.js";
import { assert } from "../../lib/assert.js";
import { TAG } from "../../protocol/records.js";
import { type ScheduleRow, scheduleFromRow, type TaskRow, taskFromRow } from "../rows.js";
import type { PointMethod, Read, ReplayCache } from "./replay.js";
import {
  assertLimit,
  OUTBOX_COLUMNS,
  type OutboxRow,
  outboxFromRow,
  PROMISE_COLUMNS,
  type PromiseRow,
  promiseFromRow,
  SCHEDULE_COLUMNS,
  TASK_COLUMNS,
  Where,
} from "./row-reads.js";
import { decodeText, encodedTagsJson, encodeText } from "./text.js";

/** The earliest deadline of any kind, as committed (the `nextDueAt` query of every store). */
export const NEXT_DUE_AT_SQL =
  "SELECT min(at) AS at FROM (" +
  "SELECT min(timeout_at) AS at FROM promises WHERE armed " +
  "UNION ALL SELECT min(due_at) FROM tasks WHERE due_at IS NOT NULL " +
  "UNION ALL SELECT min(next_run_at) FROM schedules) AS deadlines";

/**
 * What a batch's requests name (`ReadHints`), read before its first pass: each
 * named promise and task, the callbacks and listeners registered on it, and every
 * promise of the branches the named promises belong to (a fence and an acquire
 * preload their branch). The named promises and tasks are locked (`FOR UPDATE`,
 * ADR 0003), and so the sets keyed by them; branch-mates are only listed.
 * Statements with the ids inlined as escaped literals, so that they can follow
 * BEGIN in one multi-statement round trip (which takes no parameters); their
 * answers come back in `PrefetchedRows`' order.
 */
export function prefetchSql(ids: readonly string[]): string {
  const named = `ARRAY[${ids.map((id) => pg.escapeLiteral(id)).join(", ")}]::text[]`;
  return [
    `SELECT ${PROMISE_COLUMNS} FROM promises WHERE id = ANY(${named}) FOR UPDATE`,
    // The branches, not locked: only preload lists them (core/task-handlers.ts).
    `SELECT ${PROMISE_COLUMNS} FROM promises WHERE branch = ANY(ARRAY(` +
      `SELECT branch FROM promises WHERE id = ANY(${named}) AND branch IS NOT NULL)) ORDER BY id`,
    `SELECT ${TASK_COLUMNS} FROM tasks WHERE id = ANY(${named}) FOR UPDATE`,
    `SELECT awaited, awaiter FROM callbacks WHERE awaited = ANY(${named}) ORDER BY awaited, awaiter`,
    `SELECT awaited, address FROM listeners WHERE awaited = ANY(${named}) ORDER BY awaited, address`,
  ].join("; ");
}

/** The answers of `prefetchSql`'s statements, in order. */
export interface PrefetchedRows {
  promises: PromiseRow[];
  mates: PromiseRow[];
  tasks: TaskRow[];
  callbacks: { awaited: string; awaiter: string }[];
  listeners: { awaited: string; address: string }[];
}

/** `prefetchSql`'s results (those after BEGIN's) as `PrefetchedRows`. */
export function prefetchedRows(results: readonly pg.QueryResult[]): PrefetchedRows {
  assert(results.length === 5, `the prefetch answers five results, not ${results.length}`);
  const [promises, mates, tasks, callbacks, listeners] = results as [
    pg.QueryResult<PromiseRow>,
    pg.QueryResult<PromiseRow>,
    pg.QueryResult<TaskRow>,
    pg.QueryResult<{ awaited: string; awaiter: string }>,
    pg.QueryResult<{ awaited: string; address: string }>,
  ];
  return {
    promises: promises.rows,
    mates: mates.rows,
    tasks: tasks.rows,
    callbacks: callbacks.rows,
    listeners: listeners.rows,
  };
}

/** Stores what `prefetchSql(ids)` answered in `cache`, at layer 0; absent rows are observations too. */
export function storePrefetched(cache: ReplayCache, ids: readonly string[], row: PrefetchedRows): void {
  const named = new Set(ids);
  const promises = new Map(row.promises.map((promiseRow) => [promiseRow.id, promiseFromRow(promiseRow)]));
  for (const id of named) cache.store({ method: "promise", key: id }, promises.get(id));
  // Every promise of a branch a named promise is in was selected, so each list is whole.
  const branches = new Map<string, StoredPromise[]>();
  for (const promise of promises.values()) {
    const branch = promise.tags[TAG.branch];
    if (branch !== undefined) branches.set(branch, []);
  }
  for (const mateRow of row.mates) {
    const mate = promiseFromRow(mateRow);
    branches.get(mate.tags[TAG.branch] as string)?.push(mate); // in id order, as `promisesInBranch` answers
  }
  for (const [branch, mates] of branches) cache.store({ method: "promisesInBranch", args: [branch] }, mates);

  const tasks = new Map(row.tasks.map((taskRow) => [taskRow.id, taskFromRow(taskRow)]));
  for (const id of named) cache.store({ method: "task", key: id }, tasks.get(id));
  const callbacks = new Map<string, string[]>();
  for (const { awaited, awaiter } of row.callbacks)
    callbacks.set(awaited, [...(callbacks.get(awaited) ?? []), awaiter]);
  const listeners = new Map<string, string[]>();
  for (const { awaited, address } of row.listeners)
    listeners.set(awaited, [...(listeners.get(awaited) ?? []), decodeText(address)]);
  for (const id of named) {
    cache.store({ method: "callbacks", key: id }, callbacks.get(id) ?? []);
    cache.store({ method: "listeners", key: id }, listeners.get(id) ?? []);
  }
}

/**
 * Fetches the reads a pass missed, as of the database transaction's current state,
 * in order: point reads of one kind in one query, each other read on its own.
 */
export async function fetchReads(client: pg.PoolClient, reads: readonly Read[]): Promise<unknown[]> {
  const values: unknown[] = new Array(reads.length);
  const byMethod = new Map<PointMethod, { index: number; key: string }[]>();
  const branches: { index: number; branch: string }[] = [];
  for (const [index, read] of reads.entries()) {
    if ("key" in read) {
      const group = byMethod.get(read.method) ?? [];
      group.push({ index, key: read.key });
      byMethod.set(read.method, group);
    } else if (read.method === "promisesInBranch" && reads.length > 1)
      branches.push({ index, branch: read.args[0] as string });
    else values[index] = await fetchRead(client, read);
  }
  if (branches.length > 0) {
    // Several branches in one query; each answer in id order, as `fetchRead` gives it.
    const encoded = new Map(branches.map((entry) => [encodeText(entry.branch), entry.branch]));
    const mates = new Map<string, StoredPromise[]>();
    for (const row of await client
      .query<PromiseRow & { branch: string }>(
        `SELECT branch, ${PROMISE_COLUMNS} FROM promises WHERE branch = ANY($1::text[]) ORDER BY branch, id`,
        [[...encoded.keys()]],
      )
      .then((result) => result.rows)) {
      const branch = encoded.get(row.branch);
      assert(branch !== undefined, `a promise of branch ${row.branch} was not asked for`);
      const list = mates.get(branch) ?? [];
      list.push(promiseFromRow(row));
      mates.set(branch, list);
    }
    for (const entry of branches) values[entry.index] = mates.get(entry.branch) ?? [];
  }
  for (const [method, group] of byMethod) {
    const found = await fetchPoints(
      client,
      method,
      group.map((entry) => entry.key),
    );
    for (const entry of group) values[entry.index] = found(entry.key);
  }
  return values;
}

/** Point reads of one kind for several keys in one query; the lookup answers as `fetchRead` would. */
async function fetchPoints(
  client: pg.PoolClient,
  method: PointMethod,
  keys: string[],
): Promise<(key: string) => unknown> {
  const rows = async <Row extends pg.QueryResultRow>(sql: string, parameters: unknown[]) =>
    (await client.query<Row>(sql, parameters)).rows;
  const single = <V>(entries: [string, V][]) => {
    const map = new Map(entries);
    return (key: string) => map.get(key);
  };
  const sets = (entries: { awaited: string; member: string }[]) => {
    const map = new Map<string, string[]>();
    for (const { awaited, member } of entries) {
      const members = map.get(awaited) ?? [];
      members.push(member);
      map.set(awaited, members);
    }
    return (key: string) => map.get(key) ?? [];
  };
  switch (method) {
    case "promise":
      return single(
        (
          await rows<PromiseRow>(
            `SELECT ${PROMISE_COLUMNS} FROM promises WHERE id = ANY($1::text[]) FOR UPDATE`,
            [keys],
          )
        ).map((row) => [row.id, promiseFromRow(row)]),
      );
    case "task":
      return single(
        (
          await rows<TaskRow>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = ANY($1::text[]) FOR UPDATE`, [
            keys,
          ])
        ).map((row) => [row.id, taskFromRow(row)]),
      );
    case "schedule":
      return single(
        (
          await rows<ScheduleRow>(
            `SELECT ${SCHEDULE_COLUMNS} FROM schedules WHERE id = ANY($1::text[]) FOR UPDATE`,
            [keys],
          )
        ).map((row) => [row.id, scheduleFromRow(row)]),
      );
    case "callbacks":
      await lockPromises(client, keys);
      // By awaiter within each awaited id, as `StateReader.callbacks` answers.
      return sets(
        (
          await rows<{ awaited: string; awaiter: string }>(
            "SELECT awaited, awaiter FROM callbacks WHERE awaited = ANY($1::text[]) ORDER BY awaited, awaiter",
            [keys],
          )
        ).map((row) => ({ awaited: row.awaited, member: row.awaiter })),
      );
    case "listeners":
      await lockPromises(client, keys);
      return sets(
        (
          await rows<{ awaited: string; address: string }>(
            "SELECT awaited, address FROM listeners WHERE awaited = ANY($1::text[]) ORDER BY awaited, address",
            [keys],
          )
        ).map((row) => ({ awaited: row.awaited, member: decodeText(row.address) })),
      );
    case "outboxEntry": {
      const found = new Map(
        (
          await rows<OutboxRow>(
            `SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE key = ANY($1::text[]) FOR UPDATE`,
            [keys.map(encodeText)],
          )
        ).map((row) => {
          const entry = outboxFromRow(row);
          return [entry.key, entry] as const;
        }),
      );
      return (key: string) => found.get(key);
    }
  }
}

/**
 * Locks the rows of the promises `awaited` (those that exist). A callback or listener
 * set is read only with its awaited promise's row locked: every transaction that
 * changes a set reads it first, so they take turns (ADR 0003).
 */
async function lockPromises(client: pg.PoolClient, awaited: readonly string[]): Promise<void> {
  await client.query("SELECT id FROM promises WHERE id = ANY($1::text[]) FOR UPDATE", [awaited]);
}

/** Fetches one query read the replay cache missed, as of the database transaction's current state. */
async function fetchRead(client: pg.PoolClient, read: Read): Promise<unknown> {
  const rows = async <Row extends pg.QueryResultRow>(sql: string, parameters: unknown[]) =>
    (await client.query<Row>(sql, parameters)).rows;
  assert(!("key" in read), "point reads are fetched by fetchPoints");
  switch (read.method) {
    case "promisesInBranch":
      return (
        await rows<PromiseRow>(`SELECT ${PROMISE_COLUMNS} FROM promises WHERE branch = $1 ORDER BY id`, [
          encodeText(read.args[0] as string),
        ])
      ).map(promiseFromRow);
    case "searchPromises": {
      const query = read.args[0] as PromiseQuery;
      const where = new Where();
      if (query.idPrefix !== undefined) where.add((p) => `starts_with(id, ${p})`, query.idPrefix);
      if (query.states !== undefined) where.add((p) => `state = ANY(${p}::text[])`, query.states);
      if (query.tags !== undefined)
        where.add((p) => `tags_index @> ${p}::jsonb`, encodedTagsJson(query.tags));
      if (query.after !== undefined) where.add((p) => `id > ${p}`, query.after);
      const limit = where.limit(query.limit);
      return (
        await rows<PromiseRow>(
          `SELECT ${PROMISE_COLUMNS} FROM promises ${where} ORDER BY id LIMIT ${limit}`,
          where.parameters,
        )
      ).map(promiseFromRow);
    }
    case "searchTasks": {
      const query = read.args[0] as TaskQuery;
      const where = new Where();
      if (query.states !== undefined) where.add((p) => `state = ANY(${p}::text[])`, query.states);
      if (query.after !== undefined) where.add((p) => `id > ${p}`, query.after);
      const limit = where.limit(query.limit);
      return (
        await rows<TaskRow>(
          `SELECT ${TASK_COLUMNS} FROM tasks ${where} ORDER BY id LIMIT ${limit}`,
          where.parameters,
        )
      ).map(taskFromRow);
    }
    case "searchSchedules": {
      const query = read.args[0] as ScheduleQuery;
      const where = new Where();
      if (query.tags !== undefined)
        where.add((p) => `promise_tags_index @> ${p}::jsonb`, encodedTagsJson(query.tags));
      if (query.after !== undefined) where.add((p) => `id > ${p}`, query.after);
      const limit = where.limit(query.limit);
      return (
        await rows<ScheduleRow>(
          `SELECT ${SCHEDULE_COLUMNS} FROM schedules ${where} ORDER BY id LIMIT ${limit}`,
          where.parameters,
        )
      ).map(scheduleFromRow);
    }
    case "due": {
      const [now, limit] = read.args as [number, number];
      assertLimit(limit);
      const ids = async (sql: string) => (await rows<{ id: string }>(sql, [now, limit])).map((row) => row.id);
      const due: DueWork = {
        promiseIds: await ids(
          "SELECT id FROM promises WHERE armed AND timeout_at <= $1 ORDER BY timeout_at, id LIMIT $2",
        ),
        taskIds: await ids("SELECT id FROM tasks WHERE due_at <= $1 ORDER BY due_at, id LIMIT $2"),
        scheduleIds: await ids(
          "SELECT id FROM schedules WHERE next_run_at <= $1 ORDER BY next_run_at, id LIMIT $2",
        ),
      };
      return due;
    }
    case "nextDueAt": {
      const [row] = await rows<{ at: number | null }>(NEXT_DUE_AT_SQL, []);
      return row?.at ?? undefined;
    }
    case "outbox": {
      const query = read.args[0] as OutboxQuery;
      const where = new Where();
      if (query.addressPrefixes !== undefined)
        where.add(
          (p) => `EXISTS (SELECT 1 FROM unnest(${p}::text[]) AS prefix WHERE starts_with(address, prefix))`,
          query.addressPrefixes.map(encodeText),
        );
      if (query.after !== undefined) where.add((p) => `key > ${p}`, encodeText(query.after));
      const limit = where.limit(query.limit);
      return (
        await rows<OutboxRow>(
          `SELECT ${OUTBOX_COLUMNS} FROM outbox ${where} ORDER BY key LIMIT ${limit}`,
          where.parameters,
        )
      ).map(outboxFromRow);
    }
    case "allCallbacks":
      return rows<{ awaited: string; awaiter: string }>(
        "SELECT awaited, awaiter FROM callbacks ORDER BY awaited, awaiter",
        [],
      );
    case "settledPromises": {
      const query = read.args[0] as SettledQuery;
      const where = new Where();
      where.add((p) => `settled_at IS NOT NULL AND settled_at < ${p}`, query.before);
      if (query.after !== undefined) {
        const { settledAt, id } = query.after;
        where.add((p) => `settled_at >= ${p}`, settledAt);
        // The parameter just added is the settledAt bound; the row comparison reuses it.
        const settledAtParameter = `$${where.parameters.length}`;
        where.add((p) => `(settled_at, id) > (${settledAtParameter}::bigint, ${p})`, id);
      }
      const limit = where.limit(query.limit);
      return (
        await rows<PromiseRow>(
          `SELECT ${PROMISE_COLUMNS} FROM promises ${where} ORDER BY settled_at, id LIMIT ${limit}`,
          where.parameters,
        )
      ).map(promiseFromRow);
    }
    case "promisesById":
      return (
        await rows<PromiseRow>(
          `SELECT ${PROMISE_COLUMNS} FROM promises WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`,
          [read.args[0] as string[]],
        )
      ).map(promiseFromRow);
    case "tasksById":
      return (
        await rows<TaskRow>(
          `SELECT ${TASK_COLUMNS} FROM tasks WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`,
          [read.args[0] as string[]],
        )
      ).map(taskFromRow);
    case "callbacksByAwaiter":
      return rows<{ awaited: string; awaiter: string }>(
        "SELECT awaited, awaiter FROM callbacks WHERE awaiter = ANY($1::text[]) ORDER BY awaited, awaiter",
        [read.args[0] as string[]],
      );
    case "allListeners":
      return (
        await rows<{ awaited: string; address: string }>(
          "SELECT awaited, address FROM listeners ORDER BY awaited, address",
          [],
        )
      ).map((row) => ({ awaited: row.awaited, address: decodeText(row.address) }));
  }
}
