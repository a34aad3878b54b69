/**
 * The request and response unions the core consumes and produces (PROTOCOL.md
 * §4–§7). The edge (`protocol/parse.ts`) turns a wire envelope into one of these
 * or a validation error, once; the core then trusts the shapes and asserts.
 */
import type {
  PromiseRecord,
  PromiseState,
  ScheduleRecord,
  SettlableState,
  Tags,
  TaskRecord,
  TaskState,
  Value,
} from "./records.js";

export interface PromiseCreateData {
  id: string;
  timeoutAt: number;
  param?: Value;
  tags?: Tags;
  /** `SETTLE_ON_CREATE` (records.ts): created already settled. Not in `task.create`. */
  "pledge:settle"?: { state: SettlableState; value?: Value };
}

export interface PromiseSettleData {
  id: string;
  state: SettlableState;
  value?: Value;
}

export interface RegisterCallbackData {
  awaited: string;
  awaiter: string;
}

/**
 * An inner action of `task.fence` whose `data` failed validation. Per PROTOCOL.md
 * (Pledge's decisions) that fault is the inner handler's `400` inside an outer
 * `200`, after the outer guards, so the core has to see it.
 */
export interface InvalidFenceAction {
  kind: "invalid";
  innerKind: "promise.create" | "promise.settle";
  message: string;
}

export type FenceAction =
  | { kind: "promise.create"; data: PromiseCreateData }
  | { kind: "promise.settle"; data: PromiseSettleData }
  | InvalidFenceAction;

interface RequestOf<K extends string, D> {
  kind: K;
  corrId: string;
  data: D;
}

export type PromiseGetRequest = RequestOf<"promise.get", { id: string }>;
export type PromiseCreateRequest = RequestOf<"promise.create", PromiseCreateData>;
export type PromiseSettleRequest = RequestOf<"promise.settle", PromiseSettleData>;
export type PromiseRegisterCallbackRequest = RequestOf<"promise.register_callback", RegisterCallbackData>;
export type PromiseRegisterListenerRequest = RequestOf<
  "promise.register_listener",
  { awaited: string; address: string }
>;
export type PromiseSearchRequest = RequestOf<
  "promise.search",
  { id?: string; state?: PromiseState; tags?: Tags; limit?: number; cursor?: string }
>;
export type TaskGetRequest = RequestOf<"task.get", { id: string }>;
export type TaskCreateRequest = RequestOf<
  "task.create",
  { pid: string; ttl: number; action: { kind: "promise.create"; data: PromiseCreateData } }
>;
export type TaskAcquireRequest = RequestOf<
  "task.acquire",
  { id: string; version: number; pid: string; ttl: number }
>;
export type TaskFenceRequest = RequestOf<
  "task.fence",
  {
    id: string;
    version: number;
    action: FenceAction;
    /** `PRELOAD_FIELD` (records.ts): `false` answers `preload: []`. */
    "pledge:preload"?: false;
  }
>;
export type TaskHeartbeatRequest = RequestOf<
  "task.heartbeat",
  { pid: string; tasks: { id: string; version: number }[] }
>;
export type TaskSuspendRequest = RequestOf<
  "task.suspend",
  {
    id: string;
    version: number;
    actions: { kind: "promise.register_callback"; data: RegisterCallbackData }[];
  }
>;
export type TaskFulfillRequest = RequestOf<
  "task.fulfill",
  { id: string; version: number; action: { kind: "promise.settle"; data: PromiseSettleData } }
>;
export type TaskReleaseRequest = RequestOf<"task.release", { id: string; version: number }>;
export type TaskHaltRequest = RequestOf<"task.halt", { id: string }>;
export type TaskContinueRequest = RequestOf<"task.continue", { id: string }>;
export type TaskSearchRequest = RequestOf<
  "task.search",
  { state?: TaskState; limit?: number; cursor?: string }
>;
export type ScheduleGetRequest = RequestOf<"schedule.get", { id: string }>;
export type ScheduleCreateRequest = RequestOf<
  "schedule.create",
  {
    id: string;
    cron: string;
    promiseId: string;
    promiseTimeout: number;
    promiseParam?: Value;
    promiseTags?: Tags;
  }
>;
export type ScheduleDeleteRequest = RequestOf<"schedule.delete", { id: string }>;
export type ScheduleSearchRequest = RequestOf<
  "schedule.search",
  { tags?: Tags; limit?: number; cursor?: string }
>;
export type DebugStartRequest = RequestOf<"debug.start", Record<string, never>>;
export type DebugStopRequest = RequestOf<"debug.stop", Record<string, never>>;
export type DebugResetRequest = RequestOf<"debug.reset", Record<string, never>>;
export type DebugTickRequest = RequestOf<"debug.tick", { time: number }>;
export type DebugSnapRequest = RequestOf<"debug.snap", Record<string, never>>;

export type Request =
  | PromiseGetRequest
  | PromiseCreateRequest
  | PromiseSettleRequest
  | PromiseRegisterCallbackRequest
  | PromiseRegisterListenerRequest
  | PromiseSearchRequest
  | TaskGetRequest
  | TaskCreateRequest
  | TaskAcquireRequest
  | TaskFenceRequest
  | TaskHeartbeatRequest
  | TaskSuspendRequest
  | TaskFulfillRequest
  | TaskReleaseRequest
  | TaskHaltRequest
  | TaskContinueRequest
  | TaskSearchRequest
  | ScheduleGetRequest
  | ScheduleCreateRequest
  | ScheduleDeleteRequest
  | ScheduleSearchRequest
  | DebugStartRequest
  | DebugStopRequest
  | DebugResetRequest
  | DebugTickRequest
  | DebugSnapRequest;

export type RequestKind = Request["kind"];

export const REQUEST_KINDS = [
  "promise.get",
  "promise.create",
  "promise.settle",
  "promise.register_callback",
  "promise.register_listener",
  "promise.search",
  "task.get",
  "task.create",
  "task.acquire",
  "task.fence",
  "task.heartbeat",
  "task.suspend",
  "task.fulfill",
  "task.release",
  "task.halt",
  "task.continue",
  "task.search",
  "schedule.get",
  "schedule.create",
  "schedule.delete",
  "schedule.search",
  "debug.start",
  "debug.stop",
  "debug.reset",
  "debug.tick",
  "debug.snap",
] as const satisfies readonly RequestKind[];

/** §1.3. `300` is `task.suspend`'s "keep going". */
export type Status = 200 | 300 | 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503;

/** Machine-readable error detail carried in `head.error` (Pledge's decisions). */
export interface ErrorDetail {
  code: string;
  retryable: boolean;
}

export type Response =
  | { status: 200 | 300; data: unknown }
  | { status: Exclude<Status, 200 | 300>; data: string; error: ErrorDetail };

export interface FenceResponseData {
  action: {
    kind: "promise.create" | "promise.settle";
    head: { corrId: string; status: Status; version: string; error?: ErrorDetail };
    data: unknown;
  };
  preload: PromiseRecord[];
}

export interface Snapshot {
  promises: PromiseRecord[];
  promiseTimeouts: { id: string; timeout: number }[];
  callbacks: { awaiter: string; awaited: string }[];
  listeners: { id: string; address: string }[];
  tasks: TaskRecord[];
  taskTimeouts: { id: string; type: 0 | 1; timeout: number }[];
  messages: { address: string; message: unknown }[];
}

export type { ScheduleRecord };
