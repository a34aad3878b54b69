// A remote Pledge worker for the replica test: `new Pledge({ url, group, ttl })`
// serving until killed.
//  - `wf(ctx, n)`: three ctx.run steps, a ctx.rpc of `sub` (same group), one more step;
//  - `sub(ctx, x)`: two ctx.run steps.
// Each step appends `start <wf|sub>:<i> <pid> <epoch ms>` to `<JOURNAL_DIR>/<origin>.journal`
// before it works (appendFileSync: on disk even if the process is then killed).
//
// env: PLEDGE_URL, GROUP, TTL_MS, JOURNAL_DIR, STEP_MS
import { appendFileSync } from "node:fs";
import { join } from "node:path";

const emit = (event, fields = {}) =>
  process.stdout.write(`@@${JSON.stringify({ event, pid: process.pid, ...fields })}\n`);

process.on("unhandledRejection", (err) => {
  process.stderr.write(`unhandledRejection: ${err instanceof Error ? err.stack : String(err)}\n`);
});

try {
  const { Pledge } = await import("../../../dist/index.js");
  const dir = process.env.JOURNAL_DIR;
  const stepMs = Number(process.env.STEP_MS ?? 150);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function step(ctx, name, i, acc) {
    appendFileSync(
      join(dir, `${ctx.info.origin}.journal`),
      `start ${name}:${i} ${process.pid} ${Date.now()}\n`,
    );
    await sleep(stepMs);
    return (acc * 31 + i * i) % 1_000_003;
  }

  async function sub(ctx, x) {
    let acc = x;
    for (let i = 1; i <= 2; i++) acc = await ctx.run(step, "sub", i, acc);
    return acc;
  }

  async function wf(ctx, n) {
    let acc = n;
    for (let i = 1; i <= 3; i++) acc = await ctx.run(step, "wf", i, acc);
    const fromSub = await ctx.rpc("sub", acc);
    acc = await ctx.run(step, "wf", 4, fromSub);
    return { n, acc };
  }

  const pledge = new Pledge({
    url: process.env.PLEDGE_URL,
    group: process.env.GROUP ?? "w",
    ttl: Number(process.env.TTL_MS ?? 2000),
  });
  pledge.register("wf", wf);
  pledge.register("sub", sub);
  emit("ready");
} catch (err) {
  emit("error", {
    message: err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err),
  });
  process.exit(1);
}
