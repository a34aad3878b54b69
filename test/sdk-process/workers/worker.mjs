// A remote Pledge worker: `new Pledge({ url, group, pid, ttl })` serving until
// killed or SIGTERMed:
//  - the recovery workload `wfAsync` / `wfGen` (journal in JOURNAL_DIR),
//  - `greet(ctx, name)`: one ctx.run step,
//  - `sumVia(ctx, pairs, target)`: fans out `add(a, b)` with ctx.beginRpc to
//    another group (a worker of the official SDK in the cross-SDK tests),
//  - `refuse(ctx, why)`: throws, so its promise is rejected.
//
// env: PLEDGE_URL, GROUP, PID (optional), TTL_MS, JOURNAL_DIR
import { emit, fail, loadPledge, workload } from "./common.mjs";

const Pledge = await loadPledge();

try {
  const pledge = new Pledge({
    url: process.env.PLEDGE_URL,
    group: process.env.GROUP ?? "default",
    ...(process.env.PID ? { pid: process.env.PID } : {}),
    ttl: Number(process.env.TTL_MS ?? 2000),
  });
  const { wfAsync, wfGen } = workload(process.env.JOURNAL_DIR ?? "/tmp");
  pledge.register("wfAsync", wfAsync);
  pledge.register("wfGen", wfGen);

  async function compose(_ctx, who) {
    emit("step", { name: "compose", who });
    return `Hello, ${who}!`;
  }

  async function greet(ctx, name) {
    const greeting = await ctx.run(compose, name);
    return { greeting, by: "pledge", id: ctx.id };
  }
  pledge.register("greet", greet);

  async function sumVia(ctx, pairs, target) {
    const calls = pairs.map(([a, b]) => ctx.beginRpc("add", a, b, ctx.options({ target })));
    const results = await Promise.all(calls);
    return { results, total: results.reduce((n, r) => n + r.sum, 0) };
  }
  pledge.register("sumVia", sumVia);

  async function refuse(_ctx, why) {
    throw new Error(`refused: ${why}`);
  }
  pledge.register("refuse", refuse);

  emit("ready");
  process.on("SIGTERM", async () => {
    await pledge.stop().catch(() => {});
    process.exit(0);
  });
} catch (err) {
  fail(err);
}
