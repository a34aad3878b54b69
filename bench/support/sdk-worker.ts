/**
 * One remote worker of `npm run bench:sdk --mode remote` (bench/sdk.ts): one
 * Pledge client per server replica its loops are on, running sdk-load.ts's closed
 * loops when the parent says so and answering its figures over IPC.
 *
 * argv[2]: JSON `{ loops, prefix }`, `loops` the replica URL of each closed loop. Messages: ready → (run) → result
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

const settings = JSON.parse(process.argv[2] ?? "{}") as { loops: string[]; prefix: string };
const clients = new Map(
  [...new Set(settings.loops)].map((url) => [url, new Pledge({ url, group: "bench", concurrency: 1024 })]),
);
for (const pledge of clients.values()) register(pledge);
const loops = settings.loops.map((url) => clients.get(url) as Pledge);

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
