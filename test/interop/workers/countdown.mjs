// Runs a countdown workflow (ctx.run + ctx.sleep) in this very process:
// `resonate.run` creates and claims the root task (task.create), local steps and
// timers are created through task.fence, every sleep suspends the task and the
// timer's deadline resumes it with a fresh `execute`.
//
// argv: <root id> <count> <sleep ms>
import { connect, emit, fail } from "./common.mjs";

const [id, countArg, sleepArg] = process.argv.slice(2);
const count = Number(countArg ?? 3);
const sleepMs = Number(sleepArg ?? 200);

function tick(_ctx, n) {
  emit("tick", { n });
  return `T-${n}`;
}

function* countdown(ctx, n, ms) {
  const ticks = [];
  for (let i = n; i > 0; i--) {
    ticks.push(yield* ctx.run(tick, i));
    yield* ctx.sleep(ms);
  }
  return { ticks, done: "liftoff" };
}

try {
  const { resonate, sse } = await connect();
  resonate.register("countdown", countdown);
  emit("ready", { sse });
  const started = Date.now();
  const result = await resonate.run(id, "countdown", count, sleepMs);
  emit("result", { result, elapsedMs: Date.now() - started });
  await resonate.stop();
  process.exit(0);
} catch (err) {
  fail(err);
}
