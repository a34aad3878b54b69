// A Pledge caller that is not a worker of what it calls:
// `rpc(id, func, ...args, options({ target }))`; prints `result` with the value,
// or `rejected` with the error the call rejected with.
//
// argv: <id> <target group> <func> <json args>; env: PLEDGE_URL, GROUP
import { emit, fail, loadPledge } from "./common.mjs";

const Pledge = await loadPledge();

const [id, target, func, argsJson] = process.argv.slice(2);
const args = JSON.parse(argsJson ?? "[]");

try {
  const pledge = new Pledge({ url: process.env.PLEDGE_URL, group: process.env.GROUP ?? "caller" });
  emit("ready");
  const started = Date.now();
  const outcome = await pledge.rpc(id, func, ...args, pledge.options({ target })).then(
    (result) => ({ event: "result", result }),
    (err) => ({ event: "rejected", name: err?.name, message: err?.message, isError: err instanceof Error }),
  );
  const { event, ...fields } = outcome;
  emit(event, { ...fields, elapsedMs: Date.now() - started });
  await pledge.stop();
  process.exit(0);
} catch (err) {
  fail(err);
}
