/**
 * `pledge/testing`: what users get for deterministic tests. So far the seeded
 * PRNG; the simulator (`simulate`, `assertInterruptionTransparent`) is issue 4.
 */
export { Random } from "./random.js";
