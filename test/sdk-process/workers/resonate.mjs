// The official SDK (@resonatehq/sdk 0.11.5) on Node 20: the polyfill first, then
// the SDK, then a Resonate instance on PLEDGE_URL that has opened its poll stream.
//
// env: PLEDGE_URL, GROUP, PID (optional), TTL_MS, SDK_LOG_LEVEL
import "./polyfill.mjs";
import { emit, fail, sleep } from "./common.mjs";

const { Resonate } = await import("@resonatehq/sdk");

export { emit, fail, sleep };

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
  // The SDK opens GET /poll/{group}/{pid} in the background with no "connected"
  // signal; peek at its EventSource (internal, test only) so a dispatch is not
  // raced. Falls through after 5 s: the server re-sends executes anyway.
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
