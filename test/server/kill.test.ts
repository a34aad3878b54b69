/**
 * Process-level crash tests (STYLE practice 12): a real `pledge serve` on a
 * SQLite file, SIGKILLed while clients write, then started again on the same
 * file. A write answered 200 was committed (the processor answers only after the
 * batch's commit), so it must be there after the restart, whatever the kill
 * interrupted. Needs `npm run build` (dist/cli/main.js).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, test } from "vitest";
import { call, cleanUp, freePort, type Json, ok, sleep, temporaryDirectory } from "./helpers.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CLI = join(ROOT, "dist/cli/main.js");

/** A `pledge serve` child and everything it printed, for failure messages. */
class ServerProcess {
  readonly output: string[] = [];
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {
    this.exited = new Promise((resolveExit) => {
      child.on("exit", (code, signal) => {
        this.exit = { code, signal };
        resolveExit(this.exit);
      });
    });
    for (const [stream, tag] of [
      [child.stdout, "out"],
      [child.stderr, "err"],
    ] as const) {
      stream?.setEncoding("utf8");
      stream?.on("data", (text: string) => this.output.push(`${tag}| ${text.trimEnd()}`));
    }
  }

  get log(): string {
    return this.output.join("\n");
  }

  async kill(): Promise<void> {
    if (this.exit === undefined) this.child.kill("SIGKILL");
    await this.exited;
  }
}

const children = new Set<ServerProcess>();

function spawnServe(database: string, port: number): ServerProcess {
  if (!existsSync(CLI)) throw new Error(`${CLI} does not exist: run \`npm run build\` before the kill tests`);
  const child = spawn(
    process.execPath,
    [CLI, "serve", "--port", String(port), "--store", `sqlite:${database}`, "--log-level", "warn"],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  const server = new ServerProcess(child, `http://127.0.0.1:${port}`);
  children.add(server);
  return server;
}

/** Waits until `GET /health` answers 200; fails at once if the process exits. */
async function waitForHealth(server: ServerProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.exit !== undefined)
      throw new Error(`pledge serve exited early (${JSON.stringify(server.exit)}):\n${server.log}`);
    try {
      const response = await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(1000) });
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(25);
  }
  throw new Error(`pledge serve did not answer /health within ${timeoutMs} ms:\n${server.log}`);
}

async function startServe(database: string): Promise<ServerProcess> {
  const server = spawnServe(database, await freePort());
  await waitForHealth(server);
  return server;
}

afterEach(async () => {
  await Promise.all([...children].map((child) => child.kill()));
  children.clear();
});
afterAll(cleanUp);

const WRITERS = 8;
const FAR = 4_000_000_000_000;

describe("SIGKILL", () => {
  test("every promise.create answered 200 before a SIGKILL is readable, unchanged, after a restart on the same file", async () => {
    const database = join(temporaryDirectory("pledge-kill-"), "p.db");
    const first = await startServe(database);

    const acknowledged = new Map<string, Json>();
    const attempted = new Set<string>();
    let killed = false;
    let counter = 0;
    const writer = async (writerIndex: number): Promise<void> => {
      while (!killed) {
        counter += 1;
        const id = `kill-${writerIndex}-${counter}`;
        attempted.add(id);
        try {
          const response = await fetch(`${first.url}/`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              kind: "promise.create",
              head: { corrId: id, version: "2026-04-01" },
              data: {
                id,
                timeoutAt: FAR,
                param: { data: Buffer.from(JSON.stringify({ id })).toString("base64") },
                tags: { writer: String(writerIndex) },
              },
            }),
            signal: AbortSignal.timeout(5000),
          });
          const body = await response.json();
          if (response.status !== 200)
            throw new Error(`promise.create ${id} answered ${response.status}: ${JSON.stringify(body)}`);
          acknowledged.set(id, body.data.promise);
        } catch (error) {
          if (killed) return; // the server died under this request: not acknowledged
          throw error;
        }
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, index) => writer(index));
    await sleep(1500);
    killed = true;
    first.child.kill("SIGKILL");
    expect((await first.exited).signal).toBe("SIGKILL");
    await Promise.all(writers);
    expect(acknowledged.size, first.log).toBeGreaterThan(50);

    const second = await startServe(database);
    const missing: string[] = [];
    const changed: string[] = [];
    const ids = [...acknowledged.keys()];
    for (let offset = 0; offset < ids.length; offset += 64) {
      const slice = ids.slice(offset, offset + 64);
      const reads = await Promise.all(slice.map((id) => call(second.url, "promise.get", { id })));
      for (const [index, read] of reads.entries()) {
        const id = slice[index] as string;
        if (read.httpStatus !== 200) missing.push(`${id}: ${read.httpStatus}`);
        else if (JSON.stringify(read.data.promise) !== JSON.stringify(acknowledged.get(id))) changed.push(id);
      }
    }
    expect(missing, second.log).toStrictEqual([]);
    expect(changed).toStrictEqual([]);

    // Writes that were in flight may or may not have committed, but never half: present means whole.
    for (const id of attempted) {
      if (acknowledged.has(id)) continue;
      const read = await call(second.url, "promise.get", { id });
      expect([200, 404]).toContain(read.httpStatus);
      if (read.httpStatus === 200)
        expect(read.data.promise).toMatchObject({ id, state: "pending", timeoutAt: FAR });
    }

    // The restarted server takes new writes.
    await ok(second.url, "promise.create", { id: "after-restart", timeoutAt: FAR });
  });

  test("a server killed while owning its file leaves a lock that the next server takes over", async () => {
    const database = join(temporaryDirectory("pledge-kill-"), "p.db");
    const first = await startServe(database);
    await ok(first.url, "promise.create", { id: "before-kill", timeoutAt: FAR });
    await first.kill();
    expect(first.exit?.signal).toBe("SIGKILL");
    // The dead owner's record is still there (src/store/sqlite/sqlite-store.ts, "Ownership"): the lock is stale.
    expect(existsSync(`${database}.lock`)).toBe(true);

    const second = await startServe(database);
    expect((await fetch(`${second.url}/ready`)).status).toBe(200);
    expect((await ok(second.url, "promise.get", { id: "before-kill" })).promise.state).toBe("pending");
    await ok(second.url, "promise.create", { id: "after-takeover", timeoutAt: FAR });

    // And a restart after that works again.
    await second.kill();
    const third = await startServe(database);
    expect((await ok(third.url, "promise.get", { id: "after-takeover" })).promise.id).toBe("after-takeover");
  });

  test("a second server on a file that a live server owns refuses to start and names the owner", async () => {
    const database = join(temporaryDirectory("pledge-kill-"), "p.db");
    const owner = await startServe(database);
    const intruder = spawnServe(database, await freePort());
    const exit = await Promise.race([
      intruder.exited,
      sleep(15_000).then(() => {
        throw new Error(`the second server did not exit:\n${intruder.log}`);
      }),
    ]);
    expect(exit.code, intruder.log).not.toBe(0);
    expect(intruder.log).toContain(String(owner.child.pid));
    expect(intruder.log).toContain(owner.url);
    // The owner is unharmed.
    await ok(owner.url, "promise.create", { id: "still-mine", timeoutAt: FAR });
  });
});
