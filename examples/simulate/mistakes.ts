/**
 * Two durable functions with the mistakes `simulate` exists to catch. Both work
 * on a quiet afternoon; both break when a crash makes the engine replay them.
 */
import type { Context } from "pledge";
import { price, reserve } from "./workflow.js";

let attempts = 0;

/** Resets the module state the first mistake keeps (a test's `reset` option). */
export function resetAttempts(): void {
  attempts = 0;
}

/**
 * Mistake 1: state changed outside `ctx.run`. Every replay runs the body again,
 * so `attempts` counts executions, not orders. Fix: `await ctx.run(countAttempt)`.
 */
export async function numberTheOrder(ctx: Context, orderId: string) {
  attempts += 1;
  await ctx.run(reserve, orderId, "ticket");
  await ctx.sleep(60_000);
  return { order: orderId, number: attempts };
}

/**
 * Mistake 2: a decision outside `ctx` (`Math.random()`; `Date.now()` is the same
 * mistake). A replay may take the other branch and make a different durable call
 * at a recorded position: the engine fails the execution with a
 * `NondeterminismError`. Fix: `const coin = await ctx.math.random()`.
 */
export async function pickAWarehouse(ctx: Context, orderId: string) {
  const reservation =
    Math.random() < 0.5 ? await ctx.run(reserve, orderId, "north") : await ctx.run(price, ["south"]);
  await ctx.sleep(60_000);
  return { order: orderId, reservation };
}
