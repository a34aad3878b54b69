/**
 * A black-box client for the conformance suite (PROTOCOL.md §1.2–§1.3). It knows
 * the wire and nothing of `src/`: requests are JSON envelopes posted to `${url}/`,
 * replies are parsed and returned whole so tests can assert on every field.
 *
 * `Client` adds what every test needs: a debug clock stamped on every request
 * (never moved backwards, §1.6), short-hands for the common requests, and an
 * observer that checks, on every reply, the properties that must hold of any
 * response (C8 projection, settled records never change, task versions never
 * go back). `Client.check()` dumps `debug.snap` and checks the spec's
 * "Properties worth testing directly" against it (`snapshotProblems`).
 */
import { isDeepStrictEqual } from "node:util";
import { expect } from "vitest";

export const VERSION = "2026-04-01";

// biome-ignore lint/suspicious/noExplicitAny: wire JSON; each test asserts the shape it relies on
export type Json = any;

export interface CallOptions {
  /** `head["resonate:debug_time"]`. */
  time?: number;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Sent as `head.auth`. */
  headAuth?: string;
  corrId?: string;
  /** `head.version`; `null` omits it. Default `2026-04-01`. */
  version?: string | null;
  /** Extra `head` fields. */
  head?: Record<string, unknown>;
}

export interface Reply {
  httpStatus: number;
  contentType: string | null;
  /** `head.status` (undefined when the body is not an envelope). */
  status: number;
  kind: string;
  corrId: string;
  head: Json;
  data: Json;
  /** The parsed body (or the raw text when it is not JSON). */
  body: Json;
}

let corrCounter = 0;

export function nextCorrId(): string {
  corrCounter += 1;
  return `corr-${process.pid}-${corrCounter}`;
}

/** POSTs a request envelope `{kind, head, data}` to `${url}/`. */
export async function call(
  url: string,
  kind: string,
  data: unknown,
  options: CallOptions = {},
): Promise<Reply> {
  const head: Record<string, unknown> = { corrId: options.corrId ?? nextCorrId() };
  if (options.version !== null) head.version = options.version ?? VERSION;
  if (options.time !== undefined) head["resonate:debug_time"] = options.time;
  if (options.headAuth !== undefined) head.auth = options.headAuth;
  Object.assign(head, options.head ?? {});
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  return post(url, JSON.stringify({ kind, head, data }), headers);
}

/** POSTs raw text to `${url}/` (for malformed envelopes). */
export async function post(url: string, text: string, headers: Record<string, string> = {}): Promise<Reply> {
  const response = await fetch(`${url}/`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: text,
    redirect: "manual",
  });
  const raw = await response.text();
  let body: Json = raw;
  try {
    body = JSON.parse(raw);
  } catch {
    // not JSON: tests asserting on an envelope will fail on `status`
  }
  const envelope = typeof body === "object" && body !== null;
  return {
    httpStatus: response.status,
    contentType: response.headers.get("content-type"),
    status: envelope ? body.head?.status : undefined,
    kind: envelope ? body.kind : undefined,
    corrId: envelope ? body.head?.corrId : undefined,
    head: envelope ? body.head : undefined,
    data: envelope ? body.data : undefined,
    body,
  };
}

/** Asserts an error reply: HTTP status and `head.status` both equal `status`, `data` a string (§1.3). */
export function expectError(reply: Reply, status: number): void {
  const context = JSON.stringify(reply.body);
  expect(reply.status, context).toBe(status);
  expect(reply.httpStatus, context).toBe(status);
  expect(typeof reply.data, context).toBe("string");
}

/** Asserts a success reply and returns its `data`. */
export function expectOk(reply: Reply, status = 200): Json {
  const context = JSON.stringify(reply.body);
  expect(reply.status, context).toBe(status);
  expect(reply.httpStatus, context).toBe(status);
  return reply.data;
}

// ---------------------------------------------------------------------------
// Records and tags

export interface PromiseRecord {
  id: string;
  state: "pending" | "resolved" | "rejected" | "rejected_canceled" | "rejected_timedout";
  param: { headers?: Record<string, string>; data?: string };
  value: { headers?: Record<string, string>; data?: string };
  tags: Record<string, string>;
  timeoutAt: number;
  createdAt: number;
  settledAt?: number;
}

export interface TaskRecord {
  id: string;
  state: "pending" | "acquired" | "suspended" | "halted" | "fulfilled";
  version: number;
  resumes: number;
  ttl?: number;
  pid?: string;
}

export interface SnapMessage {
  address: string;
  message: Json;
}

export interface Snapshot {
  promises: PromiseRecord[];
  promiseTimeouts: { id: string; timeout: number }[];
  callbacks: { awaiter: string; awaited: string }[];
  listeners: { id: string; address: string }[];
  tasks: TaskRecord[];
  taskTimeouts: { id: string; type: number; timeout: number }[];
  messages: SnapMessage[];
}

export const SNAPSHOT_KEYS = [
  "promises",
  "promiseTimeouts",
  "callbacks",
  "listeners",
  "tasks",
  "taskTimeouts",
  "messages",
] as const;

/** Default target used by the suite; any string is a valid target (§2.5). */
export const TARGET = "poll://any@workers";
export const LISTENER = "poll://uni@clients/c1";

export const TAG_TARGET = "resonate:target";
export const TAG_TIMER = "resonate:timer";
export const TAG_EXTERNAL = "resonate:external";
export const TAG_DELAY = "resonate:delay";
export const TAG_BRANCH = "resonate:branch";

export function targeted(
  target: string = TARGET,
  extra: Record<string, string> = {},
): Record<string, string> {
  return { [TAG_TARGET]: target, ...extra };
}
export function external(extra: Record<string, string> = {}): Record<string, string> {
  return { [TAG_EXTERNAL]: "true", ...extra };
}
export function timer(extra: Record<string, string> = {}): Record<string, string> {
  return { [TAG_TIMER]: "true", ...extra };
}

export function isTargeted(tags: Record<string, string>): boolean {
  return Object.hasOwn(tags, TAG_TARGET);
}
export function isTimer(tags: Record<string, string>): boolean {
  return tags[TAG_TIMER] === "true";
}
export function isExternal(tags: Record<string, string>): boolean {
  return tags[TAG_EXTERNAL] === "true" || isTargeted(tags) || isTimer(tags);
}

/** §4.5: deliverable addresses. */
export function isDeliverable(address: string): boolean {
  return (
    address.startsWith("http://") ||
    address.startsWith("https://") ||
    (address.startsWith("poll://") && address.includes("@"))
  );
}

/** §3.1 projection of a stored promise at `now`. */
export function projectPromise(record: PromiseRecord, now: number): PromiseRecord {
  if (record.state !== "pending" || record.timeoutAt > now) return record;
  return {
    ...record,
    state: isTimer(record.tags) ? "resolved" : "rejected_timedout",
    settledAt: record.timeoutAt,
  };
}

export function executes(snap: Snapshot, id?: string): SnapMessage[] {
  return snap.messages.filter(
    (m) => m.message?.kind === "execute" && (id === undefined || m.message?.data?.task?.id === id),
  );
}

export function unblocks(snap: Snapshot, id?: string): SnapMessage[] {
  return snap.messages.filter(
    (m) => m.message?.kind === "unblock" && (id === undefined || m.message?.data?.promise?.id === id),
  );
}

/** Compact view of the queued executes: `"<id>@<version>-><address>"`, sorted. */
export function executeKeys(snap: Snapshot): string[] {
  return executes(snap)
    .map((m) => `${m.message.data.task.id}@${m.message.data.task.version}->${m.address}`)
    .sort();
}

// ---------------------------------------------------------------------------
// Snapshot properties (PROTOCOL.md §10 "Properties worth testing directly",
// §2.3 / §3.7 field rules, §1.7 snapshot shape as fixed by Pledge's decisions).

export function snapshotProblems(snap: Snapshot, now: number): string[] {
  const problems: string[] = [];
  const bad = (message: string) => problems.push(message);
  for (const key of SNAPSHOT_KEYS) {
    if (!Array.isArray(snap?.[key])) bad(`snapshot: ${key} is not an array`);
  }
  if (problems.length > 0) return problems;

  const promises = new Map(snap.promises.map((p) => [p.id, p]));
  const tasks = new Map(snap.tasks.map((t) => [t.id, t]));
  if (promises.size !== snap.promises.length) bad("snapshot: duplicate promise ids");
  if (tasks.size !== snap.tasks.length) bad("snapshot: duplicate task ids");

  for (const p of snap.promises) {
    const task = tasks.get(p.id);
    const projected = projectPromise(p, now);
    if (isTargeted(p.tags) && task === undefined) bad(`targeted promise ${p.id} has no task`);
    if (p.state !== "pending" && task !== undefined && task.state !== "fulfilled") {
      bad(`settled promise ${p.id} has a ${task.state} task (must be fulfilled)`);
    }
    if (p.state === "pending" && p.settledAt !== undefined) bad(`pending promise ${p.id} has settledAt`);
    if (p.state !== "pending" && p.settledAt === undefined) bad(`settled promise ${p.id} lacks settledAt`);
    if (p.createdAt > p.timeoutAt) bad(`promise ${p.id} createdAt ${p.createdAt} > timeoutAt ${p.timeoutAt}`);
    const armed = snap.promiseTimeouts.filter((t) => t.id === p.id);
    if (p.state === "pending" && isExternal(p.tags)) {
      if (armed.length !== 1 || armed[0]?.timeout !== p.timeoutAt) {
        bad(
          `pending external promise ${p.id} must have one durable timeout at ${p.timeoutAt}: ${JSON.stringify(armed)}`,
        );
      }
    } else if (armed.length > 0) {
      bad(
        `promise ${p.id} (${p.state}, ${isExternal(p.tags) ? "external" : "internal"}) has a durable timeout (C1)`,
      );
    }
    if (projected.state === "pending" && p.timeoutAt <= now) bad(`projection helper broken for ${p.id}`);
  }
  for (const t of snap.promiseTimeouts) {
    if (!promises.has(t.id)) bad(`promiseTimeout for missing promise ${t.id}`);
  }

  for (const t of snap.tasks) {
    const p = promises.get(t.id);
    if (p === undefined) {
      bad(`task ${t.id} has no promise`);
      continue;
    }
    if (!isTargeted(p.tags)) bad(`task ${t.id} belongs to an untargeted promise`);
    if (!Number.isInteger(t.version) || t.version < 0) bad(`task ${t.id} version ${t.version}`);
    const projected = projectPromise(p, now);
    const hasLease = t.pid !== undefined && t.ttl !== undefined;
    const hasNoLease = t.pid === undefined && t.ttl === undefined;
    if (t.state === "acquired" ? !hasLease : !hasNoLease) {
      bad(`task ${t.id} is ${t.state} with pid=${t.pid} ttl=${t.ttl} (acquired ⇔ pid/ttl)`);
    }
    if (t.state === "fulfilled" && projected.state === "pending") {
      bad(`task ${t.id} is fulfilled but its promise is pending`);
    }
    if ((t.state === "fulfilled" || t.state === "suspended") && t.resumes !== 0) {
      bad(`${t.state} task ${t.id} has resumes ${t.resumes}`);
    }
    const timeouts = snap.taskTimeouts.filter((x) => x.id === t.id);
    const expectedType = t.state === "pending" ? 0 : t.state === "acquired" ? 1 : undefined;
    if (expectedType === undefined) {
      if (timeouts.length > 0) bad(`${t.state} task ${t.id} has task timeouts ${JSON.stringify(timeouts)}`);
    } else if (timeouts.length !== 1 || timeouts[0]?.type !== expectedType) {
      bad(
        `${t.state} task ${t.id} must have exactly one type-${expectedType} timeout: ${JSON.stringify(timeouts)}`,
      );
    }
    if (t.state === "suspended" && projected.state === "pending") {
      if (!snap.callbacks.some((c) => c.awaiter === t.id)) {
        bad(`suspended live task ${t.id} is registered as a callback on no promise`);
      }
    }
  }
  for (const x of snap.taskTimeouts) {
    if (!tasks.has(x.id)) bad(`taskTimeout for missing task ${x.id}`);
    if (x.type !== 0 && x.type !== 1) bad(`taskTimeout ${x.id} has type ${x.type}`);
  }

  const callbackKeys = new Set<string>();
  for (const c of snap.callbacks) {
    const key = `${c.awaited}<-${c.awaiter}`;
    if (callbackKeys.has(key)) bad(`duplicate callback ${key}`);
    callbackKeys.add(key);
    const awaited = promises.get(c.awaited);
    const awaiter = promises.get(c.awaiter);
    if (awaited === undefined || awaiter === undefined) {
      bad(`callback ${key} names a missing promise`);
      continue;
    }
    if (!isTargeted(awaiter.tags)) bad(`callback ${key}: awaiter is not targeted`);
    if (!isExternal(awaited.tags)) bad(`callback ${key}: awaited is internal (C2)`);
    if (awaited.state !== "pending") bad(`callback ${key} on settled promise (undrained only, C11)`);
  }
  const listenerKeys = new Set<string>();
  for (const l of snap.listeners) {
    const key = `${l.id}->${l.address}`;
    if (listenerKeys.has(key)) bad(`duplicate listener ${key}`);
    listenerKeys.add(key);
    const awaited = promises.get(l.id);
    if (awaited === undefined) {
      bad(`listener ${key} on a missing promise`);
      continue;
    }
    if (!isExternal(awaited.tags)) bad(`listener ${key} on an internal promise (C3)`);
    if (awaited.state !== "pending") bad(`listener ${key} on settled promise (undrained only, C11)`);
    if (!isDeliverable(l.address)) bad(`listener ${key} has an undeliverable address`);
  }

  const executeIds = new Set<string>();
  const unblockKeys = new Set<string>();
  for (const m of snap.messages) {
    const message = m.message;
    if (message?.kind === "execute") {
      const ref = message.data?.task;
      const id = ref?.id;
      if (executeIds.has(id)) bad(`two queued executes for task ${id} (outbox keyed by task id, P8)`);
      executeIds.add(id);
      const task = tasks.get(id);
      const p = promises.get(id);
      if (task === undefined || p === undefined) {
        bad(`execute for missing task ${id}`);
        continue;
      }
      if (m.address !== p.tags[TAG_TARGET])
        bad(`execute ${id} to ${m.address}, target is ${p.tags[TAG_TARGET]}`);
      if (!Number.isInteger(ref.version) || ref.version > task.version) {
        bad(`execute ${id}@${ref.version} beyond task version ${task.version} (C9)`);
      }
      if (typeof message.head !== "object" || message.head === null) bad(`execute ${id} has no head`);
    } else if (message?.kind === "unblock") {
      const record = message.data?.promise as PromiseRecord | undefined;
      const key = `${record?.id}:notify:${m.address}`;
      if (unblockKeys.has(key)) bad(`duplicate unblock ${key}`);
      unblockKeys.add(key);
      if (!isDeliverable(m.address)) bad(`unblock ${key} to an undeliverable address`);
      if (record === undefined || record.state === "pending") {
        bad(`unblock ${key} carries a pending record`);
        continue;
      }
      const stored = promises.get(record.id);
      if (stored === undefined) bad(`unblock ${key} for a missing promise`);
      else if (!isDeepStrictEqual(projectPromise(stored, now), record)) {
        bad(`unblock ${key} record ${JSON.stringify(record)} differs from ${JSON.stringify(stored)}`);
      }
    } else {
      bad(`unknown message ${JSON.stringify(m)}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------
// Client with a debug clock and response observer

export interface ClientOptions {
  token?: string;
  /** Stamp `resonate:debug_time` (default true). */
  debugTime?: boolean;
}

export class Client {
  /** The debug time stamped on every request. */
  now = 0;
  /** Property violations seen in responses (checked after each test). */
  readonly violations: string[] = [];
  private readonly seenPromises = new Map<string, PromiseRecord>();
  private readonly seenTasks = new Map<string, TaskRecord>();

  constructor(
    readonly url: string,
    readonly options: ClientOptions = {},
  ) {}

  /** Moves the debug clock; never backwards (§1.6). */
  at(time: number): this {
    if (time < this.now) throw new Error(`test bug: time ${time} < ${this.now}`);
    this.now = time;
    return this;
  }

  async call(kind: string, data: unknown, options: CallOptions = {}): Promise<Reply> {
    const time = this.options.debugTime === false ? undefined : this.now;
    const reply = await call(this.url, kind, data, {
      time,
      ...(this.options.token === undefined ? {} : { token: this.options.token }),
      ...options,
    });
    this.observe(kind, reply);
    return reply;
  }

  /** Calls and asserts `200` (or `status`), returning `data`. */
  async ok(kind: string, data: unknown, status = 200): Promise<Json> {
    return expectOk(await this.call(kind, data), status);
  }

  // --- short-hands -------------------------------------------------------

  createPromise(
    id: string,
    timeoutAt: number,
    extra: { tags?: Record<string, string>; param?: Json } = {},
  ): Promise<Reply> {
    return this.call("promise.create", { id, timeoutAt, ...extra });
  }

  async promise(id: string): Promise<PromiseRecord> {
    return (await this.ok("promise.get", { id })).promise;
  }

  async task(id: string): Promise<TaskRecord> {
    return (await this.ok("task.get", { id })).task;
  }

  settle(id: string, state: string, value?: Json): Promise<Reply> {
    return this.call("promise.settle", { id, state, ...(value === undefined ? {} : { value }) });
  }

  taskCreate(
    id: string,
    timeoutAt: number,
    extra: { pid?: string; ttl?: number; tags?: Record<string, string>; param?: Json } = {},
  ): Promise<Reply> {
    return this.call("task.create", {
      pid: extra.pid ?? "w1",
      ttl: extra.ttl ?? 60_000,
      action: {
        kind: "promise.create",
        head: { corrId: nextCorrId(), version: VERSION },
        data: {
          id,
          timeoutAt,
          tags: extra.tags ?? targeted(),
          ...(extra.param === undefined ? {} : { param: extra.param }),
        },
      },
    });
  }

  acquire(id: string, version: number, pid = "w1", ttl = 60_000): Promise<Reply> {
    return this.call("task.acquire", { id, version, pid, ttl });
  }

  fence(id: string, version: number, action: { kind: string; data: Json }): Promise<Reply> {
    return this.call("task.fence", {
      id,
      version,
      action: { kind: action.kind, head: { corrId: nextCorrId(), version: VERSION }, data: action.data },
    });
  }

  suspend(id: string, version: number, awaited: string[]): Promise<Reply> {
    return this.call("task.suspend", {
      id,
      version,
      actions: awaited.map((a) => ({
        kind: "promise.register_callback",
        head: { corrId: nextCorrId(), version: VERSION },
        data: { awaited: a, awaiter: id },
      })),
    });
  }

  fulfill(id: string, version: number, state = "resolved", value?: Json): Promise<Reply> {
    return this.call("task.fulfill", {
      id,
      version,
      action: {
        kind: "promise.settle",
        head: { corrId: nextCorrId(), version: VERSION },
        data: { id, state, ...(value === undefined ? {} : { value }) },
      },
    });
  }

  release(id: string, version: number): Promise<Reply> {
    return this.call("task.release", { id, version });
  }

  heartbeat(pid: string, tasks: { id: string; version: number }[]): Promise<Reply> {
    return this.call("task.heartbeat", { pid, tasks });
  }

  registerCallback(awaited: string, awaiter: string): Promise<Reply> {
    return this.call("promise.register_callback", { awaited, awaiter });
  }

  registerListener(awaited: string, address: string = LISTENER): Promise<Reply> {
    return this.call("promise.register_listener", { awaited, address });
  }

  // --- debug ---------------------------------------------------------------

  async snap(): Promise<Snapshot> {
    return this.ok("debug.snap", {});
  }

  /** `debug.tick` at `time` (also moving the clock there). */
  async tick(time: number): Promise<Reply> {
    this.at(time);
    const reply = await this.call("debug.tick", { time });
    expectOk(reply);
    return reply;
  }

  async reset(): Promise<void> {
    await this.ok("debug.reset", {});
    this.seenPromises.clear();
    this.seenTasks.clear();
  }

  /** Dumps `debug.snap` and asserts every snapshot property holds. */
  async check(): Promise<Snapshot> {
    const snap = await this.snap();
    expect(snapshotProblems(snap, this.now), `debug.snap at ${this.now}: ${JSON.stringify(snap)}`).toEqual(
      [],
    );
    return snap;
  }

  // --- response observer ---------------------------------------------------

  private observe(kind: string, reply: Reply): void {
    const where = `${kind} at ${this.now}`;
    if (reply.status !== undefined && reply.httpStatus !== reply.status) {
      this.violations.push(`${where}: HTTP ${reply.httpStatus} but head.status ${reply.status}`);
    }
    if (reply.status === undefined) return;
    if (reply.kind !== kind) this.violations.push(`${where}: reply kind ${reply.kind}`);
    if (reply.head?.version !== VERSION)
      this.violations.push(`${where}: reply version ${reply.head?.version}`);
    if (reply.status !== 200 && reply.status !== 300) {
      if (typeof reply.data !== "string") this.violations.push(`${where}: error data is not a string`);
      return;
    }
    if (kind.startsWith("debug.")) {
      if (kind === "debug.snap" && reply.data && Array.isArray(reply.data.messages)) {
        for (const m of reply.data.messages) {
          if (m?.message?.kind === "unblock")
            this.observePromise(m.message.data?.promise, `${where} unblock`);
        }
      }
      return;
    }
    const data = reply.data ?? {};
    if (data.promise) this.observePromise(data.promise, where);
    for (const p of Array.isArray(data.promises) ? data.promises : [])
      this.observePromise(p, `${where} promises`);
    for (const p of Array.isArray(data.preload) ? data.preload : [])
      this.observePromise(p, `${where} preload`);
    if (data.task) this.observeTask(data.task, where);
    for (const t of Array.isArray(data.tasks) ? data.tasks : []) this.observeTask(t, `${where} tasks`);
    const inner = data.action;
    if (kind === "task.fence" && inner?.head?.status === 200 && inner.data?.promise) {
      this.observePromise(inner.data.promise, `${where} inner`);
    }
  }

  private observePromise(record: PromiseRecord | undefined, where: string): void {
    if (record === undefined || record === null || typeof record !== "object") return;
    const now = this.now;
    if (record.state === "pending" && !(record.timeoutAt > now)) {
      this.violations.push(
        `${where}: ${record.id} reported pending with timeoutAt ${record.timeoutAt} ≤ now (C8)`,
      );
    }
    if (record.state === "pending" && record.settledAt !== undefined) {
      this.violations.push(`${where}: pending ${record.id} carries settledAt`);
    }
    if (record.state !== "pending" && record.settledAt === undefined) {
      this.violations.push(`${where}: settled ${record.id} lacks settledAt`);
    }
    if (record.state === "rejected_timedout" && record.settledAt !== record.timeoutAt) {
      this.violations.push(`${where}: ${record.id} rejected_timedout with settledAt ≠ timeoutAt`);
    }
    const previous = this.seenPromises.get(record.id);
    if (previous !== undefined && previous.state !== "pending" && !isDeepStrictEqual(previous, record)) {
      this.violations.push(
        `${where}: settled record of ${record.id} changed from ${JSON.stringify(previous)} to ${JSON.stringify(record)}`,
      );
      return;
    }
    this.seenPromises.set(record.id, record);
  }

  private observeTask(record: TaskRecord | undefined, where: string): void {
    if (record === undefined || record === null || typeof record !== "object") return;
    const acquired = record.state === "acquired";
    if (acquired !== (record.pid !== undefined) || acquired !== (record.ttl !== undefined)) {
      this.violations.push(
        `${where}: task ${record.id} ${record.state} with pid=${record.pid} ttl=${record.ttl}`,
      );
    }
    if (record.state === "fulfilled" && record.resumes !== 0) {
      this.violations.push(`${where}: fulfilled task ${record.id} has resumes ${record.resumes}`);
    }
    const previous = this.seenTasks.get(record.id);
    if (previous !== undefined) {
      if (record.version < previous.version) {
        this.violations.push(
          `${where}: task ${record.id} version went back ${previous.version} → ${record.version}`,
        );
      }
      if (
        previous.state === "fulfilled" &&
        (record.state !== "fulfilled" || record.version !== previous.version)
      ) {
        this.violations.push(`${where}: fulfilled task ${record.id} changed to ${JSON.stringify(record)}`);
      }
    }
    this.seenTasks.set(record.id, record);
  }
}
