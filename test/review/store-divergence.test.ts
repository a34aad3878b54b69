/**
 * Review: the SQLite store must answer exactly as the memory store (STYLE 2).
 * Ids are refused when they hold a lone surrogate ("so every store keeps them
 * exactly", parse.ts), but addresses are not: a listener address and a
 * `resonate:target` (the execute's outbox address) are stored as raw TEXT, and
 * better-sqlite3 hands a lone surrogate back as U+FFFD, so the stores differ.
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
  it("the edge refuses a lone surrogate anywhere in a request's data, naming where, so no store sees one", () => {
    const requests: [string, unknown, string][] = [
      ["promise.register_listener", { awaited: "p", address: "poll://uni@g/\ud800" }, "data.address"],
      [
        "promise.create",
        { id: "p", timeoutAt: 1000, tags: { "resonate:target": "poll://any@g/\udc00" } },
        'data.tags["resonate:target"]',
      ],
      ["promise.search", { cursor: "\ud800" }, "data.cursor"],
    ];
    for (const [kind, data, field] of requests) {
      const result = parseRequest(
        { kind, head: { corrId: "c", version: "2026-04-01" }, data },
        { debug: true },
      );
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.failure.field).toBe(field);
        expect(result.failure.message).toBe(`${field}: must be well-formed Unicode (a lone surrogate)`);
      }
    }
  });

  it("well-formed text outside the Basic Multilingual Plane is kept identically by both stores", async () => {
    const { memory, sqlite } = await both([
      [
        "promise.create",
        { id: "p", timeoutAt: 1000, tags: { "resonate:external": "true", note: "\u{1F600}" } },
      ],
      ["promise.register_listener", { awaited: "p", address: "poll://uni@g/\u{1F600}" }],
      ["debug.snap", {}],
    ]);
    expect(sqlite).toEqual(memory);
  });
});
