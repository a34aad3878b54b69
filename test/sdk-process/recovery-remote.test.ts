/**
 * Recovery, remote (issue 3 item 6): `pledge serve` on SQLite, a worker process
 * `new Pledge({ url, group: "w", ttl: 2000 })` serving a six-step workflow, and
 * a caller process `new Pledge({ url, group: "caller" })` that `rpc`s it with
 * `options({ target: "w" })`. The worker is SIGKILLed while a step is in flight;
 * a new worker process (another pid) takes the task over when the lease
 * expires (~2 s), skips the settled steps and finishes with the result of a run
 * that never crashed. Both engines.
 *
 * Scripts: workers/worker.mjs (worker), workers/caller.mjs (caller).
 */
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  decodeData,
  getPromise,
  killAll,
  type Proc,
  readJournal,
  type Server,
  spawnNode,
  startServer,
  startsPerStep,
  stopServer,
  uid,
  watchJournal,
  withDiagnostics,
} from "./harness.js";

const STEPS = 6;
const KILL_AT = 3;
const LEASE_MS = 2000;
const GROUP = "w";

let server: Server | undefined;

beforeAll(async () => {
  server = await startServer();
}, 20_000);

afterEach(async () => {
  await killAll(new Set(server ? [server.proc] : []));
});

afterAll(async () => {
  await killAll(new Set(server ? [server.proc] : []));
  await stopServer(server);
  await killAll();
});

function worker(name: string, pid: string): Proc {
  const s = server as Server;
  return spawnNode(name, "worker.mjs", [], {
    PLEDGE_URL: s.url,
    GROUP,
    PID: pid,
    TTL_MS: String(LEASE_MS),
    JOURNAL_DIR: s.dir,
  });
}

function caller(id: string, func: string): Proc {
  const s = server as Server;
  return spawnNode(`caller ${id}`, "caller.mjs", [id, GROUP, func, JSON.stringify([STEPS])], {
    PLEDGE_URL: s.url,
    GROUP: "caller",
  });
}

function expectServerAlive(): void {
  expect(server?.proc.exitInfo, "pledge serve exited during the test").toBeUndefined();
}

describe.each([
  { engine: "async", func: "wfAsync" },
  { engine: "generator", func: "wfGen" },
])("remote recovery, $engine engine", ({ engine, func }) => {
  it("a worker SIGKILLed mid-step is replaced by another process when its lease expires; each step runs once (the one in flight at most twice) and the result equals an uncrashed run", async () => {
    const s = server as Server;
    const w1 = worker("worker 1", uid("w1"));
    await withDiagnostics(w1.waitFor("worker 1 ready", (e) => e.event === "ready", 10_000));

    // A run without a crash, on the same worker, for the expected result.
    const cleanId = uid(`clean-${engine}`);
    const clean = caller(cleanId, func);
    const expected = await withDiagnostics(
      clean.waitFor("the clean result", (e) => e.event === "result", 15_000),
    );
    expect(startsPerStep(readJournal(join(s.dir, `${cleanId}.journal`)), STEPS)).toEqual(
      Array(STEPS).fill(1),
    );

    // The crash run: kill worker 1 while step KILL_AT is in flight.
    const id = uid(`crash-${engine}`);
    const journal = join(s.dir, `${id}.journal`);
    const c = caller(id, func);
    await withDiagnostics(
      watchJournal(journal, (lines) => lines.some((l) => l.step === KILL_AT), w1, 15_000),
    );
    await w1.kill("SIGKILL");
    const killedAt = Date.now();
    expect(w1.exitInfo?.signal).toBe("SIGKILL");
    const beforeKill = readJournal(journal);
    const inFlight = beforeKill[beforeKill.length - 1]?.step as number;
    expect(inFlight).toBe(KILL_AT);

    // A new worker process in the same group.
    const w2 = worker("worker 2", uid("w2"));
    const result = await withDiagnostics(
      c.waitFor("the result after the kill", (e) => e.event === "result", 20_000),
    );
    const finishedInMs = Date.now() - killedAt;

    expect(result.result).toEqual(expected.result);
    expect(result.result).toMatchObject({ engine });
    // The root promise holds the same value, as base64 JSON.
    const root = await getPromise(s.url, id);
    expect(root.state).toBe("resolved");
    expect(decodeData(root.value.data)).toEqual(expected.result);

    const lines = readJournal(journal);
    const counts = startsPerStep(lines, STEPS);
    for (let step = 1; step <= STEPS; step++) {
      const starts = counts[step - 1];
      if (step === inFlight) expect(starts, `step ${step} (in flight at the kill)`).toBeLessThanOrEqual(2);
      else expect(starts, `step ${step} starts (journal ${JSON.stringify(lines)})`).toBe(1);
    }
    // Worker 1 did the steps up to the kill, worker 2 everything from the step in flight on.
    expect(lines.filter((l) => l.pid === w1.pid).map((l) => l.step)).toEqual(
      Array.from({ length: inFlight }, (_, i) => i + 1),
    );
    expect(lines.filter((l) => l.pid === w2.pid).map((l) => l.step)).toEqual(
      Array.from({ length: STEPS - inFlight + 1 }, (_, i) => inFlight + i),
    );
    // The new worker took over only once the dead one's lease had lapsed (heartbeats every ttl/2, so at
    // least ~ttl/2 after the kill), and not much later than lease + one redispatch (retry 1 s).
    const resumedAfterMs = (lines.find((l) => l.pid === w2.pid)?.at ?? 0) - killedAt;
    expect(resumedAfterMs).toBeGreaterThanOrEqual(LEASE_MS / 2 - 200);
    expect(resumedAfterMs).toBeLessThan(LEASE_MS + 1000 + 3000);
    expect(finishedInMs).toBeLessThan(LEASE_MS + 1000 + STEPS * 150 + 4000);
    expectServerAlive();
  }, 45_000);
});
