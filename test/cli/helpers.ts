/**
 * Runs the built `pledge` (dist/cli/main.js) as a child process. The tests run a
 * server in this process, so children are always spawned asynchronously: a
 * synchronous spawn would block the event loop the server answers on.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, readdirSync, rmdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");
export const MAIN = join(ROOT, "dist/cli/main.js");

export interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function newestSourceMs(directory: string): number {
  let newest = 0;
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMs(path));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")) {
      newest = Math.max(newest, statSync(path).mtimeMs);
    }
  }
  return newest;
}

function isBuilt(): boolean {
  try {
    return statSync(MAIN).mtimeMs >= newestSourceMs(join(ROOT, "src"));
  } catch {
    return false;
  }
}

/**
 * Builds dist/ when it is missing or older than src/ (`npm test` has normally just
 * built it). Test files run in parallel, so one builds under a lock and the others wait.
 */
export async function ensureBuilt(): Promise<void> {
  const lock = join(tmpdir(), `pledge-cli-build-${Buffer.from(ROOT).toString("hex").slice(-32)}.lock`);
  const deadline = Date.now() + 120_000;
  while (!isBuilt()) {
    try {
      mkdirSync(lock);
    } catch {
      if (Date.now() > deadline)
        throw new Error(`waited too long for ${lock}; remove it if no build is running`);
      await new Promise((done) => setTimeout(done, 250));
      continue;
    }
    try {
      if (!isBuilt()) {
        try {
          execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: ROOT, stdio: "pipe" });
        } catch (error) {
          // tsc emits despite type errors elsewhere in the tree; only a missing CLI is fatal.
          statSync(MAIN);
          const output = (error as { stdout?: Buffer }).stdout?.toString() ?? "";
          console.warn(`npm run build reported errors; testing what it emitted:\n${output}`);
        }
      }
    } finally {
      rmdirSync(lock);
    }
    return;
  }
}

/** Spawns `node dist/cli/main.js ...args`; resolves when it exits. */
export function pledge(
  args: readonly string[],
  options: { env?: Record<string, string | undefined>; timeoutMs?: number } = {},
): Promise<Outcome> {
  const child = start(args, options.env);
  return finished(child, options.timeoutMs ?? 20_000);
}

/** Spawns `node dist/cli/main.js ...args` and leaves it running. */
export function start(args: readonly string[], env: Record<string, string | undefined> = {}): ChildProcess {
  const childEnv: Record<string, string | undefined> = { ...process.env };
  // The tests decide the connection; a developer's own PLEDGE_* must not leak in.
  for (const name of Object.keys(childEnv)) if (name.startsWith("PLEDGE_")) delete childEnv[name];
  return spawn(process.execPath, [MAIN, ...args], {
    cwd: ROOT,
    env: { ...childEnv, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

export function finished(child: ChildProcess, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolvePromise, reject) => {
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`pledge did not exit within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/** Resolves with the first stdout line matching `pattern`, or rejects after `timeoutMs`. */
export function waitForLine(
  child: ChildProcess,
  pattern: RegExp,
  timeoutMs: number,
): Promise<RegExpExecArray> {
  return new Promise((resolvePromise, reject) => {
    let buffer = "";
    let stderr = "";
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString();
      const match = pattern.exec(buffer);
      if (match !== null) {
        cleanup();
        resolvePromise(match);
      }
    };
    const onError = (chunk: Buffer): void => {
      stderr += chunk.toString();
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(
        new Error(`pledge exited (${code}) before printing ${pattern}; stdout: ${buffer}; stderr: ${stderr}`),
      );
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(
        new Error(`no line matching ${pattern} within ${timeoutMs} ms; stdout: ${buffer}; stderr: ${stderr}`),
      );
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onError);
      child.off("exit", onExit);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onError);
    child.on("exit", onExit);
  });
}

/** A stderr that is exactly one line starting `pledge: `. */
export const ONE_LINE_REASON = /^pledge: [^\n]+\n$/;
