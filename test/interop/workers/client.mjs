// A client that is not a worker of the function it calls: `resonate.rpc`
// creates the root promise targeted at a group (promise.create), registers a
// listener on it with its own unicast address and waits for the `unblock`.
//
// argv: <root id> <target group> <function> <json args>
import { connect, emit, fail } from "./common.mjs";

const [id, target, func, argsJson] = process.argv.slice(2);
const args = JSON.parse(argsJson ?? "[]");

try {
  const { resonate, sse } = await connect();
  emit("ready", { sse });
  const started = Date.now();
  const result = await resonate.rpc(id, func, ...args, resonate.options({ target }));
  emit("result", { result, elapsedMs: Date.now() - started });
  await resonate.stop();
  process.exit(0);
} catch (err) {
  fail(err);
}
