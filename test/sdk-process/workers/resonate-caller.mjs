// A caller written with the official SDK: `beginRpc(id, func, ...args,
// options({ target }))`, then `handle.result()`; prints `result` with the value,
// or `rejected` with the error it rejected with.
//
// argv: <id> <target group> <func> <json args>; env as resonate.mjs
import { connect, emit, fail } from "./resonate.mjs";

const [id, target, func, argsJson] = process.argv.slice(2);
const args = JSON.parse(argsJson ?? "[]");

try {
  const { resonate, sse } = await connect();
  emit("ready", { sse });
  const started = Date.now();
  const handle = await resonate.beginRpc(id, func, ...args, resonate.options({ target }));
  const outcome = await handle.result().then(
    (result) => ({ event: "result", result }),
    (err) => ({ event: "rejected", name: err?.name, message: err?.message, isError: err instanceof Error }),
  );
  const { event, ...fields } = outcome;
  emit(event, { ...fields, elapsedMs: Date.now() - started });
  await resonate.stop();
  process.exit(0);
} catch (err) {
  fail(err);
}
