/**
 * `npm run sim:mutants -- [--seed n] [--budget k] [--jobs j] [--only a,b] [--survivors]
 * [--prepare name] [--list] [--markdown]`: the proof that the simulator bites
 * (issue 4, item 6). Each mutant of `mutants/catalogue.ts` is a deliberate bug,
 * applied as an exact text replacement to a temporary copy of the sources; the
 * simulator then runs on that copy for seeds n … n+k−1 with `--fail-fast
 * --json`, and the first failing seed says how many seeds it took to catch the
 * bug and which invariant fired. By default the gate (`MUTANTS`) runs;
 * `--survivors` runs the documented survivors instead, to see whether the
 * simulator has learnt to catch one.
 *
 * What it owns: the copies (made under the OS temp directory, deleted after),
 * the patching, the pool of simulator processes, and the report. What it leaves
 * to others: the bugs (the catalogue) and every judgement about them (the
 * simulator's general invariants; nothing here knows what a mutant should trip).
 *
 * Invariants:
 *  U1  The working tree is never written: the sources are snapshotted once into
 *      a temporary base, and every run works on a copy of that base, so the
 *      baseline and every mutant see the same code even while others edit.
 *  U2  The unmutated base runs first over the whole seed range; if it fails, no
 *      mutant result means anything, and the run stops with status 2.
 *  U3  A patch whose anchor is not found exactly once stops the run with status
 *      2 before any simulation (catalogue M1).
 *  U4  A mutant counts as caught only when the simulator's own JSON summary names
 *      a failing seed and an invariant; a crash, a timeout or unreadable output
 *      is an error, never a catch.
 *
 * Exit status: 0 when every gate mutant was caught within the budget (a
 * documented survivor never fails the run), 1 when one survived or its run went
 * wrong, 2 on bad flags, a stale anchor or a failing baseline.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { cp, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Command, InvalidArgumentError } from "commander";
import { MUTANTS, type Mutant, SURVIVORS, type Survivor } from "./mutants/catalogue.js";
import { patchAll, StaleAnchor } from "./mutants/patch.js";

const REPO = join(import.meta.dirname, "..");
const TSX = join(REPO, "node_modules", ".bin", "tsx");
/** What a simulator run needs; node_modules is linked, not copied. */
const COPIED = ["src", "sim", "package.json", "tsconfig.json"];

interface Flags {
  seed: number;
  budget: number;
  jobs: number;
  only?: string[];
  timeout: number;
  markdown: boolean;
  list: boolean;
  prepare?: string;
  survivors: boolean;
}

function integer(name: string, min: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min)
      throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}, got ${JSON.stringify(text)}`);
    return value;
  };
}

const program = new Command("sim:mutants")
  .description("apply each deliberate bug to a copy of the sources and show the simulator catches it")
  .option("--seed <n>", "first seed", integer("--seed", 0), 1)
  .option("--budget <k>", "seeds a mutant may survive before it counts as missed", integer("--budget", 1), 40)
  .option("--jobs <j>", "simulator processes at once", integer("--jobs", 1), 2)
  .option("--only <names>", "comma-separated mutant names", (text) => text.split(",").filter(Boolean))
  .option("--timeout <s>", "wall-clock limit of one simulator process, seconds", integer("--timeout", 1), 150)
  .option("--markdown", "print the final table as Markdown", false)
  .option("--survivors", "run the documented survivors instead of the gate (is any now caught?)", false)
  .option("--list", "list the mutants and exit", false)
  .option(
    "--prepare <name>",
    "write one mutant's patched copy, keep it, and print how to replay a seed on it",
  )
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2))
  .configureOutput({ writeErr: (text) => process.stderr.write(text) });

program.parse(process.argv);
const flags = program.opts<Flags>();

// --- the simulator as a child process ---------------------------------------------------

/** What one simulator process said (U4). */
type SimResult =
  | { kind: "passed"; runs: number }
  | { kind: "failed"; runs: number; seed: number; invariant: string; message: string }
  | { kind: "error"; reason: string };

interface Summary {
  runs: number;
  failures: { seed: number; invariant?: string; message?: string }[];
}

/** Simulator processes running now, each the leader of its own process group. */
const children = new Set<ChildProcess>();

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Runs `sim/main.ts` of `copy` on seeds first … first+runs−1 and reads its JSON summary. */
function simulate(copy: string, first: number, runs: number): Promise<SimResult> {
  const args = [join(copy, "sim", "main.ts"), "--seed", String(first), "--runs", String(runs)];
  return new Promise((resolve) => {
    // Its own process group, so a timeout ends tsx and the node it starts, and nothing else.
    const child = spawn(TSX, [...args, "--fail-fast", "--json"], {
      cwd: copy,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    children.add(child);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, flags.timeout * 1000);
    child.on("error", (error) => {
      clearTimeout(timer);
      resolve({ kind: "error", reason: `could not start the simulator: ${error.message}` });
    });
    child.on("close", (code) => {
      children.delete(child);
      clearTimeout(timer);
      if (timedOut) {
        resolve({ kind: "error", reason: `no answer within ${flags.timeout} s (killed)` });
        return;
      }
      resolve(readSummary(stdout, stderr, code, runs));
    });
  });
}

function readSummary(stdout: string, stderr: string, code: number | null, asked: number): SimResult {
  const tail = (text: string) => text.trim().split("\n").slice(-6).join("\n");
  const last = stdout.trim().split("\n").at(-1) ?? "";
  let summary: Summary;
  try {
    summary = JSON.parse(last) as Summary;
  } catch {
    return { kind: "error", reason: `exit ${code}, no JSON summary:\n${tail(stderr || stdout)}` };
  }
  const failure = summary.failures[0];
  if (failure === undefined) {
    if (code !== 0) return { kind: "error", reason: `exit ${code} without a failing seed:\n${tail(stderr)}` };
    if (summary.runs !== asked)
      return { kind: "error", reason: `asked for ${asked} seeds, the simulator ran ${summary.runs}` };
    return { kind: "passed", runs: summary.runs };
  }
  if (code !== 1 || failure.invariant === undefined)
    return { kind: "error", reason: `exit ${code} with an unnamed failure:\n${tail(stderr)}` };
  return {
    kind: "failed",
    runs: summary.runs,
    seed: failure.seed,
    invariant: failure.invariant,
    message: failure.message ?? "",
  };
}

// --- copies and patches -----------------------------------------------------------------

const temporary: string[] = [];

async function freshDirectory(): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), "pledge-mutant-"));
  temporary.push(directory);
  return directory;
}

/** A copy of `from` (the repository or the base), with node_modules linked to the repository's. */
async function copySources(from: string): Promise<string> {
  const copy = await freshDirectory();
  for (const entry of COPIED) await cp(join(from, entry), join(copy, entry), { recursive: true });
  await symlink(join(REPO, "node_modules"), join(copy, "node_modules"), "dir");
  return copy;
}

/** Checks every patch of `mutant` against `base` without writing (catalogue M1, M2; U3). */
function checkAnchors(base: string, mutant: Mutant): void {
  patchAll(mutant, (file) => readFileSync(join(base, file), "utf8"));
}

async function applyPatches(copy: string, mutant: Mutant): Promise<void> {
  const patched = patchAll(mutant, (file) => readFileSync(join(copy, file), "utf8"));
  for (const [file, text] of patched) await writeFile(join(copy, file), text);
}

// --- the pool and the screen ------------------------------------------------------------

async function pool<T, R>(items: T[], size: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(size, items.length) }, lane));
  return results;
}

const tty = process.stderr.isTTY === true;
const running = new Set<string>();
/** Whether the progress line is on screen (TTY only, while simulator processes run). */
let live = false;
let ticker: NodeJS.Timeout | undefined;
let finished = 0;
let total = 0;
const started = performance.now();

function seconds(fromMs: number): string {
  return `${((performance.now() - fromMs) / 1000).toFixed(1)} s`;
}

function drawStatus(): void {
  if (!live) return;
  const status = `${finished}/${total} done, ${seconds(started)}; running: ${[...running].join(", ")}`;
  const width = process.stderr.columns || 120;
  process.stderr.write(`\r\x1b[K${status.slice(0, width - 1)}`);
}

/** Shows (or takes down) the progress line, redrawn each second for the clock. */
function showProgress(on: boolean): void {
  if (!tty || on === live) return;
  live = on;
  clearInterval(ticker);
  if (on) {
    ticker = setInterval(drawStatus, 1000);
    drawStatus();
  } else {
    process.stderr.write("\r\x1b[K");
  }
}

/** Prints a line above the progress line. */
function say(line: string): void {
  if (live) process.stderr.write("\r\x1b[K");
  process.stdout.write(`${line}\n`);
  drawStatus();
}

// --- the run ----------------------------------------------------------------------------

const ALL: (Mutant | Survivor)[] = [...MUTANTS, ...SURVIVORS];

function isSurvivor(mutant: Mutant | Survivor): mutant is Survivor {
  return "verdict" in mutant;
}

interface Verdict {
  mutant: Mutant | Survivor;
  result: SimResult;
  elapsed: string;
}

/** A gate mutant must be caught; a documented survivor is reported, never held against the run. */
function missed(verdict: Verdict): boolean {
  return !isSurvivor(verdict.mutant) && verdict.result.kind !== "failed";
}

function seedsToDetection(result: SimResult): string {
  return result.kind === "failed" ? String(result.seed - flags.seed + 1) : "—";
}

/** The simulator's message repeats the invariant's name in front; once is enough. */
function message(result: Extract<SimResult, { kind: "failed" }>): string {
  const prefix = `${result.invariant}: `;
  return result.message.startsWith(prefix) ? result.message.slice(prefix.length) : result.message;
}

function describe({ mutant, result, elapsed }: Verdict): string {
  const lines = [`        breaks: ${mutant.breaks}`];
  let head: string;
  if (result.kind === "failed") {
    head = `${isSurvivor(mutant) ? "NOW CAUGHT" : "caught"} ${mutant.name}: seed ${result.seed} (${seedsToDetection(result)} of ${flags.budget} seeds), ${elapsed}`;
    lines.push(`        fired: ${result.invariant}: ${truncate(message(result), 200)}`);
    if (isSurvivor(mutant))
      lines.push("        the simulator sees it now: move it from SURVIVORS into MUTANTS");
  } else if (isSurvivor(mutant)) {
    const how = result.kind === "passed" ? `all ${result.runs} seeds passed` : truncate(result.reason, 120);
    head = `survives ${mutant.name} (${mutant.verdict}, as documented): ${how}, ${elapsed}`;
    lines.push(`        why: ${mutant.why}`);
  } else if (result.kind === "passed") {
    head = `SURVIVED ${mutant.name}: all ${result.runs} seeds passed, ${elapsed}`;
    lines.push(`        investigate: npm run sim:mutants -- --prepare ${mutant.name}, then --trace a seed`);
  } else {
    head = `ERROR   ${mutant.name}: ${elapsed}`;
    lines.push(`        ${result.reason.replaceAll("\n", "\n        ")}`);
  }
  return [head, ...lines].join("\n");
}

function truncate(text: string, length: number): string {
  const line = text.replaceAll("\n", " ");
  return line.length <= length ? line : `${line.slice(0, length - 1)}…`;
}

function table(verdicts: Verdict[]): string {
  const rows = verdicts.map(({ mutant, result, elapsed }) => {
    const survived = isSurvivor(mutant) ? `survived (${mutant.verdict})` : "SURVIVED";
    const seeds =
      result.kind === "failed" ? seedsToDetection(result) : result.kind === "passed" ? survived : "error";
    const row = [mutant.name, seeds, result.kind === "failed" ? result.invariant : "—", elapsed];
    return flags.markdown ? [row[0] as string, mutant.breaks, ...row.slice(1)] : row;
  });
  const header = ["mutant", "seeds to detection", "invariant fired", "time"];
  if (flags.markdown) {
    header.splice(1, 0, "what it breaks");
    return [header, header.map(() => "---"), ...rows].map((row) => `| ${row.join(" | ")} |`).join("\n");
  }
  const widths = header.map((_, column) =>
    Math.max(...[header, ...rows].map((row) => row[column]?.length ?? 0)),
  );
  return [header, ...rows]
    .map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  "))
    .join("\n");
}

/** Which mutants this run takes, or a message saying why none can be chosen. */
function selection(): (Mutant | Survivor)[] | string {
  const names = ALL.map((mutant) => mutant.name);
  const twice = names.filter((name, index) => names.indexOf(name) !== index);
  if (twice.length > 0) return `mutant names must be unique (M3): ${twice.join(", ")}`;
  if (flags.only === undefined) return flags.survivors ? SURVIVORS : MUTANTS;
  const unknown = flags.only.filter((name) => !names.includes(name));
  if (unknown.length > 0) return `unknown mutant(s): ${unknown.join(", ")}; --list shows them`;
  return ALL.filter((mutant) => flags.only?.includes(mutant.name));
}

async function main(): Promise<number> {
  const selected = selection();
  if (typeof selected === "string") {
    process.stderr.write(`${selected}\n`);
    return 2;
  }
  if (flags.list) {
    say("gate (each must be caught):");
    for (const mutant of MUTANTS) say(`  ${mutant.name.padEnd(26)} ${mutant.breaks}`);
    say("documented survivors (--survivors):");
    for (const mutant of SURVIVORS) say(`  ${mutant.name.padEnd(26)} ${mutant.verdict}: ${mutant.breaks}`);
    return 0;
  }
  if (flags.prepare !== undefined) return prepare(flags.prepare);
  const last = flags.seed + flags.budget - 1;
  say(`${selected.length} mutants, seeds ${flags.seed}…${last}, ${flags.jobs} simulator processes at a time`);

  const base = await copySources(REPO); // U1
  try {
    for (const mutant of selected) checkAnchors(base, mutant); // U3
  } catch (error) {
    if (!(error instanceof StaleAnchor)) throw error;
    say(`stale anchor: ${error.message}`);
    return 2;
  }

  // U2: the unmutated base over the whole range, split across the pool.
  const chunk = Math.ceil(flags.budget / flags.jobs);
  const firsts = Array.from({ length: flags.jobs }, (_, index) => flags.seed + index * chunk).filter(
    (first) => first <= last,
  );
  const baselineStarted = performance.now();
  total = selected.length;
  running.add("baseline");
  showProgress(true);
  const baseline = await pool(firsts, flags.jobs, (first) =>
    simulate(base, first, Math.min(chunk, last - first + 1)),
  );
  running.delete("baseline");
  const broken = baseline.find((result) => result.kind !== "passed");
  if (broken !== undefined) {
    const why =
      broken.kind === "failed"
        ? `seed ${broken.seed} fails ${broken.invariant}: ${message(broken)}`
        : broken.kind === "error"
          ? broken.reason
          : "";
    showProgress(false);
    say(`the unmutated sources fail, so no mutant result would mean anything: ${why}`);
    return 2;
  }
  say(`baseline: seeds ${flags.seed}…${last} pass unmutated (${seconds(baselineStarted)})`);

  const verdicts = await pool(selected, flags.jobs, async (mutant): Promise<Verdict> => {
    const mutantStarted = performance.now();
    running.add(mutant.name);
    drawStatus();
    const copy = await copySources(base);
    try {
      await applyPatches(copy, mutant);
      const result = await simulate(copy, flags.seed, flags.budget);
      const verdict = { mutant, result, elapsed: seconds(mutantStarted) };
      running.delete(mutant.name);
      finished += 1;
      say(describe(verdict));
      return verdict;
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  showProgress(false);
  const gate = verdicts.filter((verdict) => !isSurvivor(verdict.mutant));
  const misses = verdicts.filter(missed);
  say("");
  say(table(verdicts));
  say("");
  if (gate.length > 0)
    say(`${gate.length - misses.length}/${gate.length} mutants caught within ${flags.budget} seeds`);
  if (misses.length > 0) say(`not caught: ${misses.map((verdict) => verdict.mutant.name).join(", ")}`);
  const skipped = SURVIVORS.filter((survivor) => !selected.includes(survivor));
  if (skipped.length > 0)
    say(
      `documented survivors not run (npm run sim:mutants -- --survivors): ${skipped.map((survivor) => `${survivor.name} (${survivor.verdict})`).join(", ")}`,
    );
  say(`total ${seconds(started)}`);
  return misses.length === 0 ? 0 : 1;
}

/** `--prepare`: a kept, patched copy to investigate a mutant with `--trace`. */
async function prepare(name: string): Promise<number> {
  const mutant = ALL.find((candidate) => candidate.name === name);
  if (mutant === undefined) {
    process.stderr.write(`unknown mutant ${name}; --list shows them\n`);
    return 2;
  }
  const copy = await copySources(REPO);
  try {
    await applyPatches(copy, mutant);
  } catch (error) {
    if (!(error instanceof StaleAnchor)) throw error;
    say(`stale anchor: ${error.message}`);
    return 2;
  }
  temporary.splice(temporary.indexOf(copy), 1); // kept: the caller deletes it
  say(`${mutant.name} applied in ${copy} (delete it when done); replay a seed with:`);
  say(`  cd ${copy} && ${TSX} sim/main.ts --seed ${flags.seed} --trace`);
  return 0;
}

// Interrupted: end the simulator processes this run started (their own groups, so the
// terminal's signal does not reach them) and delete the copies, then stop.
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.on(signal, () => {
    showProgress(false);
    for (const child of children) killGroup(child);
    for (const directory of temporary) rmSync(directory, { recursive: true, force: true });
    process.exit(130);
  });

let code = 2;
try {
  code = await main();
} finally {
  showProgress(false);
  await Promise.all(temporary.map((directory) => rm(directory, { recursive: true, force: true })));
}
process.exit(code);
