// Shared plumbing for the process-level SDK test scripts. Lines meant for the
// test are written to stdout as `@@{json}`; everything else (logs) is only shown
// when a test fails.
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/**
 * The `Pledge` class of the build under test: `dist/index.js` of this checkout,
 * or the file named by PLEDGE_SDK_ENTRY (to try a patched build).
 */
export async function loadPledge() {
  const entry = process.env.PLEDGE_SDK_ENTRY
    ? pathToFileURL(process.env.PLEDGE_SDK_ENTRY).href
    : new URL("../../../dist/index.js", import.meta.url).href;
  return (await import(entry)).Pledge;
}

export function emit(event, fields = {}) {
  process.stdout.write(`@@${JSON.stringify({ event, pid: process.pid, ...fields })}\n`);
}

export function fail(err) {
  const message = err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : JSON.stringify(err);
  emit("error", { message });
  process.exit(1);
}

process.on("unhandledRejection", (err) => {
  process.stderr.write(`unhandledRejection: ${err instanceof Error ? err.stack : String(err)}\n`);
});

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The recovery workload: `steps` sequential local steps. Each step first appends
 * `start <i> <pid> <epoch ms>` to the journal `<journalDir>/<root id>.journal`
 * (appendFileSync: on disk before the step's work, so it survives a SIGKILL),
 * then works for STEP_MS and returns a value that depends on the previous one,
 * so a step that ran with a wrong input (or a replay that mixed results up)
 * changes the final result.
 */
export function workload(journalDir, stepMs = Number(process.env.STEP_MS ?? 150)) {
  async function step(ctx, i, acc) {
    appendFileSync(
      join(journalDir, `${ctx.info.origin}.journal`),
      `start ${i} ${process.pid} ${Date.now()}\n`,
    );
    await sleep(stepMs);
    return acc * 31 + i * i;
  }

  async function wfAsync(ctx, steps) {
    const trail = [];
    let acc = 1;
    for (let i = 1; i <= steps; i++) {
      acc = await ctx.run(step, i, acc);
      trail.push(acc);
    }
    return { engine: "async", trail, acc };
  }

  function* wfGen(ctx, steps) {
    const trail = [];
    let acc = 1;
    for (let i = 1; i <= steps; i++) {
      acc = yield* ctx.run(step, i, acc);
      trail.push(acc);
    }
    return { engine: "generator", trail, acc };
  }

  return { step, wfAsync, wfGen };
}
