/**
 * Review: one schedule accepted by validation (promiseTimeout near MAX_SAFE_INTEGER)
 * makes every background sweep throw an AssertionError. `ServerShell.sweepNow`
 * catches it as "sweep failed; will retry" (it is not reported to onFatal), so the
 * server keeps running with every timer dead: durable timeouts, retries and lease
 * expiries never fire again (P5, C1). An invariant violation must either not be
 * reachable from valid input or stop the process (STYLE 5, lib/assert.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_SERVE_OPTIONS } from "../../src/node/options.js";
import { startServer } from "../../src/node/serve.js";
import { call } from "../support/client.js";

describe("review: a poisoned schedule and the background sweep", () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  it("an external promise's durable timeout still fires in the background", async () => {
    const fatal: Error[] = [];
    const server = await startServer(
      { ...DEFAULT_SERVE_OPTIONS, store: "memory", port: 0, debug: true, logLevel: "silent" },
      { onFatal: (error) => fatal.push(error) },
    );
    close = () => server.close();
    const now = Date.now();
    const schedule = await call(server.url, "schedule.create", {
      id: "s",
      cron: "* * * * * *", // every second
      promiseId: "s.{{.timestamp}}",
      promiseTimeout: Number.MAX_SAFE_INTEGER,
    });
    expect(schedule.status).toBe(200);
    const created = await call(server.url, "promise.create", {
      id: "ext",
      timeoutAt: now + 1500,
      tags: { "resonate:external": "true" },
    });
    expect(created.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 3500));
    const snap = await call(server.url, "debug.snap", {});
    const stored = snap.data.promises.find((p: { id: string }) => p.id === "ext");
    // Either the timeout fired (R1 by the sweeper, C1) or the invariant stopped the server.
    expect(stored.state === "rejected_timedout" || fatal.length > 0, JSON.stringify(stored)).toBe(true);
  }, 10_000);
});
