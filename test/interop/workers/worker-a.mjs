// Worker in group A (GROUP env). Hosts `fanout`, which calls `square` remotely
// in another group for every input, in parallel, and aggregates the results.
import { connect, emit, fail } from "./common.mjs";

function* fanout(ctx, nums, targetGroup) {
  emit("fanout", { id: ctx.id, nums });
  const futures = [];
  for (const n of nums) {
    futures.push(yield* ctx.beginRpc("square", n, ctx.options({ target: targetGroup })));
  }
  const squares = [];
  for (const f of futures) {
    squares.push(yield* f);
  }
  return { squares, sum: squares.reduce((a, b) => a + b, 0) };
}

try {
  const { resonate, sse } = await connect();
  resonate.register("fanout", fanout);
  emit("ready", { sse });
  process.on("SIGTERM", async () => {
    await resonate.stop().catch(() => {});
    process.exit(0);
  });
} catch (err) {
  fail(err);
}
