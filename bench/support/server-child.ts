/**
 * The server side of `--mode remote`: starts one target (as `embedded` would)
 * in its own process and answers the parent over IPC (targets.ts).
 */
import { type ChildMessage, type ParentMessage, startEmbedded, type TargetOptions } from "./targets.js";

function send(message: ChildMessage): void {
  process.send?.(message);
}

const options = JSON.parse(process.argv[2] ?? "{}") as TargetOptions;
try {
  const target = await startEmbedded(options);
  process.on("message", (message: ParentMessage) => {
    if (message.type === "counters") {
      void target.counters().then((counters) => send({ type: "counters", counters }));
    } else if (message.type === "close") {
      void target.close().then(() => {
        send({ type: "closed" });
        process.disconnect();
      });
    }
  });
  send({ type: "ready", url: target.url, synchronous: target.synchronous });
} catch (error) {
  send({ type: "failed", message: error instanceof Error ? error.message : String(error) });
  process.exitCode = 1;
  process.disconnect();
}
