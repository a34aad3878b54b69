/**
 * `simulate` and `assertInterruptionTransparent`: a user's durable functions run
 * under seeded crashes, lost and duplicated messages, server restarts and clock
 * jumps, on simulated time, and each run's result is held to the same function
 * run as plain code. What users add to their own test suites (`pledge/testing`).
 *
 * How one seed runs: a `World` (world.ts) over a fresh `MemoryStore`, with worker
 * processes of the user's group (and `groups`) that register the functions and
 * dependencies registered on the user's `Pledge`, a starter that starts the root
 * with `beginRpc`, and, when `external` is given, a settler that settles pending
 * `ctx.promise`s. Faults run for `steps` kernel events (or until the root
 * settles), paced by events rather than by time, then `calm()` ends them and
 * the root must settle within `settleWithin` ms of simulated time after the
 * calm and after its last durable sleep (liveness). Leaf `ctx.run` bodies run for
 * real, in this process, with no crash point inside them (`crashInStep` stays
 * 0): a step re-runs when a crash or a lost message lands between its effect
 * and its recorded result.
 *
 * The reference is the plain run (`runPlain`, plain.ts) of the same function and
 * arguments, never a fault-free simulated run: plain code has no replays, no
 * suspension and no engine, so a result that depends on how often the function
 * was replayed (state changed outside `ctx.run`) differs from it even when no
 * fault fires, and a bug in the engine cannot hide by being in the reference
 * too. It runs once per `simulate` call, after `reset`.
 *
 * What it leaves to others: the world, the faults and their counters (world.ts,
 * network.ts), the plain runtime (plain.ts), nondeterminism detection itself
 * (the engine's X2: a replay that makes a different call at a recorded position
 * fails the execution with a `NondeterminismError`; it is read off the store).
 *
 * Invariants:
 *  S1  The user's `Pledge` is only read: its registrations are copied onto
 *      simulated clients; its store and worker are never used.
 *  S2  Everything a seed's run does comes from the seed, so the same seed gives
 *      the same report, as long as the user's code is deterministic: leaf bodies
 *      awaiting real I/O make a run only as deterministic as that I/O (the loop
 *      yields to the real event loop now and then, and before it declares the
 *      root stuck, so such I/O can finish).
 *  S3  A seed holds when the root settled, no execution failed with a
 *      `NondeterminismError`, and the outcome equals the reference: values as
 *      canonical JSON, errors as `name: message` (never stacks).
 */
import type { StoredPromise } from "../core/state.js";
import { type PromiseRecord, TAG } from "../protocol/records.js";
import type { PledgeClient } from "../sdk/client.js";
import { decode, toError } from "../sdk/codec.js";
import {
  type DurableFunction,
  PromiseSettledError,
  type RegisteredFunction,
} from "../sdk/engine/execution.js";
import { options as callOptions, type Options } from "../sdk/options.js";
import type { ShellConfig } from "../server/shell.js";
import { MemoryStore } from "../store/memory-store.js";
import { Kernel } from "./kernel.js";
import type { FaultCounters } from "./network.js";
import { type PlainOutcome, type PromiseSettings, runPlain } from "./plain.js";
import { drawFaults, NO_FAULTS, observeStore, type SimProcess, World, type WorldFaults } from "./world.js";

/** How a run ended: values and errors as the caller sees them; `pending` when the root never settled. */
export type SimulatedOutcome =
  | { state: "resolved"; value: unknown }
  | { state: "rejected"; error: string }
  | { state: "pending" };

export interface SimulateOptions {
  /** The first seed (default 1); seeds `seed` … `seed + runs − 1` run. */
  seed?: number;
  /** How many seeds (default 10). */
  runs?: number;
  /** Fault rates: drawn per seed (default), `"none"`, or drawn with these rates overriding. */
  faults?: Partial<WorldFaults> | "none";
  /** Settles `ctx.promise` in the reference and the simulation alike; settings are `{ id, tags }`. */
  external?: (settings: PromiseSettings, id: string) => PlainOutcome | PromiseLike<PlainOutcome>;
  /** Called before the reference run and before each seed: reset state your steps touch. */
  reset?: () => void | PromiseLike<void>;
  /** Whether a seed's outcome counts as the reference's (default: equal canonical JSON). */
  equal?: (outcome: SimulatedOutcome, reference: SimulatedOutcome) => boolean;
  /** The root execution's id (default `simulated`); its calls are `<id>.1`, `<id>.2`… */
  id?: string;
  /** The root's timeout in ms, as `ctx.options({ timeout })` (default the SDK's: a day). */
  timeout?: number;
  /** Kernel events run under faults before calm (default 10000); an hour of sleep costs ~2500. */
  steps?: number;
  /** Worker processes per group (default 2). */
  workers?: number;
  /** More worker groups that run the same functions (for `ctx.options({ target })`). */
  groups?: string[];
  /** Simulated ms after calm (and after its last sleep) within which the root must settle (default 1 h). */
  settleWithin?: number;
  /** Receives the kernel's trace lines (verbose: one per event). */
  trace?: (line: string) => void;
}

export interface SeedReport {
  seed: number;
  ok: boolean;
  outcome: SimulatedOutcome;
  reference: SimulatedOutcome;
  /** The first `NondeterminismError` of any execution in this run. */
  nondeterminism?: string;
  /** Why the run did not finish: liveness, a failed start, a violated server invariant. */
  failure?: string;
  /** Faults injected, by kind. */
  faults: FaultCounters;
  steps: number;
  simulatedMs: number;
  /** The call that runs this seed alone. */
  replay: string;
}

export interface SimulationReport {
  ok: boolean;
  func: string;
  reference: SimulatedOutcome;
  seeds: SeedReport[];
  /** Readable: held or not, the first failing seed, its replay. */
  summary: string;
}

/** Thrown by `assertInterruptionTransparent`; `report` has every seed. */
export class InterruptionTransparencyError extends Error {
  override name = "InterruptionTransparencyError";
  constructor(readonly report: SimulationReport) {
    super(report.summary);
  }
}

const TTL_MS = 10_000;
/**
 * Faults are paced by activity, not by simulated time: a chance of a fault tick
 * after each event, so a workflow that sleeps a day meets faults after its sleep
 * too, without a day of idle ticks.
 */
const FAULT_TICK_PER_EVENT = 0.25;
/** The settler looks for pending promises this often, backing off to the maximum while it finds none. */
const SETTLE_EVERY_MS = 200;
const SETTLE_EVERY_MS_MAX = 60_000;
/** A repair loop every minute (not every second) keeps long sleeps cheap; timers still fire when due. */
const SHELL: ShellConfig = {
  debug: false,
  retryTimeoutMs: 5_000,
  unblockTtlMs: 60 * 60 * 1000,
  maintenanceIntervalMs: 60_000,
};
/** S2: a real macrotask every so many events, so real I/O in leaf bodies can finish. */
const REAL_TURN_EVERY_STEPS = 256;
/** S2: real macrotasks granted, with one event each, once the bound is reached, before "stuck". */
const REAL_GRACE_TURNS = 200;

/** What the simulated workers run, read once from the user's client (S1). */
interface Plan {
  id: string;
  func: string;
  fn: DurableFunction;
  args: unknown[];
  /** The user's group first: the root runs there. */
  groups: string[];
  /** The root call's options: its group, its timeout. */
  call: Options;
  functions: RegisteredFunction[];
  dependencies: ReadonlyMap<string, unknown>;
}

/**
 * Runs `nameOrFn(...args)`, registered on `pledge` (or given as a function), once
 * as plain code and once per seed under faults, and reports whether every
 * simulated outcome equals the plain one (S3).
 */
export async function simulate(
  pledge: PledgeClient,
  nameOrFn: string | DurableFunction,
  args: readonly unknown[] = [],
  options: SimulateOptions = {},
): Promise<SimulationReport> {
  const plan = planOf(pledge, nameOrFn, args, options);
  const seed = options.seed ?? 1;
  const runs = options.runs ?? 10;
  if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(runs) || runs < 1)
    throw new RangeError(`simulate: seed and runs are integers and runs ≥ 1, got ${seed} and ${runs}`);
  await options.reset?.();
  const reference = await referenceOf(plan, options);
  const seeds: SeedReport[] = [];
  for (let index = 0; index < runs; index++)
    seeds.push(await simulateSeed(plan, seed + index, reference, options));
  const ok = seeds.every((report) => report.ok);
  const report = { ok, func: plan.func, reference, seeds, summary: "" };
  report.summary = summarize(report, args);
  return report;
}

/** `simulate`, throwing an `InterruptionTransparencyError` (message: the summary, with the seed) when it fails. */
export async function assertInterruptionTransparent(
  pledge: PledgeClient,
  nameOrFn: string | DurableFunction,
  args: readonly unknown[] = [],
  options: SimulateOptions = {},
): Promise<SimulationReport> {
  const report = await simulate(pledge, nameOrFn, args, options);
  if (!report.ok) throw new InterruptionTransparencyError(report);
  return report;
}

function planOf(
  pledge: PledgeClient,
  nameOrFn: string | DurableFunction,
  args: readonly unknown[],
  options: SimulateOptions,
): Plan {
  const { functions, dependencies, group } = pledge.registrations();
  let func: string;
  let fn: DurableFunction;
  const all = [...functions];
  if (typeof nameOrFn === "string") {
    const found = latestOf(functions, nameOrFn);
    if (found === undefined) throw new Error(`simulate: no function registered as ${nameOrFn}`);
    func = nameOrFn;
    fn = found.fn;
  } else {
    const found = functions.find((entry) => entry.fn === nameOrFn);
    func = found?.name ?? nameOrFn.name;
    fn = nameOrFn;
    if (func.length === 0) throw new TypeError("simulate: the function has no name; register it first");
    if (found === undefined) all.push({ name: func, version: 1, fn });
  }
  const id = options.id ?? "simulated";
  const groups = [group, ...(options.groups ?? []).filter((other) => other !== group)];
  const call = callOptions({
    target: group,
    ...(options.timeout !== undefined && { timeout: options.timeout }),
  });
  return { id, func, fn, args: [...args], groups, call, functions: all, dependencies };
}

async function referenceOf(plan: Plan, options: SimulateOptions): Promise<SimulatedOutcome> {
  const { external } = options;
  const outcome = await runPlain(plan.fn, plan.args, {
    id: plan.id,
    func: plan.func,
    functions: (name) => latestOf(plan.functions, name)?.fn,
    dependencies: plan.dependencies,
    // The same settings the simulated settler can read off the record.
    ...(external !== undefined && {
      external: (settings: PromiseSettings, id: string) => external({ id, tags: settings.tags ?? {} }, id),
    }),
  });
  return outcome.state === "resolved"
    ? { state: "resolved", value: outcome.value }
    : { state: "rejected", error: describeError(outcome.error) };
}

async function simulateSeed(
  plan: Plan,
  seed: number,
  reference: SimulatedOutcome,
  options: SimulateOptions,
): Promise<SeedReport> {
  await options.reset?.();
  const kernel = new Kernel({ seed, ...(options.trace !== undefined && { onTrace: options.trace }) });
  let root: StoredPromise | undefined;
  let nondeterminism: string | undefined;
  /** The latest instant a durable sleep waits for: liveness is judged after it. */
  let lastTimerAt = 0;
  const disk = new MemoryStore();
  const store = observeStore(disk, {
    promiseWritten(_before, after) {
      if (after.tags[TAG.timer] === "true") lastTimerAt = Math.max(lastTimerAt, after.timeoutAt);
      if (after.state === "pending") return;
      if (after.id === plan.id) root ??= after;
      if (after.state === "rejected" && nondeterminism === undefined) {
        const error = toError(decode(after.value));
        if (error.name === "NondeterminismError") nondeterminism = error.message;
      }
    },
  });
  const faults =
    options.faults === "none"
      ? NO_FAULTS
      : { ...drawFaults(kernel.random.fork("plan")), ...(options.faults ?? {}) };
  kernel.trace(`seed ${seed} faults ${JSON.stringify(faults)}`);
  const world = new World({ kernel, store, shell: SHELL, faults, ttlMs: TTL_MS, periodicFaults: false });
  for (const group of plan.groups)
    for (let index = 1; index <= (options.workers ?? 2); index++)
      world.spawn(`${group}-worker-${index}`, group, (process) => install(process, plan));
  let startFailure: string | undefined;
  world.spawn("starter", "pledge-simulate-starter", ({ client }) => {
    // Again after each restart: creating the root is idempotent by id.
    client.beginRpc(plan.id, plan.func, ...plan.args, plan.call).catch((error: unknown) => {
      startFailure ??= `the root could not be started: ${describeError(toError(error))}`;
    });
  });
  const { external } = options;
  if (external !== undefined)
    world.spawn("settler", "pledge-simulate-settler", (process) => settleLatent(process, external));

  const finished = () => root !== undefined || startFailure !== undefined;
  const chaosSteps = options.steps ?? 10_000;
  const pace = kernel.random.fork("pace");
  await runEvents(kernel, () => finished() || kernel.steps >= chaosSteps, {
    afterEvent: () => pace.bool(FAULT_TICK_PER_EVENT) && world.faultTickNow(),
  });
  world.calm();
  const settleWithin = options.settleWithin ?? 60 * 60 * 1000;
  const calmAt = kernel.now;
  // A sleep the function asked for is not a liveness failure: the bound starts after the last one.
  await runEvents(kernel, finished, {
    bounded: () => kernel.now > Math.max(calmAt, lastTimerAt) + settleWithin,
  });
  await disk.close();

  const outcome: SimulatedOutcome = root === undefined ? { state: "pending" } : outcomeOf(root);
  const failure =
    kernel.failed?.message ??
    startFailure ??
    (root === undefined
      ? `liveness: ${plan.id} did not settle within ${settleWithin} ms of simulated time after faults ended` +
        (lastTimerAt > calmAt ? " and its last sleep was due" : "")
      : undefined);
  const equal = options.equal ?? ((a, b) => canonical(a) === canonical(b));
  return {
    seed,
    ok: failure === undefined && nondeterminism === undefined && equal(outcome, reference),
    outcome,
    reference,
    ...(nondeterminism !== undefined && { nondeterminism }),
    ...(failure !== undefined && { failure }),
    faults: { ...world.counters },
    steps: kernel.steps,
    simulatedMs: kernel.now - kernel.startMs,
    replay: replayCall(plan.func, plan.args, options, seed),
  };
}

/**
 * Runs kernel events until `done()`. With `bounded`, once it says the bound is
 * reached (or no event is left), a few real macrotasks are granted, one event
 * each, for real I/O to finish (S2); without it, an empty queue ends the run.
 */
async function runEvents(
  kernel: Kernel,
  done: () => boolean,
  { bounded, afterEvent }: { bounded?: () => boolean; afterEvent?: () => void } = {},
): Promise<void> {
  let lastTurn = kernel.steps;
  let grace = 0;
  while (!done() && kernel.failed === undefined) {
    if (kernel.steps - lastTurn >= REAL_TURN_EVERY_STEPS) {
      lastTurn = kernel.steps;
      await realTurn();
    }
    const reached = bounded?.() === true || !kernel.pending;
    if (reached) {
      if (bounded === undefined || grace >= REAL_GRACE_TURNS) return;
      grace += 1;
      await realTurn();
    }
    if ((await kernel.step()) && afterEvent !== undefined) afterEvent();
  }
}

function realTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Each incarnation of a worker registers the user's functions and dependencies (S1). */
function install(process: SimProcess, plan: Plan): void {
  for (const { name, version, fn } of plan.functions) process.client.register(name, fn, { version });
  for (const [name, value] of plan.dependencies) process.client.setDependency(name, value);
}

/** The outside world: settles each pending `ctx.promise` with what `external` says. */
function settleLatent(process: SimProcess, external: NonNullable<SimulateOptions["external"]>): void {
  const { client, network } = process;
  const settleAll = async () => {
    const response = await network.send({
      kind: "promise.search",
      data: { state: "pending", tags: { [TAG.external]: "true" }, limit: 100 },
    });
    if (response.status !== 200) return false;
    const found = (response.data as { promises: PromiseRecord[] }).promises;
    for (const record of found) {
      const settings = { id: record.id, tags: userTags(record.tags) };
      const outcome: PlainOutcome = await Promise.resolve()
        .then(() => external(settings, record.id))
        .catch((error: unknown) => ({ state: "rejected", error: toError(error) }));
      if (outcome.state === "resolved") await client.promises.resolve(record.id, outcome.value);
      else await client.promises.reject(record.id, outcome.error);
    }
    return found.length > 0;
  };
  // A failed round (a crash, a refused settle) is simply tried again next round.
  let delayMs = SETTLE_EVERY_MS;
  const again = () =>
    process.schedule(delayMs, () => {
      void settleAll()
        .then((busy) => {
          delayMs = busy ? SETTLE_EVERY_MS : Math.min(2 * delayMs, SETTLE_EVERY_MS_MAX);
        })
        .catch(() => {})
        .finally(again);
    });
  again();
}

function userTags(tags: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(tags).filter(([key]) => !key.startsWith("resonate:")));
}

function latestOf(functions: RegisteredFunction[], name: string): RegisteredFunction | undefined {
  return functions.filter((entry) => entry.name === name).sort((a, b) => b.version - a.version)[0];
}

/** The root's outcome as a caller's handle sees it (client.ts `outcomeOf`). */
function outcomeOf(record: PromiseRecord): SimulatedOutcome {
  if (record.state === "pending") return { state: "pending" };
  if (record.state === "resolved") return { state: "resolved", value: decode(record.value) };
  const error =
    record.state === "rejected"
      ? toError(decode(record.value))
      : new PromiseSettledError(record.id, record.state);
  return { state: "rejected", error: describeError(error) };
}

function describeError(error: Error): string {
  return `${error.name}: ${error.message}`;
}

/** JSON with object keys sorted, so key order never makes two equal values differ. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) =>
    inner !== null && typeof inner === "object" && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : inner,
  );
}

function describeOutcome(outcome: SimulatedOutcome): string {
  if (outcome.state === "resolved") return `resolved ${canonical(outcome.value) ?? "undefined"}`;
  if (outcome.state === "rejected") return `rejected ${outcome.error}`;
  return "never settled";
}

function whyFailed(seed: SeedReport): string {
  const why = [
    seed.nondeterminism !== undefined && `nondeterminism: ${seed.nondeterminism}`,
    seed.failure,
    // An outcome that only carries the NondeterminismError says nothing more.
    !(seed.nondeterminism !== undefined && describeOutcome(seed.outcome).includes(seed.nondeterminism)) &&
      `${describeOutcome(seed.outcome)}, but the plain run ${describeOutcome(seed.reference)}`,
  ];
  return why.filter((line) => typeof line === "string").join("; ");
}

function replayCall(func: string, args: unknown[], options: SimulateOptions, seed: number): string {
  const argsText = JSON.stringify(args);
  const shown = argsText !== undefined && argsText.length <= 80 ? argsText : "args";
  const others = Object.keys(options).some((key) => key !== "seed" && key !== "runs");
  return `simulate(pledge, ${JSON.stringify(func)}, ${shown}, { ${others ? "...options, " : ""}seed: ${seed}, runs: 1 })`;
}

function summarize(report: SimulationReport, args: readonly unknown[]): string {
  const { seeds } = report;
  const first = seeds[0]?.seed ?? 0;
  const last = seeds[seeds.length - 1]?.seed ?? first;
  const failing = seeds.filter((seed) => !seed.ok);
  const faults = new Map<string, number>();
  for (const seed of seeds)
    for (const [kind, count] of Object.entries(seed.faults))
      if (count > 0) faults.set(kind, (faults.get(kind) ?? 0) + count);
  const head =
    `simulate ${report.func}(${JSON.stringify(args)?.slice(0, 80) ?? ""}) over seeds ${first}…${last}: ` +
    (report.ok
      ? `interruption transparency held on all ${seeds.length} seeds`
      : `interruption transparency FAILED on ${failing.length} of ${seeds.length} seeds; first failing seed ${failing[0]?.seed}`);
  const lines = [
    head,
    `  reference (plain run): ${describeOutcome(report.reference)}`,
    `  faults injected: ${[...faults].map(([kind, count]) => `${kind} ${count}`).join(", ") || "none"}`,
  ];
  for (const seed of failing.slice(0, 5)) lines.push(`  seed ${seed.seed}: ${whyFailed(seed)}`);
  if (failing.length > 5) lines.push(`  … and ${failing.length - 5} more failing seeds`);
  const firstFailing = failing[0];
  if (firstFailing !== undefined) lines.push(`  replay: ${firstFailing.replay}`);
  return lines.join("\n");
}
