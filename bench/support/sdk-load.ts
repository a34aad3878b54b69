/**
 * The SDK benchmark's workload and its closed loop, shared by the embedded mode
 * (bench/sdk.ts, in its own process) and the remote workers (sdk-worker.ts):
 * `steps` is a durable function of `STEPS` `ctx.run` steps, each a small pure
 * computation, and closed loops keep one execution of it each in flight, each
 * loop on its own given Pledge instance, or several on one (`pledge.run`, so the
 * process that starts an execution also runs it: no cross-process dispatch is
 * measured, only the durable steps).
 *
 * L1. Steps count when their body runs inside the window (a `ctx.run` body runs
 *     once, then its result is recorded; a replay reads the record), executions
 *     when they finish inside it: slow stores still show steps in a short window.
 * L2. Every result is checked against the same computation done here: a wrong
 *     answer stops the benchmark rather than being counted.
 */
import type { Context, Pledge } from "../../src/index.js";

export const STEPS = 10;
export const FUNCTION_NAME = "tenSteps";

function mix(accumulator: number, index: number): number {
  return (accumulator * 31 + index * index) % 1_000_003;
}

export function expected(seed: number): number {
  let accumulator = seed;
  for (let index = 1; index <= STEPS; index += 1) accumulator = mix(accumulator, index);
  return accumulator;
}

/** Step bodies run in this process while a window is open (L1). */
const counting = { open: false, steps: 0 };

async function step(_ctx: Context, index: number, accumulator: number): Promise<number> {
  if (counting.open) counting.steps += 1;
  return mix(accumulator, index);
}

async function tenSteps(ctx: Context, seed: number): Promise<number> {
  let accumulator = seed;
  for (let index = 1; index <= STEPS; index += 1) accumulator = await ctx.run(step, index, accumulator);
  return accumulator;
}

export function register(pledge: Pledge): void {
  pledge.register(FUNCTION_NAME, tenSteps);
}

export interface LoadWindow {
  warmupMs: number;
  durationMs: number;
}

export interface LoadResult {
  /** Executions finished inside the window (L1). */
  executions: number;
  /** Step bodies run inside the window (L1). */
  steps: number;
  /** CPU time (user + system) of this process inside the window, in microseconds. */
  cpuMicros: number;
}

/**
 * A closed loop of executions per element of `loops`, on that Pledge instance, with
 * ids `<prefix>-<loop>-<n>`; resolves after the window.
 */
export async function runLoad(
  loops: readonly Pledge[],
  options: LoadWindow & { prefix: string },
): Promise<LoadResult> {
  let measuring = false;
  let stopped = false;
  let executions = 0;
  let failure: Error | undefined;
  const loop = async (pledge: Pledge, index: number) => {
    for (let n = 0; !stopped; n += 1) {
      const seed = index * 1_000 + n;
      const result = await pledge.run<number>(`${options.prefix}-${index}-${n}`, FUNCTION_NAME, seed);
      if (result !== expected(seed)) throw new Error(`execution ${seed} answered ${result}`); // L2
      if (measuring && !stopped) executions += 1;
    }
  };
  const running = loops.map((pledge, index) =>
    loop(pledge, index).catch((error: unknown) => {
      failure ??= error instanceof Error ? error : new Error(String(error));
      stopped = true;
    }),
  );
  await sleep(options.warmupMs);
  const cpuBefore = process.cpuUsage();
  measuring = true;
  counting.open = true;
  counting.steps = 0;
  await sleep(options.durationMs);
  counting.open = false;
  stopped = true;
  const steps = counting.steps;
  const cpu = process.cpuUsage(cpuBefore);
  await Promise.all(running);
  if (failure !== undefined) throw failure;
  return { executions, steps, cpuMicros: cpu.user + cpu.system };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
