/**
 * Review: schedule firing (R7, §3.9).
 *  - `{{.id}}` → schedule id and `{{.timestamp}}` → occurrence are substituted in
 *    the template once; text that comes from the schedule id is not a template.
 *  - A promise created by catch-up that is already past its deadline at the
 *    firing instant must not leave an `execute` for its (fulfilled) task
 *    (§3.6 "Dispatch never happens for a logically dead task").
 */
import { describe, expect, it } from "vitest";
import { type CoreConfig, snapshot, step } from "../../src/core/step.js";
import type { Request } from "../../src/protocol/requests.js";
import { MemoryStore } from "../../src/store/memory-store.js";

const config: CoreConfig = { retryTimeoutMs: 5000 };
type CoreRequest = Exclude<Request, { kind: "debug.start" | "debug.stop" }>;

function harness() {
  const store = new MemoryStore();
  const run = (request: Omit<CoreRequest, "corrId">, now: number) => {
    const result = step(store, { corrId: "c", ...request } as CoreRequest, now, config);
    store.apply(result.changes);
    return result;
  };
  return { store, run };
}

describe("review: schedule firing", () => {
  it("does not expand a template found inside the schedule id", () => {
    const { store, run } = harness();
    run(
      {
        kind: "schedule.create",
        data: { id: "s{{.timestamp}}", cron: "* * * * *", promiseId: "{{.id}}", promiseTimeout: 1000 },
      },
      0,
    );
    run({ kind: "debug.tick", data: { time: 60_000 } }, 60_000);
    expect(snapshot(store).promises.map((p) => p.id)).toEqual(["s{{.timestamp}}"]);
  });

  it("a caught-up promise already dead at the firing instant gets no execute", () => {
    const { store, run } = harness();
    run(
      {
        kind: "schedule.create",
        data: {
          id: "s",
          cron: "* * * * *",
          promiseId: "s.{{.timestamp}}",
          promiseTimeout: 1000,
          promiseTags: { "resonate:target": "poll://any@w" },
        },
      },
      0,
    );
    run({ kind: "debug.tick", data: { time: 60_000 + 5000 } }, 65_000);
    const snap = snapshot(store);
    expect(snap.tasks).toEqual([{ id: "s.60000", state: "fulfilled", version: 0, resumes: 0 }]);
    expect(snap.messages).toEqual([]);
  });
});
