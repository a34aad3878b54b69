/**
 * Review: valid input must never trip an always-on assertion (a tripped assertion
 * stops the server). `schedule.create` accepts any safe non-negative integer as
 * `promiseTimeout` (§6.2), but R7 computes `timeoutAt = occurrence + promiseTimeout`,
 * which can exceed Number.MAX_SAFE_INTEGER and trips "integer instants" in
 * `checkPromise` from inside the sweep / `debug.tick`.
 */
import { describe, expect, it } from "vitest";
import { type CoreConfig, step, sweep } from "../../src/core/step.js";
import { parseRequest } from "../../src/protocol/parse.js";
import type { Request } from "../../src/protocol/requests.js";
import { MemoryStore } from "../../src/store/memory-store.js";

const config: CoreConfig = { retryTimeoutMs: 5000 };
type CoreRequest = Exclude<Request, { kind: "debug.start" | "debug.stop" }>;

function parsed(kind: string, data: unknown): CoreRequest {
  const result = parseRequest({ kind, head: { corrId: "c", version: "2026-04-01" }, data }, { debug: true });
  if (!result.ok) throw new Error(`rejected: ${result.failure.message}`);
  return result.request as CoreRequest;
}

describe("review: schedule with a huge promiseTimeout", () => {
  const create = () =>
    parsed("schedule.create", {
      id: "s",
      cron: "* * * * *",
      promiseId: "s.{{.timestamp}}",
      promiseTimeout: Number.MAX_SAFE_INTEGER,
    });

  it("is accepted by validation", () => {
    const store = new MemoryStore();
    const result = step(store, create(), 0, config);
    expect(result.response.status).toBe(200);
  });

  it("firing it does not crash the sweep", () => {
    const store = new MemoryStore();
    store.apply(step(store, create(), 0, config).changes);
    expect(() => store.apply(sweep(store, 60_000, config).changes)).not.toThrow();
  });

  it("firing it does not crash debug.tick", () => {
    const store = new MemoryStore();
    store.apply(step(store, create(), 0, config).changes);
    expect(() => step(store, parsed("debug.tick", { time: 60_000 }), 60_000, config)).not.toThrow();
  });

  it("a task.create with a huge ttl keeps every stored instant a safe integer", () => {
    const store = new MemoryStore();
    const request = parsed("task.create", {
      pid: "w",
      ttl: Number.MAX_SAFE_INTEGER,
      action: { kind: "promise.create", data: { id: "x", timeoutAt: 100, tags: { "resonate:target": "w" } } },
    });
    const result = step(store, request, 10, config);
    expect(result.response.status).toBe(200);
    const task = result.changes.tasks[0];
    expect(Number.isSafeInteger(task?.expiresAt)).toBe(true);
  });
});
