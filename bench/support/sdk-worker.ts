/**
 * One remote worker of `npm run bench:sdk --mode remote` (bench/sdk.ts): a Pledge
 * instance connected to one server replica, running sdk-load.ts's closed loop
 * when the parent says so and answering its figures over IPC.
 *
 * argv[2]: JSON `{ url, concurrency, prefix }`. Messages: ready → (run) → result
 * | failed; then (close) → closed.
 */
import { Pledge } from "../../src/index.js";
import { type LoadResult, type LoadWindow, register, runLoad } from "./sdk-load.js";

export type WorkerMessage =
  | { type: "ready" }
  | { type: "result"; result: LoadResult }
  | { type: "failed"; message: string }
  | { type: "closed" };

export type WorkerCommand = ({ type: "run" } & LoadWindow) | { type: "close" };

const settings = JSON.parse(process.argv[2] ?? "{}") as { url: string; concurrency: number; prefix: string };
const pledge = new Pledge({ url: settings.url, group: "bench", concurrency: 1024 });
register(pledge);

function send(message: WorkerMessage): void {
  process.send?.(message);
}

process.on("message", (command: WorkerCommand) => {
  if (command.type === "run") {
    runLoad(pledge, { ...command, concurrency: settings.concurrency, prefix: settings.prefix }).then(
      (result) => send({ type: "result", result }),
      (error: unknown) =>
        send({ type: "failed", message: error instanceof Error ? error.message : String(error) }),
    );
  } else if (command.type === "close") {
    void pledge.stop().finally(() => {
      send({ type: "closed" });
      process.disconnect();
      // Exit now rather than on the parent's SIGTERM, so a CPU profile (PLEDGE_BENCH_PROFILE) is written.
      process.exit(0);
    });
  }
});
send({ type: "ready" });
process.on("SIGTERM", () => process.exit(0));
