/**
 * Interop: the official TypeScript SDK (@resonatehq/sdk 0.11.5) against a real
 * `pledge serve` (SQLite store). Workers and clients are separate `node`
 * processes (test/interop/workers/*.mjs) so that one can be SIGKILLed. What the
 * SDK puts on the wire is described in docs/interop.md.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { freePort, Proc, uid } from "../sdk-process/harness.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "../..");
// PLEDGE_INTEROP_CLI runs the suite against another build of the CLI.
const CLI = process.env.PLEDGE_INTEROP_CLI ?? join(ROOT, "dist/cli/main.js");
const WORKERS = join(HERE, "workers");
const LEASE_MS = 2000;

let dataDir = "";
let serverUrl = "";
let server: Proc | undefined;
const procs = new Set<Proc>();

function spawnScript(name: string, script: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [join(WORKERS, script), ...args], {
    cwd: ROOT,
    env: { ...process.env, PLEDGE_URL: serverUrl, TTL_MS: String(LEASE_MS), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const p = new Proc(name, child);
  procs.add(p);
  return p;
}

/** Everything the processes printed, for failure messages. */
function diagnostics(): string {
  const all = [...(server ? [server] : []), ...procs];
  return all.map((p) => `--- ${p.name} ---\n${p.output.slice(-60).join("\n")}`).join("\n");
}

/** Awaits `promise`; on failure rethrows with the processes' output attached. */
async function withDiagnostics<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`${message}\n${diagnostics()}`);
  }
}

async function waitForHealth(url: string, proc: Proc, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitInfo) throw new Error(`pledge serve exited early: ${JSON.stringify(proc.exitInfo)}`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`pledge serve did not answer GET /health within ${timeoutMs} ms`);
}

let serverReady: Promise<void> | undefined;

/**
 * Starts one `pledge serve` for the whole file, on first use. Called from each
 * test (not from a beforeAll hook) so that a missing build or a server that does
 * not come up fails every test by name instead of marking them skipped.
 */
function ensureServer(): Promise<void> {
  serverReady ??= (async () => {
    if (!existsSync(CLI)) {
      throw new Error(`${CLI} does not exist: run \`npm run build\` before the interop tests`);
    }
    dataDir = mkdtempSync(join(tmpdir(), "pledge-interop-"));
    const port = await freePort();
    serverUrl = `http://127.0.0.1:${port}`;
    const child = spawn(
      process.execPath,
      [
        CLI,
        "serve",
        "--port",
        String(port),
        "--store",
        `sqlite:${join(dataDir, "p.db")}`,
        "--retry-timeout",
        "1s",
        "--log-level",
        "warn",
      ],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
    );
    server = new Proc("pledge serve", child);
    await withDiagnostics(waitForHealth(serverUrl, server, 15_000));
  })();
  return serverReady;
}

afterEach(async () => {
  await Promise.all([...procs].map((p) => p.kill("SIGKILL")));
  procs.clear();
});

afterAll(async () => {
  await Promise.all([...procs].map((p) => p.kill("SIGKILL")));
  procs.clear();
  if (server && !server.exitInfo) {
    // SIGTERM closes the server; a second one makes the CLI exit at once (it
    // lingered ~5 s after SDK traffic in early builds); SIGKILL as a last resort.
    const s = server;
    s.child.kill("SIGTERM");
    const again = setTimeout(() => s.child.kill("SIGTERM"), 1000);
    const forced = setTimeout(() => s.child.kill("SIGKILL"), 4000);
    await s.exited;
    clearTimeout(again);
    clearTimeout(forced);
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}, 10_000);

/** A server that died during a test (e.g. a fatal invariant) fails that test even if the SDK got its result. */
function expectServerAlive(): void {
  expect(server?.exitInfo, `pledge serve exited during the test\n${diagnostics()}`).toBeUndefined();
}

describe("@resonatehq/sdk 0.11.5 against pledge serve", () => {
  it("a countdown workflow of ctx.run steps and ctx.sleep timers returns the right result, each step run once", async () => {
    await ensureServer();
    const id = uid("countdown");
    const sleepMs = 200;
    const p = spawnScript("countdown", "countdown.mjs", [id, "3", String(sleepMs)], { GROUP: "default" });

    const result = await withDiagnostics(
      p.waitFor("the countdown result", (e) => e.event === "result", 20_000),
    );

    expect(result.result).toEqual({ ticks: ["T-3", "T-2", "T-1"], done: "liftoff" });
    // The sleeps really slept (three durable timers of 200 ms each)...
    expect(result.elapsedMs as number).toBeGreaterThanOrEqual(3 * sleepMs);
    // ...and replays after each resume reused the settled steps instead of rerunning them.
    expect(p.events.filter((e) => e.event === "tick").map((e) => e.n)).toEqual([3, 2, 1]);
    expectServerAlive();
  }, 30_000);

  it("a fan-out of ctx.rpc calls from a worker in group A to a worker in group B aggregates every result", async () => {
    await ensureServer();
    const groupA = uid("A");
    const groupB = uid("B");
    const b = spawnScript("worker-b", "worker-b.mjs", [], { GROUP: groupB, PID: "b-1" });
    const a = spawnScript("worker-a", "worker-a.mjs", [], { GROUP: groupA, PID: "a-1" });
    await withDiagnostics(
      Promise.all([
        b.waitFor("ready", (e) => e.event === "ready", 10_000),
        a.waitFor("ready", (e) => e.event === "ready", 10_000),
      ]),
    );

    const id = uid("fanout");
    const nums = [1, 2, 3, 4, 5];
    const client = spawnScript(
      "client",
      "client.mjs",
      [id, groupA, "fanout", JSON.stringify([nums, groupB])],
      {
        GROUP: uid("client"),
      },
    );
    const result = await withDiagnostics(
      client.waitFor("the fanout result", (e) => e.event === "result", 20_000),
    );

    expect(result.result).toEqual({ squares: [1, 4, 9, 16, 25], sum: 55 });
    // Every square was computed in group B, once.
    expect(
      b.events
        .filter((e) => e.event === "step")
        .map((e) => e.n as number)
        .sort((x, y) => x - y),
    ).toEqual(nums);
    expectServerAlive();
  }, 30_000);

  it("the fan-out still returns the right result when the group B worker is SIGKILLed mid-run and a new one starts", async () => {
    await ensureServer();
    const groupA = uid("A");
    const groupB = uid("B");
    const b1 = spawnScript("worker-b1", "worker-b.mjs", [], { GROUP: groupB, PID: "b-1", STEP_MS: "1500" });
    const a = spawnScript("worker-a", "worker-a.mjs", [], { GROUP: groupA, PID: "a-1" });
    await withDiagnostics(
      Promise.all([
        b1.waitFor("ready", (e) => e.event === "ready", 10_000),
        a.waitFor("ready", (e) => e.event === "ready", 10_000),
      ]),
    );

    const id = uid("fanout-kill");
    const nums = [1, 2, 3, 4, 5];
    const client = spawnScript(
      "client",
      "client.mjs",
      [id, groupA, "fanout", JSON.stringify([nums, groupB])],
      {
        GROUP: uid("client"),
      },
    );

    // Kill B while it is inside a step (the step takes 1.5 s), then start a replacement.
    await withDiagnostics(b1.waitFor("a square step to start", (e) => e.event === "step", 15_000));
    await b1.kill("SIGKILL");
    expect(b1.exitInfo?.signal).toBe("SIGKILL");
    const b2 = spawnScript("worker-b2", "worker-b.mjs", [], { GROUP: groupB, PID: "b-2", STEP_MS: "200" });

    const result = await withDiagnostics(
      client.waitFor("the fanout result", (e) => e.event === "result", 25_000),
    );

    expect(result.result).toEqual({ squares: [1, 4, 9, 16, 25], sum: 55 });
    // The killed worker finished nothing, so the replacement redid the interrupted work
    // after the leases (2 s) expired.
    expect(b2.events.filter((e) => e.event === "step").length).toBeGreaterThanOrEqual(1);
    expectServerAlive();
  }, 40_000);
});
