/**
 * Plumbing for the process-level SDK tests: child processes whose `@@{json}`
 * stdout lines are events, `pledge serve` on a free port, journals, and
 * diagnostics attached to every failure. Every process started here is killed
 * by `killAll()` (the test files call it in afterEach/afterAll).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, "../..");
/** The builds under test; PLEDGE_SDK_CLI / PLEDGE_SDK_ENTRY name others (e.g. a patched copy of dist/). */
export const CLI = process.env.PLEDGE_SDK_CLI ?? join(ROOT, "dist/cli/main.js");
export const ENTRY = process.env.PLEDGE_SDK_ENTRY ?? join(ROOT, "dist/index.js");
export const WORKERS = join(HERE, "workers");

export interface Event {
  event: string;
  pid: number;
  [key: string]: unknown;
}

interface Waiter {
  pred: (e: Event) => boolean;
  resolve: (e: Event) => void;
}

type ExitInfo = { code: number | null; signal: NodeJS.Signals | null };

/** A child process whose `@@{json}` stdout lines are parsed into events. */
export class Proc {
  readonly output: string[] = [];
  readonly events: Event[] = [];
  readonly exited: Promise<ExitInfo>;
  exitInfo: ExitInfo | undefined;
  private waiters: Waiter[] = [];
  private exitListeners: (() => void)[] = [];

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolveExit) => {
      child.on("exit", (code, signal) => {
        this.exitInfo = { code, signal };
        this.output.push(`[exit code=${code} signal=${signal}]`);
        for (const l of this.exitListeners) l();
        resolveExit({ code, signal });
      });
    });
    this.pipe(child.stdout, "out");
    this.pipe(child.stderr, "err");
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  private pipe(stream: NodeJS.ReadableStream | null, tag: string): void {
    if (!stream) return;
    let buf = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        this.line(buf.slice(0, nl), tag);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
      }
    });
  }

  private line(text: string, tag: string): void {
    this.output.push(`${tag}| ${text}`);
    if (this.output.length > 400) this.output.splice(0, this.output.length - 400);
    if (tag !== "out" || !text.startsWith("@@")) return;
    let e: Event;
    try {
      e = JSON.parse(text.slice(2)) as Event;
    } catch {
      return;
    }
    this.events.push(e);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(e)) return true;
      w.resolve(e);
      return false;
    });
  }

  /** The first event (past or future) matching `pred`; rejects on an `error` event, on exit, or after `timeoutMs`. */
  waitFor(what: string, pred: (e: Event) => boolean, timeoutMs: number): Promise<Event> {
    return new Promise((resolveWait, rejectWait) => {
      const done = (err: Error | undefined, e?: Event) => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        this.exitListeners = this.exitListeners.filter((l) => l !== onExit);
        if (err) rejectWait(err);
        else resolveWait(e as Event);
      };
      const waiter: Waiter = {
        pred: (e) => pred(e) || e.event === "error",
        resolve: (e) =>
          e.event === "error" && !pred(e)
            ? done(
                new Error(`${this.name} reported an error while waiting for ${what}: ${String(e.message)}`),
              )
            : done(undefined, e),
      };
      const onExit = () => {
        // Let the last stdout chunk be parsed before giving up.
        setTimeout(
          () => done(new Error(`${this.name} exited (${JSON.stringify(this.exitInfo)}) before ${what}`)),
          50,
        );
      };
      const timer = setTimeout(
        () => done(new Error(`timed out after ${timeoutMs} ms waiting for ${this.name}: ${what}`)),
        timeoutMs,
      );
      const past = this.events.find(waiter.pred);
      if (past) {
        waiter.resolve(past);
        return;
      }
      this.waiters.push(waiter);
      if (this.exitInfo) onExit();
      else this.exitListeners.push(onExit);
    });
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.exitInfo) return;
    this.child.kill(signal);
    await this.exited;
  }
}

const procs = new Set<Proc>();

/** Starts `node <script> ...args` (a worker script, or the CLI when `script` is absolute). */
export function spawnNode(
  name: string,
  script: string,
  args: string[],
  env: Record<string, string> = {},
): Proc {
  const path = script.startsWith("/") ? script : join(WORKERS, script);
  const child = spawn(process.execPath, [path, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const p = new Proc(name, child);
  procs.add(p);
  return p;
}

/** SIGKILLs every process started by `spawnNode` that is still running, except `keep`. */
export async function killAll(keep: ReadonlySet<Proc> = new Set()): Promise<void> {
  const doomed = [...procs].filter((p) => !keep.has(p));
  await Promise.all(doomed.map((p) => p.kill("SIGKILL")));
  for (const p of doomed) procs.delete(p);
}

/** Everything the processes printed, for failure messages. */
export function diagnostics(): string {
  return [...procs]
    .map((p) => `--- ${p.name} (pid ${p.pid}) ---\n${p.output.slice(-60).join("\n")}`)
    .join("\n");
}

/** Awaits `promise`; on failure rethrows with the processes' output attached. */
export async function withDiagnostics<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`${message}\n${diagnostics()}`);
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, rejectPort) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", rejectPort);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

export function uid(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

export function requireBuild(): void {
  for (const file of [CLI, ENTRY])
    if (!existsSync(file)) throw new Error(`${file} does not exist: run \`npm run build\` first`);
}

// --- journals ------------------------------------------------------------------------------

export interface JournalLine {
  step: number;
  pid: number;
  /** When the step started (ms since the epoch). */
  at: number;
}

/** The `start <step> <pid> <ms>` lines of a journal (none if it does not exist yet). */
export function readJournal(path: string): JournalLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("start "))
    .map((l) => {
      const [, step, pid, at] = l.split(" ");
      return { step: Number(step), pid: Number(pid), at: Number(at) };
    });
}

/** Polls the journal every 5 ms until `pred` holds; rejects if `proc` exits first or after `timeoutMs`. */
export async function watchJournal(
  path: string,
  pred: (lines: JournalLine[]) => boolean,
  proc: Proc,
  timeoutMs: number,
): Promise<JournalLine[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = readJournal(path);
    if (pred(lines)) return lines;
    if (proc.exitInfo) throw new Error(`${proc.name} exited (${JSON.stringify(proc.exitInfo)}) first`);
    if (Date.now() > deadline) throw new Error(`journal ${path}: condition not met within ${timeoutMs} ms`);
    await sleep(5);
  }
}

/** How many times each step started. */
export function startsPerStep(lines: JournalLine[], steps: number): number[] {
  const counts = Array.from({ length: steps }, () => 0);
  for (const { step } of lines) counts[step - 1] = (counts[step - 1] ?? 0) + 1;
  return counts;
}

// --- pledge serve --------------------------------------------------------------------------

export interface Server {
  proc: Proc;
  url: string;
  dir: string;
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
    await sleep(50);
  }
  throw new Error(`pledge serve did not answer GET /health within ${timeoutMs} ms`);
}

/** `pledge serve --port <free> --store sqlite:<tmp>/s.db --retry-timeout 1s`, healthy. */
export async function startServer(): Promise<Server> {
  requireBuild();
  const dir = tempDir("pledge-sdk-process-");
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawnNode("pledge serve", CLI, [
    "serve",
    "--port",
    String(port),
    "--store",
    `sqlite:${join(dir, "s.db")}`,
    "--retry-timeout",
    "1s",
    "--log-level",
    "warn",
  ]);
  await withDiagnostics(waitForHealth(url, proc, 15_000));
  return { proc, url, dir };
}

/** SIGTERM, a second SIGTERM after 1 s (exit at once), SIGKILL after 3 s. */
export async function stopServer(server: Server | undefined): Promise<void> {
  if (server === undefined) return;
  const s = server.proc;
  if (!s.exitInfo) {
    s.child.kill("SIGTERM");
    const again = setTimeout(() => s.child.kill("SIGTERM"), 1000);
    const forced = setTimeout(() => s.child.kill("SIGKILL"), 3000);
    await s.exited;
    clearTimeout(again);
    clearTimeout(forced);
  }
  procs.delete(s);
  removeDir(server.dir);
}

/** One protocol request to `url` (PROTOCOL.md envelope); answers `{ status, data }`. */
export async function protocol(
  url: string,
  kind: string,
  data: unknown,
): Promise<{ status: number; data: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ kind, head: { corrId: uid("t"), version: "2026-04-01" }, data }),
  });
  const body = (await res.json()) as { head: { status: number }; data: Record<string, unknown> };
  return { status: body.head.status, data: body.data };
}

export interface StoredPromise {
  id: string;
  state: string;
  param: { headers?: Record<string, string>; data?: string };
  value: { headers?: Record<string, string>; data?: string };
  tags: Record<string, string>;
}

/** `promise.get` over HTTP. */
export async function getPromise(url: string, id: string): Promise<StoredPromise> {
  const answer = await protocol(url, "promise.get", { id });
  if (answer.status !== 200)
    throw new Error(`promise.get ${id}: ${answer.status} ${JSON.stringify(answer.data)}`);
  return answer.data.promise as StoredPromise;
}

/** PROTOCOL.md "Pledge's decisions": `data` is base64 of JSON text ("" or absent: undefined). */
export function decodeData(data: string | undefined): unknown {
  if (data === undefined || data === "") return undefined;
  return JSON.parse(Buffer.from(data, "base64").toString("utf8"));
}
