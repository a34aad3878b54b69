/**
 * The promise ids a request names, for stores that fetch before they run a step
 * (the PostgreSQL store runs steps by replay, and every read it did not fetch
 * ahead costs a round trip and another pass; ADR 0001, addendum).
 *
 * A hint, never a contract: a step reads what it reads whatever this says, so a
 * missing id costs time and an extra id costs a little bandwidth, nothing else.
 * Tasks share their promise's id, so the same ids name the tasks too.
 */
import type { Request } from "../protocol/requests.js";

export function namedIds(request: Request): string[] {
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
