// Shared plumbing for the interop worker/client scripts. Each script is run with
// plain `node` and talks to the server under test through the official SDK.
//
// Environment:
//   PLEDGE_URL      base URL of the server (required)
//   GROUP           worker group (default "default")
//   PID             process id (default: SDK's random one)
//   TTL_MS          task lease in ms (default 2000)
//   SDK_LOG_LEVEL   SDK ConsoleLogger level (default "warn"; "debug" logs every request)
//
// Lines meant for the test are written to stdout as `@@{json}`; everything else
// (SDK logs) is noise to the test and only shown when something fails.
import "./polyfill.mjs";

const { Resonate } = await import("@resonatehq/sdk");

export function emit(event, fields = {}) {
  process.stdout.write(`@@${JSON.stringify({ event, pid: process.pid, ...fields })}\n`);
}

export function fail(err) {
  const message = err instanceof Error ? `${err.name}: ${err.message}` : JSON.stringify(err);
  emit("error", { message });
  process.exit(1);
}

process.on("unhandledRejection", (err) => {
  process.stderr.write(`unhandledRejection: ${err instanceof Error ? err.stack : String(err)}\n`);
});

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Creates a Resonate instance from the environment and waits for its SSE stream to open. */
export async function connect() {
  const url = process.env.PLEDGE_URL;
  if (!url) fail(new Error("PLEDGE_URL is not set"));
  const resonate = new Resonate({
    url,
    group: process.env.GROUP ?? "default",
    pid: process.env.PID || undefined,
    ttl: Number(process.env.TTL_MS ?? 2000),
    logLevel: process.env.SDK_LOG_LEVEL ?? "warn",
  });
  // The SDK opens GET /poll/{group}/{pid} asynchronously in its constructor and
  // exposes no "connected" signal; peek at its EventSource (internal, test only)
  // so that the test does not race the first dispatch. If the peek ever breaks,
  // fall through after 5 s: the server's retry timer re-sends executes anyway.
  const deadline = Date.now() + 5000;
  let sse = "unknown";
  while (Date.now() < deadline) {
    const state = resonate.network?.adapter?.eventSource?.readyState;
    if (state === 1) {
      sse = "open";
      break;
    }
    if (state === undefined) break;
    await sleep(20);
  }
  return { resonate, sse };
}
