/**
 * `pledge/testing`: what users get for deterministic tests. So far the seeded
 * PRNG and the plain (non-durable) runtime that interruption transparency is
 * checked against; the simulator (`simulate`, `assertInterruptionTransparent`)
 * is issue 4.
 */
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
