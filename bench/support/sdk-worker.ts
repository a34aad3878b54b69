/**
 * One remote worker of `npm run bench:sdk --mode remote` (bench/sdk.ts): a Pledge
 * client per server replica it is given, running sdk-load.ts's closed loop over
 * them when the parent says so and answering its figures over IPC.
 *
 * argv[2]: JSON `{ urls, concurrency, prefix }`. Messages: ready → (run) → result
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

const settings = JSON.parse(process.argv[2] ?? "{}") as {
  urls: string[];
  concurrency: number;
  prefix: string;
};
const pledges = settings.urls.map((url) => new Pledge({ url, group: "bench", concurrency: 1024 }));
for (const pledge of pledges) register(pledge);

function send(message: WorkerMessage): void {
  process.send?.(message);
}

process.on("message", (command: WorkerCommand) => {
  if (command.type === "run") {
    runLoad(pledges, { ...command, concurrency: settings.concurrency, prefix: settings.prefix }).then(
      (result) => send({ type: "result", result }),
      (error: unknown) =>
        send({ type: "failed", message: error instanceof Error ? error.message : String(error) }),
    );
  } else if (command.type === "close") {
    void Promise.all(pledges.map((pledge) => pledge.stop())).finally(() => {
      send({ type: "closed" });
      process.disconnect();
      // Exit now rather than on the parent's SIGTERM, so a CPU profile (PLEDGE_BENCH_PROFILE) is written.
      process.exit(0);
    });
  }
});
send({ type: "ready" });
process.on("SIGTERM", () => process.exit(0));
