/**
 * What a request will read, for stores that fetch before they run a step (the
 * PostgreSQL store runs steps by replay, and every read it did not fetch ahead
 * costs a round trip and another pass; ADR 0001, addendum): the promise ids it
 * names, and the branches it preloads.
 *
 * A hint, never a contract: a step reads what it reads whatever this says, so a
 * missing id costs time and an extra id costs a little bandwidth, nothing else.
 * Tasks share their promise's id, so the same ids name the tasks too.
 */
import { PRELOAD_FIELD } from "../protocol/records.js";
import type { Request } from "../protocol/requests.js";

/**
 * What a request will probably read: the promises (and tasks) it names, and of
 * those, the ones whose branch it lists (a preload, core/task-handlers.ts).
 */
export interface RequestReads {
  ids: string[];
  branchesOf: string[];
}

export function requestReads(request: Request): RequestReads {
  return { ids: namedIds(request), branchesOf: preloaded(request) };
}

/** The id whose branch the answer preloads; a new root's branch is named by its id. */
function preloaded(request: Request): string[] {
  switch (request.kind) {
    case "task.create":
      return [request.data.action.data.id];
    case "task.acquire":
    case "task.suspend":
      return [request.data.id];
    case "task.fence":
      return request.data[PRELOAD_FIELD] === false ? [] : [request.data.id];
    default:
      return [];
  }
}

function namedIds(request: Request): string[] {
  switch (request.kind) {
    case "promise.get":
    case "promise.create":
    case "promise.settle":
    case "task.get":
    case "task.acquire":
    case "task.release":
    case "task.halt":
    case "task.continue":
      return [request.data.id];
    case "promise.register_callback":
      return [request.data.awaited, request.data.awaiter];
    case "promise.register_listener":
      return [request.data.awaited];
    case "task.create":
      return [request.data.action.data.id];
    case "task.fence":
      return request.data.action.kind === "invalid"
        ? [request.data.id]
        : [request.data.id, request.data.action.data.id];
    case "task.fulfill":
      return [request.data.id];
    case "task.suspend":
      return [request.data.id, ...request.data.actions.map((action) => action.data.awaited)];
    case "task.heartbeat":
      return request.data.tasks.map((task) => task.id);
    case "schedule.create":
    case "schedule.get":
    case "schedule.delete":
    case "promise.search":
    case "task.search":
    case "schedule.search":
    case "debug.start":
    case "debug.stop":
    case "debug.reset":
    case "debug.tick":
    case "debug.snap":
      return [];
  }
}
