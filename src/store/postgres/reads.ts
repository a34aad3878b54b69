/**
 * The PostgreSQL store's reads: what a replay pass missed (`fetchReads`), and
 * what a batch's requests name, fetched before its first pass (`prefetch`). Every
 * answer is the database's as of the transaction's current state, in the shape
 * the `StateReader` method gives it; the replay cache (replay.ts) decides which
 * layer an answer belongs to.
 */
import type pg from "pg";
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
import type { ReadHints } from "../store.js";
import { prepared } from "./pipeline.js";
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
const NEXT_DUE_AT_SQL =
  "SELECT min(at) AS at FROM (" +
  "SELECT min(timeout_at) AS at FROM promises WHERE armed " +
  "UNION ALL SELECT min(due_at) FROM tasks WHERE due_at IS NOT NULL " +
  "UNION ALL SELECT min(next_run_at) FROM schedules) AS deadlines";

/** Statements to send, and how to read what they answer; the store sends them pipelined (pipeline.ts). */
export interface Fetch<V> {
  queries: pg.QueryConfig[];
  /** `results`: the answers to `queries`, in order. */
  answer(results: readonly pg.QueryResult[]): V;
}

/** Several fetches as one: their statements in order, their answers in order. */
function together<V>(fetches: readonly Fetch<V>[]): Fetch<V[]> {
  return {
    queries: fetches.flatMap((fetch) => fetch.queries),
    answer(results) {
      let offset = 0;
      return fetches.map((fetch) => {
        const own = results.slice(offset, offset + fetch.queries.length);
        offset += fetch.queries.length;
        return fetch.answer(own);
      });
    },
  };
}

/** One statement whose rows are the answer, mapped by `map`. */
function selecting<Row extends pg.QueryResultRow, V>(
  query: pg.QueryConfig,
  map: (rows: Row[]) => V,
): Fetch<V> {
  return { queries: [query], answer: (results) => map((results[0] as pg.QueryResult<Row>).rows) };
}

/** The earliest deadline as of the statement (the `nextDueAt` read; ReplayPass.nextDueAt). */
export function nextDueAtFetch(): Fetch<number | undefined> {
  return selecting(prepared(NEXT_DUE_AT_SQL), (rows: { at: number | null }[]) => rows[0]?.at ?? undefined);
}

/** The answers of `prefetch`'s statements. */
export interface PrefetchedRows {
  promises: PromiseRow[];
  mates: PromiseRow[];
  tasks: TaskRow[];
  callbacks: { awaited: string; awaiter: string }[];
  listeners: { awaited: string; address: string }[];
  outbox: OutboxRow[];
}

/** `rows` as one JSON array, a column of NAMED_SQL's one row (`json_agg` of no rows is NULL, not `[]`). */
const jsonRows = (rows: string, order = "") =>
  `coalesce((SELECT json_agg(r${order}) FROM (${rows}) AS r), '[]')`;

/**
 * The tasks, callbacks and listeners of the named ids, in one statement (one bind,
 * execution and result per batch, in PostgreSQL and in `pg`, rather than three of
 * each): the tasks locked, each set a JSON array of rows shaped as
 * separate selects would give them (`bigint`s are safe integers, so JSON numbers
 * are exact). The promises are selected on their own: their texts are the bulk of
 * what is read, and as JSON they would be escaped by PostgreSQL and unescaped here.
 */
const NAMED_SQL =
  "SELECT " +
  `${jsonRows(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = ANY($1::text[]) FOR UPDATE`)} AS tasks, ` +
  `${jsonRows("SELECT awaited, awaiter FROM callbacks WHERE awaited = ANY($1::text[])", " ORDER BY r.awaited, r.awaiter")} AS callbacks, ` +
  `${jsonRows("SELECT awaited, address FROM listeners WHERE awaited = ANY($1::text[])", " ORDER BY r.awaited, r.address")} AS listeners`;

type NamedRows = Pick<PrefetchedRows, "tasks" | "callbacks" | "listeners">;

/**
 * What a batch's requests name (`ReadHints`), read before its first pass: each
 * named promise and task, the callbacks and listeners registered on it, every
 * promise of the branches of the `branchesOf` promises (what a preload lists) and
 * of the branches named like them (a new root's branch bears its id), and the
 * named outbox entries. The named promises, tasks and outbox entries are locked
 * (`FOR UPDATE`, ADR 0003), and so the sets keyed by the promises; branch-mates are
 * only listed. Fixed texts, prepared; a statement with nothing to read is not sent.
 */
export function prefetch(hints: ReadHints): Fetch<PrefetchedRows> {
  const ids = [...new Set(hints.ids)];
  const branchesOf = [...new Set(hints.branchesOf ?? [])];
  const outboxKeys = [...new Set(hints.outboxKeys ?? [])].map(encodeText);
  const parts: { assign(rows: PrefetchedRows, result: pg.QueryResult): void; query: pg.QueryConfig }[] = [];
  const read = (name: keyof PrefetchedRows, text: string, values: unknown[]) =>
    parts.push({
      assign: (rows, result) => {
        rows[name] = result.rows as never[];
      },
      query: prepared(text, values),
    });
  if (ids.length > 0) {
    read("promises", `SELECT ${PROMISE_COLUMNS} FROM promises WHERE id = ANY($1::text[]) FOR UPDATE`, [ids]);
    parts.push({
      query: prepared(NAMED_SQL, [ids]),
      assign: (rows, result) => {
        const named = result.rows[0] as NamedRows | undefined;
        assert(
          result.rows.length === 1 &&
            Array.isArray(named?.tasks) &&
            Array.isArray(named.callbacks) &&
            Array.isArray(named.listeners),
          "the prefetch of tasks, callbacks and listeners answers one row of three arrays",
        );
        Object.assign(rows, named);
      },
    });
  }
  if (branchesOf.length > 0)
    read(
      "mates",
      `SELECT ${PROMISE_COLUMNS} FROM promises WHERE branch = ANY(ARRAY(` +
        "SELECT branch FROM promises WHERE id = ANY($1::text[]) AND branch IS NOT NULL) || $2::text[]) " +
        "ORDER BY id",
      [branchesOf, branchesOf.map(encodeText)],
    );
  if (outboxKeys.length > 0)
    read("outbox", `SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE key = ANY($1::text[]) FOR UPDATE`, [
      outboxKeys,
    ]);
  return {
    queries: parts.map((part) => part.query),
    answer(results) {
      const rows: PrefetchedRows = {
        promises: [],
        mates: [],
        tasks: [],
        callbacks: [],
        listeners: [],
        outbox: [],
      };
      for (const [index, part] of parts.entries()) {
        const result = results[index];
        assert(result !== undefined, `prefetch statement ${index + 1} of ${parts.length} has no answer`);
        part.assign(rows, result);
      }
      return rows;
    },
  };
}

/** Stores what `prefetch(hints)` answered in `cache`, at layer 0; absent rows are observations too. */
export function storePrefetched(cache: ReplayCache, hints: ReadHints, row: PrefetchedRows): void {
  const named = new Set(hints.ids);
  const promises = new Map(row.promises.map((promiseRow) => [promiseRow.id, promiseFromRow(promiseRow)]));
  for (const id of named) cache.store({ method: "promise", key: id }, promises.get(id));
  // Every promise of these branches was selected, so each list is whole: the branches
  // named like a `branchesOf` id, and those of the `branchesOf` promises, each of
  // which is among its own branch's rows.
  const branchesOf = new Set(hints.branchesOf ?? []);
  const mates = row.mates.map(promiseFromRow);
  const branches = new Map<string, StoredPromise[]>([...branchesOf].map((id) => [id, []]));
  for (const mate of mates) {
    const branch = mate.tags[TAG.branch];
    if (branchesOf.has(mate.id) && branch !== undefined) branches.set(branch, []);
  }
  for (const mate of mates) branches.get(mate.tags[TAG.branch] as string)?.push(mate); // in id order
  for (const [branch, list] of branches) cache.store({ method: "promisesInBranch", args: [branch] }, list);

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
  const outbox = new Map(
    row.outbox.map((outboxRow) => {
      const entry = outboxFromRow(outboxRow);
      return [entry.key, entry];
    }),
  );
  for (const key of new Set(hints.outboxKeys ?? []))
    cache.store({ method: "outboxEntry", key }, outbox.get(key));
}

/**
 * The reads a pass missed, as of the database transaction's current state, in
 * order: point reads of one kind in one statement, the branch lists in one, each
 * other read on its own.
 */
export function fetchReads(reads: readonly Read[]): Fetch<unknown[]> {
  const byMethod = new Map<PointMethod, { index: number; key: string }[]>();
  const branches: { index: number; branch: string }[] = [];
  const others: { index: number; fetch: Fetch<unknown> }[] = [];
  for (const [index, read] of reads.entries()) {
    if ("key" in read) {
      const group = byMethod.get(read.method) ?? [];
      group.push({ index, key: read.key });
      byMethod.set(read.method, group);
    } else if (read.method === "promisesInBranch") branches.push({ index, branch: read.args[0] as string });
    else others.push({ index, fetch: fetchRead(read) });
  }
  const points = [...byMethod].map(([method, group]) => ({
    group,
    fetch: fetchPoints(
      method,
      group.map((entry) => entry.key),
    ),
  }));
  const mates = fetchBranches(branches.map((entry) => entry.branch));
  const all = together<unknown>([
    ...others.map((other) => other.fetch),
    ...points.map((point) => point.fetch),
    ...(branches.length > 0 ? [mates] : []),
  ]);
  return {
    queries: all.queries,
    answer(results) {
      const answers = all.answer(results);
      const values: unknown[] = new Array(reads.length);
      let next = 0;
      for (const other of others) values[other.index] = answers[next++];
      for (const point of points) {
        const found = answers[next++] as (key: string) => unknown;
        for (const entry of point.group) values[entry.index] = found(entry.key);
      }
      if (branches.length > 0) {
        const lists = answers[next] as Map<string, StoredPromise[]>;
        for (const entry of branches) values[entry.index] = lists.get(entry.branch) ?? [];
      }
      return values;
    },
  };
}

/** Several branches' promises in one statement; each list in id order, as `promisesInBranch` answers. */
function fetchBranches(branches: readonly string[]): Fetch<Map<string, StoredPromise[]>> {
  const encoded = new Map(branches.map((branch) => [encodeText(branch), branch]));
  return selecting(
    prepared(
      `SELECT branch, ${PROMISE_COLUMNS} FROM promises WHERE branch = ANY($1::text[]) ORDER BY branch, id`,
      [[...encoded.keys()]],
    ),
    (rows: (PromiseRow & { branch: string })[]) => {
      const mates = new Map<string, StoredPromise[]>();
      for (const row of rows) {
        const branch = encoded.get(row.branch);
        assert(branch !== undefined, `a promise of branch ${row.branch} was not asked for`);
        const list = mates.get(branch) ?? [];
        list.push(promiseFromRow(row));
        mates.set(branch, list);
      }
      return mates;
    },
  );
}

/** Point reads of one kind for several keys in one statement; the lookup answers as the reader would. */
function fetchPoints(method: PointMethod, keys: string[]): Fetch<(key: string) => unknown> {
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
      return selecting(
        prepared(`SELECT ${PROMISE_COLUMNS} FROM promises WHERE id = ANY($1::text[]) FOR UPDATE`, [keys]),
        (rows: PromiseRow[]) => single(rows.map((row) => [row.id, promiseFromRow(row)])),
      );
    case "task":
      return selecting(
        prepared(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = ANY($1::text[]) FOR UPDATE`, [keys]),
        (rows: TaskRow[]) => single(rows.map((row) => [row.id, taskFromRow(row)])),
      );
    case "schedule":
      return selecting(
        prepared(`SELECT ${SCHEDULE_COLUMNS} FROM schedules WHERE id = ANY($1::text[]) FOR UPDATE`, [keys]),
        (rows: ScheduleRow[]) => single(rows.map((row) => [row.id, scheduleFromRow(row)])),
      );
    case "callbacks":
      // By awaiter within each awaited id, as `StateReader.callbacks` answers.
      return lockingPromises(
        keys,
        prepared(
          "SELECT awaited, awaiter FROM callbacks WHERE awaited = ANY($1::text[]) ORDER BY awaited, awaiter",
          [keys],
        ),
        (rows: { awaited: string; awaiter: string }[]) =>
          sets(rows.map((row) => ({ awaited: row.awaited, member: row.awaiter }))),
      );
    case "listeners":
      return lockingPromises(
        keys,
        prepared(
          "SELECT awaited, address FROM listeners WHERE awaited = ANY($1::text[]) ORDER BY awaited, address",
          [keys],
        ),
        (rows: { awaited: string; address: string }[]) =>
          sets(rows.map((row) => ({ awaited: row.awaited, member: decodeText(row.address) }))),
      );
    case "outboxEntry":
      return selecting(
        prepared(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE key = ANY($1::text[]) FOR UPDATE`, [
          keys.map(encodeText),
        ]),
        (rows: OutboxRow[]) =>
          single(
            rows.map((row) => {
              const entry = outboxFromRow(row);
              return [entry.key, entry];
            }),
          ),
      );
  }
}

/**
 * `query` read with the rows of the promises `awaited` (those that exist) locked
 * first. A callback or listener set is read only with its awaited promise's row
 * locked: every transaction that changes a set reads it first, so they take turns
 * (ADR 0003).
 */
function lockingPromises<Row extends pg.QueryResultRow, V>(
  awaited: readonly string[],
  query: pg.QueryConfig,
  map: (rows: Row[]) => V,
): Fetch<V> {
  return {
    queries: [prepared("SELECT id FROM promises WHERE id = ANY($1::text[]) FOR UPDATE", [awaited]), query],
    answer: (results) => map((results[1] as pg.QueryResult<Row>).rows),
  };
}

/** One query read the replay cache missed, as of the database transaction's current state. */
function fetchRead(read: Read): Fetch<unknown> {
  assert(!("key" in read), "point reads are fetched by fetchPoints");
  const query = (text: string, values: unknown[]): pg.QueryConfig => ({ text, values });
  switch (read.method) {
    case "promisesInBranch": {
      const branch = read.args[0] as string;
      const lists = fetchBranches([branch]);
      return { queries: lists.queries, answer: (results) => lists.answer(results).get(branch) ?? [] };
    }
    case "searchPromises": {
      const search = read.args[0] as PromiseQuery;
      const where = new Where();
      if (search.idPrefix !== undefined) where.add((p) => `starts_with(id, ${p})`, search.idPrefix);
      if (search.states !== undefined) where.add((p) => `state = ANY(${p}::text[])`, search.states);
      if (search.tags !== undefined)
        where.add((p) => `tags_index @> ${p}::jsonb`, encodedTagsJson(search.tags));
      if (search.after !== undefined) where.add((p) => `id > ${p}`, search.after);
      const limit = where.limit(search.limit);
      return selecting(
        query(
          `SELECT ${PROMISE_COLUMNS} FROM promises ${where} ORDER BY id LIMIT ${limit}`,
          where.parameters,
        ),
        (rows: PromiseRow[]) => rows.map(promiseFromRow),
      );
    }
    case "searchTasks": {
      const search = read.args[0] as TaskQuery;
      const where = new Where();
      if (search.states !== undefined) where.add((p) => `state = ANY(${p}::text[])`, search.states);
      if (search.after !== undefined) where.add((p) => `id > ${p}`, search.after);
      const limit = where.limit(search.limit);
      return selecting(
        query(`SELECT ${TASK_COLUMNS} FROM tasks ${where} ORDER BY id LIMIT ${limit}`, where.parameters),
        (rows: TaskRow[]) => rows.map(taskFromRow),
      );
    }
    case "searchSchedules": {
      const search = read.args[0] as ScheduleQuery;
      const where = new Where();
      if (search.tags !== undefined)
        where.add((p) => `promise_tags_index @> ${p}::jsonb`, encodedTagsJson(search.tags));
      if (search.after !== undefined) where.add((p) => `id > ${p}`, search.after);
      const limit = where.limit(search.limit);
      return selecting(
        query(
          `SELECT ${SCHEDULE_COLUMNS} FROM schedules ${where} ORDER BY id LIMIT ${limit}`,
          where.parameters,
        ),
        (rows: ScheduleRow[]) => rows.map(scheduleFromRow),
      );
    }
    case "due": {
      const [now, limit] = read.args as [number, number];
      assertLimit(limit);
      const ids = (text: string) =>
        selecting(prepared(text, [now, limit]), (rows: { id: string }[]) => rows.map((row) => row.id));
      const lists = together([
        ids("SELECT id FROM promises WHERE armed AND timeout_at <= $1 ORDER BY timeout_at, id LIMIT $2"),
        ids("SELECT id FROM tasks WHERE due_at <= $1 ORDER BY due_at, id LIMIT $2"),
        ids("SELECT id FROM schedules WHERE next_run_at <= $1 ORDER BY next_run_at, id LIMIT $2"),
      ]);
      return {
        queries: lists.queries,
        answer(results): DueWork {
          const [promiseIds, taskIds, scheduleIds] = lists.answer(results) as [string[], string[], string[]];
          return { promiseIds, taskIds, scheduleIds };
        },
      };
    }
    case "nextDueAt":
      return nextDueAtFetch();
    case "outbox": {
      const search = read.args[0] as OutboxQuery;
      const where = new Where();
      if (search.addressPrefixes !== undefined)
        where.add(
          (p) => `EXISTS (SELECT 1 FROM unnest(${p}::text[]) AS prefix WHERE starts_with(address, prefix))`,
          search.addressPrefixes.map(encodeText),
        );
      if (search.after !== undefined) where.add((p) => `key > ${p}`, encodeText(search.after));
      const limit = where.limit(search.limit);
      return selecting(
        query(`SELECT ${OUTBOX_COLUMNS} FROM outbox ${where} ORDER BY key LIMIT ${limit}`, where.parameters),
        (rows: OutboxRow[]) => rows.map(outboxFromRow),
      );
    }
    case "allCallbacks":
      return selecting(
        query("SELECT awaited, awaiter FROM callbacks ORDER BY awaited, awaiter", []),
        (rows: { awaited: string; awaiter: string }[]) => rows,
      );
    case "settledPromises": {
      const search = read.args[0] as SettledQuery;
      const where = new Where();
      where.add((p) => `settled_at IS NOT NULL AND settled_at < ${p}`, search.before);
      if (search.after !== undefined) {
        const { settledAt, id } = search.after;
        where.add((p) => `settled_at >= ${p}`, settledAt);
        // The parameter just added is the settledAt bound; the row comparison reuses it.
        const settledAtParameter = `$${where.parameters.length}`;
        where.add((p) => `(settled_at, id) > (${settledAtParameter}::bigint, ${p})`, id);
      }
      const limit = where.limit(search.limit);
      return selecting(
        query(
          `SELECT ${PROMISE_COLUMNS} FROM promises ${where} ORDER BY settled_at, id LIMIT ${limit}`,
          where.parameters,
        ),
        (rows: PromiseRow[]) => rows.map(promiseFromRow),
      );
    }
    case "promisesById":
      return selecting(
        prepared(
          `SELECT ${PROMISE_COLUMNS} FROM promises WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`,
          [read.args[0] as string[]],
        ),
        (rows: PromiseRow[]) => rows.map(promiseFromRow),
      );
    case "tasksById":
      return selecting(
        prepared(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`, [
          read.args[0] as string[],
        ]),
        (rows: TaskRow[]) => rows.map(taskFromRow),
      );
    case "callbacksByAwaiter":
      return selecting(
        prepared(
          "SELECT awaited, awaiter FROM callbacks WHERE awaiter = ANY($1::text[]) ORDER BY awaited, awaiter",
          [read.args[0] as string[]],
        ),
        (rows: { awaited: string; awaiter: string }[]) => rows,
      );
    case "allListeners":
      return selecting(
        query("SELECT awaited, address FROM listeners ORDER BY awaited, address", []),
        (rows: { awaited: string; address: string }[]) =>
          rows.map((row) => ({ awaited: row.awaited, address: decodeText(row.address) })),
      );
  }
}
