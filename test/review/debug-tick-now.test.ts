/**
 * Review: `debug.tick(time)` is one request with `now = time` (Pledge's decisions),
 * whether or not `head["resonate:debug_time"]` is also present (§1.7 only requires
 * the two to agree when both are given).
 */
import { describe, expect, it } from "vitest";
import { call } from "../support/client.js";
import { useServer } from "../support/server.js";

const TARGET = "poll://any@workers";

describe("review: debug.tick without resonate:debug_time", () => {
  const h = useServer({ skipSnapshotCheck: true });

  it("fires only what is due at data.time, not at the wall clock", async () => {
    // A targeted promise created at 0: execute v0 queued, retry armed at 5000.
    await h.c.at(0).ok("promise.create", {
      id: "p",
      timeoutAt: 1_000_000,
      tags: { "resonate:target": TARGET },
    });
    // Tick at 1000 with no debug_time header: nothing is due at 1000.
    const reply = await call(h.url, "debug.tick", { time: 1000 });
    expect(reply.status).toBe(200);
    const snap = await h.c.at(1000).snap();
    // The retry timer must still be at 5000 and the promise still pending (deadline 1e6).
    expect(snap.taskTimeouts).toEqual([{ id: "p", type: 0, timeout: 5000 }]);
    expect(snap.promises[0]?.state).toBe("pending");
  });
});
