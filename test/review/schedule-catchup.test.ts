/**
 * Review: R7 (§3.9) fires **every** occurrence with nextRunAt <= t <= now, and
 * `debug.tick(time)` "fires every internal transition due at instant time" (§1.7).
 * `fireSchedule` stops after MAX_OCCURRENCES_PER_STEP (1000) occurrences and
 * `runDue` does not loop, so one debug.tick leaves occurrences unfired (and the
 * schedule's nextRunAt in the past) while the background loops are paused.
 */
import { describe, expect, it } from "vitest";
import { useServer } from "../support/server.js";

describe("review: schedule catch-up in one debug.tick", () => {
  const h = useServer();

  it("fires all 1500 missed occurrences of a per-second schedule", async () => {
    await h.c.at(0).ok("schedule.create", {
      id: "s",
      cron: "* * * * * *",
      promiseId: "s.{{.timestamp}}",
      promiseTimeout: 10_000_000,
    });
    await h.c.tick(1_500_000);
    const schedule = (await h.c.ok("schedule.get", { id: "s" })).schedule;
    expect(schedule.lastRunAt).toBe(1_500_000);
    expect(schedule.nextRunAt).toBe(1_501_000);
    const found = await h.c.ok("promise.search", { id: "s.*", limit: 1000 });
    expect(found.cursor).toBeDefined();
  });
});
