/**
 * Review: a seeded random walk of valid requests through `step` / `sweep` on the
 * memory store and on SQLite (`:memory:`), checking after every request that
 *  - no always-on assertion trips (valid input must never crash the server),
 *  - both stores give the same response and the same `debug.snap`,
 *  - `debug.snap` satisfies the spec's snapshot properties (`snapshotProblems`),
 *  - settled records never change and task versions never go back in responses.
 */
import { isDeepStrictEqual } from "node:util";
import { describe, expect, it } from "vitest";
import { type CoreConfig, step, sweep } from "../../src/core/step.js";
import { parseRequest } from "../../src/protocol/parse.js";
import type { Request, Response } from "../../src/protocol/requests.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { type Snapshot, snapshotProblems } from "../support/client.js";

const config: CoreConfig = { retryTimeoutMs: 50 };
type CoreRequest = Exclude<Request, { kind: "debug.start" | "debug.stop" }>;

function prng(seed: number) {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

const IDS = ["a", "b", "c", "d", "e"];
const TAGSETS: Record<string, string>[] = [
  {},
  { "resonate:external": "true" },
  { "resonate:target": "poll://any@g" },
  { "resonate:timer": "true" },
  { "resonate:timer": "true", "resonate:target": "w" },
  { "resonate:target": "w", "resonate:delay": "150" },
  { "resonate:target": "w", "resonate:branch": "a" },
  { "resonate:external": "true", "resonate:branch": "a" },
];

function generator(rnd: () => number) {
  const pick = <T>(items: T[]): T => items[Math.floor(rnd() * items.length)] as T;
  const other = (id: string) => pick(IDS.filter((x) => x !== id));
  const act = (kind: string, data: unknown) => ({ kind, head: {}, data });
  const targeted = TAGSETS.filter((t) => "resonate:target" in t);
  return (now: number): [string, unknown] => {
    const id = pick(IDS);
    const version = Math.floor(rnd() * 4);
    const deadline = now + Math.floor(rnd() * 400);
    switch (Math.floor(rnd() * 16)) {
      case 0:
        return ["promise.create", { id, timeoutAt: deadline, tags: pick(TAGSETS) }];
      case 1:
        return ["promise.settle", { id, state: pick(["resolved", "rejected", "rejected_canceled"]) }];
      case 2:
        return ["promise.register_callback", { awaited: id, awaiter: other(id) }];
      case 3:
        return ["promise.register_listener", { awaited: id, address: "poll://uni@c/1" }];
      case 4:
        return [
          "task.create",
          {
            pid: "w",
            ttl: Math.floor(rnd() * 200),
            action: act("promise.create", { id, timeoutAt: deadline, tags: pick(targeted) }),
          },
        ];
      case 5:
        return ["task.acquire", { id, version, pid: "w", ttl: Math.floor(rnd() * 200) }];
      case 6:
        return [
          "task.fence",
          {
            id,
            version,
            action:
              rnd() < 0.5
                ? act("promise.create", { id: other(id), timeoutAt: deadline, tags: pick(TAGSETS) })
                : act("promise.settle", { id: other(id), state: "resolved" }),
          },
        ];
      case 7:
        return ["task.heartbeat", { pid: "w", tasks: [{ id, version }] }];
      case 8: {
        const awaited = IDS.filter((x) => x !== id && rnd() < 0.4);
        if (awaited.length === 0) awaited.push(other(id));
        return [
          "task.suspend",
          {
            id,
            version,
            actions: awaited.map((a) => act("promise.register_callback", { awaited: a, awaiter: id })),
          },
        ];
      }
      case 9:
        return ["task.fulfill", { id, version, action: act("promise.settle", { id, state: "resolved" }) }];
      case 10:
        return ["task.release", { id, version }];
      case 11:
        return ["task.halt", { id }];
      case 12:
        return ["task.continue", { id }];
      case 13:
        return ["debug.tick", { time: now }];
      case 14:
        return [
          "schedule.create",
          {
            id: `s${id}`,
            cron: "* * * * * *",
            promiseId: `${pick(IDS)}{{.timestamp}}`,
            promiseTimeout: Math.floor(rnd() * 3000),
            promiseTags: pick(TAGSETS),
          },
        ];
      default:
        return ["promise.search", { state: pick(["pending", "resolved", "rejected_timedout"]), limit: 2 }];
    }
  };
}

function parsed(kind: string, data: unknown): CoreRequest | undefined {
  const result = parseRequest({ kind, head: { corrId: "c", version: "2026-04-01" }, data }, { debug: true });
  return result.ok ? (result.request as CoreRequest) : undefined;
}

const SNAP = { kind: "debug.snap", corrId: "c", data: {} } as CoreRequest;

describe("review: random walk of valid requests", () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`seed ${seed}: no crash, stores agree, snapshot properties hold`, async () => {
      const rnd = prng(seed);
      const next = generator(rnd);
      for (let run = 0; run < 15; run += 1) {
        const memory = new MemoryStore();
        const sqlite = openSqliteStore({ path: ":memory:" });
        let now = 0;
        const log: string[] = [];
        const seenSettled = new Map<string, unknown>();
        for (let i = 0; i < 150; i += 1) {
          now += Math.floor(rnd() * 60);
          const [kind, data] = next(now);
          const request = parsed(kind, data);
          if (request === undefined) continue;
          log.push(`${now} ${kind} ${JSON.stringify(data)}`);
          const withSweep = rnd() < 0.2;
          const viaMemory = (): Response => {
            const result = step(memory, request, now, config);
            memory.apply(result.changes);
            if (withSweep) memory.apply(sweep(memory, now, config).changes);
            return result.response;
          };
          let fromMemory: Response;
          try {
            fromMemory = viaMemory();
          } catch (error) {
            throw new Error(`${String(error)}\n${log.slice(-12).join("\n")}`);
          }
          const fromSqlite = await sqlite.transaction((tx) => {
            const result = step(tx, request, now, config);
            tx.apply(result.changes);
            if (withSweep) tx.apply(sweep(tx, now, config).changes);
            return result.response;
          });
          expect(fromSqlite, log.slice(-12).join("\n")).toEqual(fromMemory);
          const snapMemory = step(memory, SNAP, now, config).response.data as Snapshot;
          const snapSqlite = await sqlite.transaction((tx) => step(tx, SNAP, now, config).response.data);
          expect(snapSqlite).toEqual(snapMemory);
          expect(snapshotProblems(snapMemory, now), log.slice(-12).join("\n")).toEqual([]);
          const answer = fromMemory.data as { promise?: { id: string; state: string } } | undefined;
          const promise = typeof answer === "object" && answer !== null ? answer.promise : undefined;
          if (promise !== undefined) {
            const before = seenSettled.get(promise.id);
            if (before !== undefined && !isDeepStrictEqual(before, promise))
              throw new Error(`settled ${promise.id} changed\n${log.slice(-12).join("\n")}`);
            if (promise.state !== "pending") seenSettled.set(promise.id, promise);
          }
        }
        await sqlite.close();
      }
    }, 60_000);
  }
});
