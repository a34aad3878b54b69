/**
 * Wire records of the Distributed Async Await protocol, version 2026-04-01
 * (PROTOCOL.md §2). These are what clients see; the core's stored shapes live in
 * `core/state.ts`. All instants and durations are integer milliseconds.
 */
export const PROTOCOL_VERSION = "2026-04-01";

/** §2.1: opaque to the server; stored and echoed exactly, absent keys omitted. */
export interface Value {
  headers?: Record<string, string>;
  data?: string;
}

export type Tags = Record<string, string>;

export const PROMISE_STATES = [
  "pending",
  "resolved",
  "rejected",
  "rejected_canceled",
  "rejected_timedout",
] as const;
export type PromiseState = (typeof PROMISE_STATES)[number];

/** States a client may ask for in `promise.settle` / `task.fulfill` (§3.5). */
export const SETTLABLE_STATES = ["resolved", "rejected", "rejected_canceled"] as const;

/**
 * Pledge's extension of `promise.create` data (ADR 0005, docs/interop.md): the
 * promise is created already settled, as if a settle followed in the same
 * request. A server that does not know the field creates the promise pending, and
 * the SDK, seeing it pending, settles it.
 */
export const SETTLE_ON_CREATE = "pledge:settle";

/** The HTTP response header in which a Pledge server names the extensions it takes. */
export const EXTENSIONS_HEADER = "Pledge-Extensions";
/** `settle-on-create`: `SETTLE_ON_CREATE`, and preload of every branch-mate (ADR 0005). */
export const SETTLE_ON_CREATE_EXTENSION = "settle-on-create";
/** `batch`: a `POST /` body may be an array of requests, answered by an array (ADR 0006). */
export const BATCH_EXTENSION = "batch";
/** `preload-opt-out`: `PRELOAD_FIELD` (ADR 0006). */
export const PRELOAD_OPT_OUT_EXTENSION = "preload-opt-out";
/** In `task.fence` data, `false`: answer `preload: []`, the caller has no use for it. */
export const PRELOAD_FIELD = "pledge:preload";
export const PROTOCOL_EXTENSIONS: ReadonlySet<string> = new Set([
  SETTLE_ON_CREATE_EXTENSION,
  BATCH_EXTENSION,
  PRELOAD_OPT_OUT_EXTENSION,
]);
/** The most requests one batch may hold. */
export const MAX_BATCH_REQUESTS = 1000;
export type SettlableState = (typeof SETTLABLE_STATES)[number];

export interface PromiseRecord {
  id: string;
  state: PromiseState;
  param: Value;
  value: Value;
  tags: Tags;
  timeoutAt: number;
  createdAt: number;
  settledAt?: number;
}

export const TASK_STATES = ["pending", "acquired", "suspended", "halted", "fulfilled"] as const;
export type TaskState = (typeof TASK_STATES)[number];

export interface TaskRecord {
  id: string;
  state: TaskState;
  version: number;
  resumes: number;
  ttl?: number;
  pid?: string;
}

export interface ScheduleRecord {
  id: string;
  cron: string;
  promiseId: string;
  promiseTimeout: number;
  promiseParam: Value;
  promiseTags: Tags;
  createdAt: number;
  nextRunAt: number;
  lastRunAt?: number;
}

/** §1.8 outgoing messages. */
export interface ExecuteMessage {
  kind: "execute";
  head: { serverUrl?: string };
  data: { task: { id: string; version: number } };
}

export interface UnblockMessage {
  kind: "unblock";
  head: Record<string, never>;
  data: { promise: PromiseRecord };
}

export type OutgoingMessage = ExecuteMessage | UnblockMessage;

/** Well-known tags (§2.5). */
export const TAG = {
  target: "resonate:target",
  timer: "resonate:timer",
  external: "resonate:external",
  delay: "resonate:delay",
  origin: "resonate:origin",
  parent: "resonate:parent",
  branch: "resonate:branch",
  prefix: "resonate:prefix",
  scope: "resonate:scope",
  schedule: "resonate:schedule",
} as const;

/** §2.2 classification. */
export function isTargeted(tags: Tags): boolean {
  return Object.hasOwn(tags, TAG.target);
}

export function isTimer(tags: Tags): boolean {
  return tags[TAG.timer] === "true";
}

export function isExternal(tags: Tags): boolean {
  return tags[TAG.external] === "true" || isTargeted(tags) || isTimer(tags);
}
