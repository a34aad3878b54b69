/**
 * `npm run sim -- [--seed n] [--runs k] [--steps n] [--trace]` (INTERFACES.md):
 * runs seeds n … n+k−1 and reports per fault kind how often it happened, the
 * seeds per second, and every failing seed with the command that replays it.
 * With `--trace`, stdout holds only the deterministic trace; timings and the
 * summary go to stderr. On a TTY a progress bar shows on stderr.
 *
 * Exit status: 0 when every seed held every invariant, 1 when one failed, 2 on
 * bad flags.
 */
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { Command, InvalidArgumentError } from "commander";
import { emptyCounters, FAULT_KINDS, type FaultCounters } from "../src/testing/network.js";
import { type RunReport, runSeed } from "./run.js";

interface Flags {
  seed?: number;
  runs: number;
  steps: number;
  trace: boolean;
  failFast: boolean;
  json: boolean;
  store?: "memory" | "sqlite";
}

export const DEFAULT_STEPS = 2_000;

function integer(name: string, min: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min)
      throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}, got ${JSON.stringify(text)}`);
    return value;
  };
}

const program = new Command("sim")
  .description("deterministic simulation: the real server core and SDK under seeded faults")
  .option("--seed <n>", "first seed (default: random, printed)", integer("--seed", 0))
  .option("--runs <k>", "number of seeds: n … n+k−1", integer("--runs", 1), 1)
  .option(
    "--steps <n>",
    "events under faults per seed, before the calm phase",
    integer("--steps", 1),
    DEFAULT_STEPS,
  )
  .option("--trace", "print the deterministic trace on stdout (timings on stderr)", false)
  .option("--fail-fast", "stop at the first failing seed", false)
  .option("--json", "print the summary as one JSON object", false)
  .option("--store <kind>", "memory or sqlite (default: drawn from the seed)", (text) => {
    if (text !== "memory" && text !== "sqlite")
      throw new InvalidArgumentError("--store must be memory or sqlite");
    return text;
  })
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2))
  .configureOutput({ writeErr: (text) => process.stderr.write(text) });

program.parse(process.argv);
const flags = program.opts<Flags>();
const first = flags.seed ?? Math.floor(Math.random() * 2 ** 31);
const out = flags.trace ? process.stderr : process.stdout;
if (flags.seed === undefined) out.write(`seed ${first} (random; pass --seed ${first} to run it again)\n`);

const totals: FaultCounters = emptyCounters();
const failures: RunReport[] = [];
const started = performance.now();
let runs = 0;
let steps = 0;
const progress = process.stderr.isTTY && !flags.json && flags.runs > 1;

for (let seed = first; seed < first + flags.runs; seed++) {
  const report = await runSeed({
    seed,
    steps: flags.steps,
    ...(flags.store !== undefined && { store: flags.store }),
    ...(flags.trace && { onTrace: (line: string) => process.stdout.write(`${line}\n`) }),
  });
  runs += 1;
  steps += report.steps;
  for (const kind of FAULT_KINDS) totals[kind] += report.counters[kind];
  if (report.failure !== undefined) {
    failures.push(report);
    if (progress) process.stderr.write("\n");
    if (!flags.json) out.write(describeFailure(report, flags.steps));
    if (flags.failFast) break;
  }
  if (progress) drawProgress(runs, flags.runs, failures.length, performance.now() - started);
}
if (progress) process.stderr.write("\n");

const seconds = (performance.now() - started) / 1000;
if (flags.json) {
  process.stdout.write(
    `${JSON.stringify({
      first,
      runs,
      steps,
      seconds,
      seedsPerSecond: runs / seconds,
      counters: totals,
      failures: failures.map((report) => ({
        seed: report.seed,
        invariant: report.failure?.invariant,
        message: report.failure?.message,
      })),
    })}\n`,
  );
} else {
  const summary = [
    `${runs} seed${runs === 1 ? "" : "s"} (${first}…${first + runs - 1}), ${failures.length} failed, ${steps} events`,
    `${seconds.toFixed(1)} s, ${(runs / seconds).toFixed(2)} seeds/s`,
    `faults: ${FAULT_KINDS.map((kind) => `${kind} ${totals[kind]}`).join(", ")}`,
  ];
  process.stderr.write(`${summary.join("\n")}\n`);
}
process.exit(failures.length === 0 ? 0 : 1);

function describeFailure(report: RunReport, stepsFlag: number): string {
  const failure = report.failure;
  const replay = `npm run sim -- --seed ${report.seed} --steps ${stepsFlag} --trace`;
  return [
    `FAILED seed ${report.seed} (store ${report.store}, commit ${commit()}) after ${report.steps} events, ${report.simulatedMs} ms simulated`,
    `  invariant: ${failure?.invariant}`,
    `  ${failure?.message}`,
    `  replay: ${replay}`,
    "",
  ].join("\n");
}

function commit(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return "unknown";
  }
}

function drawProgress(done: number, total: number, failed: number, elapsedMs: number): void {
  const width = 30;
  const filled = Math.round((done / total) * width);
  const rate = done / (elapsedMs / 1000);
  process.stderr.write(
    `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} seeds, ${rate.toFixed(1)}/s, ${failed} failed`,
  );
}
