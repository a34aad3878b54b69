/**
 * Review (regression): memory and SQLite agree on a search cursor holding a lone
 * surrogate (better-sqlite3 binds it as WTF-8 bytes, which still order after
 * U+E000 as UTF-16 does).
 */
import { describe, expect, it } from "vitest";
import { type CoreConfig, step } from "../../src/core/step.js";
import { parseRequest } from "../../src/protocol/parse.js";
import type { Request, Response } from "../../src/protocol/requests.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { Store } from "../../src/store/store.js";

const config: CoreConfig = { retryTimeoutMs: 5000 };
type CoreRequest = Exclude<Request, { kind: "debug.start" | "debug.stop" }>;

function parsed(kind: string, data: unknown): CoreRequest {
  const result = parseRequest({ kind, head: { corrId: "c", version: "2026-04-01" }, data }, { debug: true });
  if (!result.ok) throw new Error(`rejected: ${result.failure.message}`);
  return result.request as CoreRequest;
}

async function run(store: Store, requests: [string, unknown][]): Promise<Response[]> {
  const out: Response[] = [];
  for (const [kind, data] of requests) {
    out.push(
      await store.transaction((tx) => {
        const result = step(tx, parsed(kind, data), 10, config);
        tx.apply(result.changes);
        return result.response;
      }),
    );
  }
  return out;
}

async function both(requests: [string, unknown][]) {
  const memory = await run(new MemoryStore(), requests);
  const sqlite = await run(openSqliteStore({ path: ":memory:" }), requests);
  return { memory, sqlite };
}

describe("review: memory and SQLite answer identically", () => {
  it("a promise.search cursor with a lone surrogate", async () => {
    const { memory, sqlite } = await both([
      ["promise.create", { id: "a", timeoutAt: 1000 }],
      ["promise.create", { id: "\ue000", timeoutAt: 1000 }],
      ["promise.search", { cursor: "\ud800" }],
    ]);
    expect(sqlite[2]).toEqual(memory[2]);
  });
});
