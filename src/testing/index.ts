/**
 * `pledge/testing`: what users get for deterministic tests. `simulate` and
 * `assertInterruptionTransparent` run a user's registered functions under seeded
 * crashes and replays and compare each result with the plain run; `runPlain` is
 * that plain (non-durable) runtime; `Random` the seeded PRNG. The simulator's
 * parts (kernel, network, world) stay internal: `sim/` imports them by path.
 */

export type { FaultCounters } from "./network.js";
export {
  PlainContext,
  PlainFuture,
  type PlainOptions,
  type PlainOutcome,
  PlainStarted,
  type PromiseSettings,
  runPlain,
} from "./plain.js";
export { Random } from "./random.js";
export {
  assertInterruptionTransparent,
  InterruptionTransparencyError,
  type SeedReport,
  type SimulatedOutcome,
  type SimulateOptions,
  type SimulationReport,
  simulate,
} from "./simulate.js";
export type { WorldFaults } from "./world.js";
