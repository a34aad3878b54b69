// Embedded mode: `new Pledge({ store: "sqlite:<path>" })` runs the recovery
// workload in this process and prints its result. Run it again on the same file
// after a SIGKILL and it joins (and resumes) the same execution.
//
// argv: <store> <journal dir> <wfAsync|wfGen> <id> <steps>
import { emit, fail, loadPledge, workload } from "./common.mjs";

const Pledge = await loadPledge();

const [store, journalDir, func, id, steps] = process.argv.slice(2);

try {
  const started = Date.now();
  const pledge = new Pledge({ store });
  const { wfAsync, wfGen } = workload(journalDir);
  pledge.register("wfAsync", wfAsync);
  pledge.register("wfGen", wfGen);
  emit("ready");
  const result = await pledge.run(id, func, Number(steps));
  emit("result", { result, elapsedMs: Date.now() - started });
  await pledge.stop();
  process.exit(0);
} catch (err) {
  fail(err);
}
