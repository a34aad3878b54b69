/**
 * The records of `GET /events` (docs/events.md): one JSON object per SSE frame,
 * telling what a committed change did. They are Pledge's own, not part of the
 * durable-promise protocol; the dashboard and `pledge tail` read them, and they
 * are typed here so both can (the CLI and the dashboard may not import the server).
 *
 * Invariants:
 *  V1  Events carry summaries, never `param` or `value`: a value may be megabytes
 *      and a stream of them must stay cheap. Read those with `promise.get`.
 *  V2  `seq` increases by one per event on one server process; a gap seen by a
 *      client means it missed events (it reconnected), and it should re-read.
 */
import type { PromiseState, Tags, TaskState } from "./records.js";

/** What made a change: the request kind (`promise.settle`…), `timer` (the server's sweep), or `restart`. */
export type EventCause = string;

export interface PromiseSummary {
  id: string;
  state: PromiseState;
  tags: Tags;
  timeoutAt: number;
  createdAt: number;
  settledAt?: number;
}

export interface TaskSummary {
  id: string;
  state: TaskState;
  version: number;
  resumes: number;
  /** The holder, while acquired. */
  pid?: string;
  ttl?: number;
}

export interface ScheduleSummary {
  id: string;
  cron: string;
  promiseId: string;
  nextRunAt: number;
  lastRunAt?: number;
}

export const PROMISE_EVENT_KINDS = ["promise.created", "promise.settled"] as const;
export const TASK_EVENT_KINDS = [
  "task.created",
  "task.claimed",
  "task.released",
  "task.suspended",
  "task.resumed",
  "task.halted",
  "task.continued",
  "task.fulfilled",
  "task.retried",
] as const;
export const SCHEDULE_EVENT_KINDS = ["schedule.created", "schedule.fired", "schedule.deleted"] as const;

interface EventBase {
  /** V2: the event's number on this server process, from 1. */
  seq: number;
  /** The instant of the change (the request's `now`), ms since the epoch. */
  at: number;
  cause: EventCause;
}

export interface PromiseEvent extends EventBase {
  kind: (typeof PROMISE_EVENT_KINDS)[number];
  promise: PromiseSummary;
}

export interface TaskEvent extends EventBase {
  kind: (typeof TASK_EVENT_KINDS)[number];
  task: TaskSummary;
  /** The state before the change; absent for `task.created`. */
  from?: TaskState;
}

export interface ScheduleEvent extends EventBase {
  kind: (typeof SCHEDULE_EVENT_KINDS)[number];
  /** The schedule after the change; only its id for `schedule.deleted`. */
  schedule: ScheduleSummary | { id: string };
}

/** `debug.reset` emptied the store: everything a client holds is gone. */
export interface ResetEvent extends EventBase {
  kind: "server.reset";
}

export type ServerEvent = PromiseEvent | TaskEvent | ScheduleEvent | ResetEvent;

/** A server event without its number, as computed inside a transaction. */
export type UnnumberedEvent = WithoutSeq<ServerEvent>;
type WithoutSeq<E> = E extends ServerEvent ? Omit<E, "seq"> : never;

/** The first frame of every `/events` stream: where numbering stands, so a client can spot gaps (V2). */
export interface EventsHello {
  kind: "events.hello";
  /** The `seq` of the last event published before this client joined (0: none yet). */
  seq: number;
}
