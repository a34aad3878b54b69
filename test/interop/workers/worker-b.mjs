// Worker in group B (GROUP env). Hosts `square`: a durable function whose only
// step is a slow local computation (STEP_MS env, default 0), so that a test can
// kill the process while the step is running.
import { connect, emit, fail, sleep } from "./common.mjs";

const stepMs = Number(process.env.STEP_MS ?? 0);

async function slowSquare(_ctx, n) {
  emit("step", { n });
  await sleep(stepMs);
  return n * n;
}

function* square(ctx, n) {
  return yield* ctx.run(slowSquare, n);
}

try {
  const { resonate, sse } = await connect();
  resonate.register("square", square);
  emit("ready", { sse });
  process.on("SIGTERM", async () => {
    await resonate.stop().catch(() => {});
    process.exit(0);
  });
} catch (err) {
  fail(err);
}
