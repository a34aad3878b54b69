/**
 * Recovery, embedded (issue 3 item 6): a program running `new Pledge({ store:
 * "sqlite:<tmp>/p.db" })` is SIGKILLed while a step of a six-step workflow is in
 * flight, then started again on the same file. The restarted process resumes
 * at once (opening the file ends the dead owner's leases; INTERFACES.md
 * "Stores"), skips the settled steps and finishes with the result of a run that
 * never crashed. Both engines (async function, generator function).
 *
 * The workflow and its journal are in workers/common.mjs; the program is
 * workers/embedded.mjs.
 */
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  killAll,
  type Proc,
  readJournal,
  removeDir,
  requireBuild,
  spawnNode,
  startsPerStep,
  tempDir,
  uid,
  watchJournal,
  withDiagnostics,
} from "./harness.js";

const STEPS = 6;
/** The step whose start triggers the kill (it works ~150 ms, so it is in flight). */
const KILL_AT = 3;
/** The default lease is 30 s: finishing well within it shows the restart did not wait for the lease. */
const AT_ONCE_MS = 8_000;

const dirs: string[] = [];

afterEach(async () => {
  await killAll();
});

afterAll(async () => {
  await killAll();
  for (const d of dirs) removeDir(d);
});

function program(name: string, dir: string, func: string, id: string): Proc {
  return spawnNode(name, "embedded.mjs", [`sqlite:${join(dir, "p.db")}`, dir, func, id, String(STEPS)]);
}

describe.each([
  { engine: "async", func: "wfAsync" },
  { engine: "generator", func: "wfGen" },
])("embedded recovery, $engine engine", ({ engine, func }) => {
  it("a program SIGKILLed mid-step resumes at once on restart, runs each step once (the one in flight at most twice) and returns the uncrashed result", async () => {
    requireBuild();

    // A run without a crash, for the expected result.
    const cleanDir = tempDir("pledge-embedded-clean-");
    dirs.push(cleanDir);
    const cleanId = uid(`clean-${engine}`);
    const clean = program("clean run", cleanDir, func, cleanId);
    const expected = await withDiagnostics(
      clean.waitFor("the clean result", (e) => e.event === "result", 15_000),
    );
    expect(startsPerStep(readJournal(join(cleanDir, `${cleanId}.journal`)), STEPS)).toEqual(
      Array(STEPS).fill(1),
    );

    // The same workflow on another file, killed while step KILL_AT is in flight.
    const dir = tempDir("pledge-embedded-crash-");
    dirs.push(dir);
    const id = uid(`crash-${engine}`);
    const journal = join(dir, `${id}.journal`);
    const first = program("first run", dir, func, id);
    await withDiagnostics(
      watchJournal(journal, (lines) => lines.some((l) => l.step === KILL_AT), first, 15_000),
    );
    await first.kill("SIGKILL");
    expect(first.exitInfo?.signal).toBe("SIGKILL");
    expect(first.events.some((e) => e.event === "result")).toBe(false);
    const beforeKill = readJournal(journal);
    const inFlight = beforeKill[beforeKill.length - 1]?.step as number;
    expect(inFlight).toBe(KILL_AT);
    expect(beforeKill.every((l) => l.pid === first.pid)).toBe(true);

    // The same program on the same file: it joins the execution by id and resumes it.
    const restartedAt = Date.now();
    const second = program("restarted run", dir, func, id);
    const result = await withDiagnostics(
      second.waitFor(
        `the result after the restart, within ${AT_ONCE_MS} ms (the default lease is 30 s: a restart must not wait for it)`,
        (e) => e.event === "result",
        AT_ONCE_MS,
      ),
    );
    const resumedInMs = Date.now() - restartedAt;

    expect(result.result).toEqual(expected.result);
    expect(result.result).toMatchObject({ engine, trail: expect.any(Array) });

    const lines = readJournal(journal);
    const counts = startsPerStep(lines, STEPS);
    for (let step = 1; step <= STEPS; step++) {
      const starts = counts[step - 1];
      if (step === inFlight) expect(starts, `step ${step} (in flight at the kill)`).toBeLessThanOrEqual(2);
      else expect(starts, `step ${step} starts (journal ${JSON.stringify(lines)})`).toBe(1);
    }
    // Settled steps were skipped: the restarted process started nothing before the step in flight.
    const restartedSteps = lines.filter((l) => l.pid === second.pid).map((l) => l.step);
    expect(restartedSteps[0]).toBe(inFlight);
    expect(restartedSteps).toEqual(Array.from({ length: STEPS - inFlight + 1 }, (_, i) => inFlight + i));
    expect(resumedInMs).toBeLessThan(AT_ONCE_MS);
  }, 40_000);
});
