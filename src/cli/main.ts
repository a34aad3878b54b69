#!/usr/bin/env node
/**
 * The `pledge` executable: wires the process (streams, environment, clock,
 * SIGINT/SIGTERM) into `runCli` and sets the exit status it answers. A second
 * stop signal while `serve` is closing exits at once.
 */
import { runCli } from "./program.js";

function waitForStop(): Promise<string> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      const force = (): void => process.exit(130);
      process.once("SIGINT", force);
      process.once("SIGTERM", force);
      resolve(signal);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

const exitCode = await runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  now: () => Date.now(),
  waitForStop,
  stderrIsTty: process.stderr.isTTY === true,
  stdoutIsTty: process.stdout.isTTY === true,
});
process.exitCode = exitCode;
// Output is flushed by a natural exit; should a closed server leave a stray handle
// behind, this unreferenced timer still ends the process (it never keeps one alive).
setTimeout(() => process.exit(exitCode), 5000).unref();
