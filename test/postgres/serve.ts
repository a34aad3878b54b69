/**
 * `pledge serve` on a schema of the test database, as the PostgreSQL process
 * tests start it: the built CLI (requireBuild) in a child process of the harness,
 * so `killAll` and the diagnostics know it.
 */
import { POSTGRES_URL } from "../differential/postgres.js";
import { CLI, freePort, type Proc, sleep, spawnNode } from "../sdk-process/harness.js";

export interface Served {
  url: string;
  proc: Proc;
}

/** Starts a server on `schema` with `args` added to its flags; `healthy` waits for it. */
export async function servePostgres(name: string, schema: string, args: string[] = []): Promise<Served> {
  const port = await freePort();
  const proc = spawnNode(name, CLI, [
    "serve",
    "--port",
    String(port),
    "--store",
    `${POSTGRES_URL}?schema=${schema}`,
    ...args,
    "--log-level",
    "warn",
  ]);
  return { url: `http://127.0.0.1:${port}`, proc };
}

/** Resolves once `GET /health` answers 200; fails if the server exits first or `timeoutMs` passes. */
export async function healthy(served: Served, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (served.proc.exitInfo)
      throw new Error(`${served.proc.name} exited: ${JSON.stringify(served.proc.exitInfo)}`);
    try {
      if ((await fetch(`${served.url}/health`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error(`${served.proc.name} did not answer GET /health within ${timeoutMs} ms`);
}
