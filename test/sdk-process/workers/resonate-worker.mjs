// A worker written with the official SDK (@resonatehq/sdk 0.11.5), serving:
//  - `add(ctx, a, b)`: a generator function whose sum is a ctx.run step,
//  - `greetAll(ctx, names, target)`: fans out `greet(name)` with ctx.beginRpc to
//    another group (a Pledge worker in the cross-SDK tests),
//  - `refuse(ctx, why)`: throws, so its promise is rejected.
//
// env: PLEDGE_URL, GROUP, PID, TTL_MS, SDK_LOG_LEVEL
import { connect, emit, fail } from "./resonate.mjs";

function sum(_ctx, a, b) {
  emit("step", { name: "sum", a, b });
  return a + b;
}

function* add(ctx, a, b) {
  const total = yield* ctx.run(sum, a, b);
  return { sum: total, by: "resonate", id: ctx.id };
}

function* greetAll(ctx, names, target) {
  const futures = [];
  for (const name of names) futures.push(yield* ctx.beginRpc("greet", name, ctx.options({ target })));
  const greetings = [];
  for (const f of futures) greetings.push((yield* f).greeting);
  return { greetings };
}

// biome-ignore lint/correctness/useYield: a generator function, as the SDK registers it, that fails at once.
function* refuse(_ctx, why) {
  throw new Error(`refused: ${why}`);
}

try {
  const { resonate, sse } = await connect();
  resonate.register("add", add);
  resonate.register("greetAll", greetAll);
  resonate.register("refuse", refuse);
  emit("ready", { sse });
  process.on("SIGTERM", async () => {
    await resonate.stop().catch(() => {});
    process.exit(0);
  });
} catch (err) {
  fail(err);
}
