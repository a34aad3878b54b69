/**
 * One remote worker of `npm run bench:sdk --mode remote` (bench/sdk.ts): one
 * Pledge client per list of replica URLs its loops are given (bench/sdk.ts,
 * `--balance`), running sdk-load.ts's closed loops when the parent says so and
 * answering its figures over IPC.
 *
 * argv[2]: JSON `{ loops, prefix }`, `loops` the replica URLs of each closed loop's
 * client. Messages: ready → (run) → result | failed; then (close) → closed.
 */
import { Pledge } from "../../src/index.js";
import { type LoadResult, type LoadWindow, register, runLoad } from "./sdk-load.js";

export type WorkerMessage =
  | { type: "ready" }
  | { type: "result"; result: LoadResult }
  | { type: "failed"; message: string }
  | { type: "closed" };

export type WorkerCommand = ({ type: "run" } & LoadWindow) | { type: "close" };

const settings = JSON.parse(process.argv[2] ?? "{}") as { loops: string[][]; prefix: string };
const clients = new Map<string, Pledge>();
const loops = settings.loops.map((urls) => {
  const key = urls.join(" ");
  let pledge = clients.get(key);
  if (pledge === undefined) {
    pledge = new Pledge({ url: urls, group: "bench", concurrency: 1024 });
    register(pledge);
    clients.set(key, pledge);
  }
  return pledge;
});

function send(message: WorkerMessage): void {
  process.send?.(message);
}

process.on("message", (command: WorkerCommand) => {
  if (command.type === "run") {
    runLoad(loops, { ...command, prefix: settings.prefix }).then(
      (result) => send({ type: "result", result }),
      (error: unknown) =>
        send({ type: "failed", message: error instanceof Error ? error.message : String(error) }),
    );
  } else if (command.type === "close") {
    void Promise.all([...clients.values()].map((pledge) => pledge.stop())).finally(() => {
      send({ type: "closed" });
      process.disconnect();
      // Exit now rather than on the parent's SIGTERM, so a CPU profile (PLEDGE_BENCH_PROFILE) is written.
      process.exit(0);
    });
  }
});
send({ type: "ready" });
process.on("SIGTERM", () => process.exit(0));
