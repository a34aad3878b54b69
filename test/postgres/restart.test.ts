/**
 * PostgreSQL restarted under load (issue 5, item 3): a `pledge serve` process on a
 * fresh schema takes writes from several clients while the test restarts the
 * PostgreSQL server (`pg_ctlcluster … restart -m fast`). What must hold:
 *
 *  F1  Every request gets an answer (a 15 s client timeout counts as a hang).
 *  F2  A request that fails during the outage fails with 503, `head.error` =
 *      `{ code: "store_unavailable", retryable: true }` and a message saying the
 *      store cannot be reached; never a 500, never a dropped connection.
 *  F3  Nothing acknowledged is lost: every id answered 200 reads back afterwards.
 *  F4  The server recovers by itself: the same process answers 200 again soon
 *      after PostgreSQL is back, without being restarted or told.
 *
 * Restarting PostgreSQL breaks every other test using it at that moment, so this
 * file runs only when PLEDGE_TEST_PG_RESTART=1 (and `pg_ctlcluster` exists),
 * which `.ci/run` sets in a vitest invocation of its own, after the main run.
 * Elsewhere it skips loudly; with PLEDGE_TEST_PG_RESTART=1 under CI=true a
 * missing `pg_ctlcluster` fails.
 */
import { execFile, spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dropSchema, freshSchema, requirePostgres } from "../differential/postgres.js";
import { killAll, type Proc, requireBuild, sleep, withDiagnostics } from "../sdk-process/harness.js";
import { healthy, servePostgres } from "./serve.js";

const CLIENTS = 6;
const LOAD_BEFORE_MS = 1000;
const LOAD_AFTER_MS = 3000;
const HANG_MS = 15_000;

function restartAllowed(): string | undefined {
  if (process.env.PLEDGE_TEST_PG_RESTART !== "1")
    return "PLEDGE_TEST_PG_RESTART=1 is not set (restarting PostgreSQL would break other tests using it; .ci/run runs this file alone with it set)";
  if (spawnSync("pg_ctlcluster", ["--help"], { stdio: "ignore" }).error !== undefined)
    return "pg_ctlcluster is not on PATH";
  return undefined;
}

/** `pg_ctlcluster <version> main restart -m fast`, timed; asynchronous, so the clients keep sending meanwhile. */
async function restartPostgres(): Promise<number> {
  const version = process.env.PLEDGE_TEST_PG_VERSION ?? readdirSync("/etc/postgresql").sort().at(-1);
  if (version === undefined) throw new Error("no cluster under /etc/postgresql");
  const started = Date.now();
  await new Promise<void>((done, fail) =>
    execFile(
      "pg_ctlcluster",
      [
        "--skip-systemctl-redirect",
        version,
        process.env.PLEDGE_TEST_PG_CLUSTER ?? "main",
        "restart",
        "-m",
        "fast",
      ],
      { timeout: 60_000 },
      (error, _stdout, stderr) =>
        error === null
          ? done()
          : fail(new Error(`pg_ctlcluster restart failed: ${stderr}`, { cause: error })),
    ),
  );
  return Date.now() - started;
}

interface Answer {
  httpStatus: number;
  status: number;
  error?: { code?: string; retryable?: boolean };
  data: unknown;
  ms: number;
}

async function send(url: string, kind: string, data: unknown): Promise<Answer> {
  const started = Date.now();
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ kind, head: { corrId: "1", version: "2026-04-01" }, data }),
    signal: AbortSignal.timeout(HANG_MS), // F1
  });
  const body = (await response.json()) as {
    head: { status: number; error?: { code?: string; retryable?: boolean } };
    data: unknown;
  };
  return {
    httpStatus: response.status,
    status: body.head.status,
    ...(body.head.error !== undefined && { error: body.head.error }),
    data: body.data,
    ms: Date.now() - started,
  };
}

const refusal = restartAllowed();
if (refusal !== undefined) {
  const message = `PostgreSQL restart test NOT RUN: ${refusal}.`;
  if (process.env.CI === "true" && process.env.PLEDGE_TEST_PG_RESTART === "1") {
    it("PostgreSQL restarted under load: pg_ctlcluster must exist under CI=true", () => {
      throw new Error(message);
    });
  } else {
    console.warn(`\n${"!".repeat(100)}\n!!! SKIPPED: ${message}\n${"!".repeat(100)}\n`);
    it.skip("PostgreSQL restarted under load (PLEDGE_TEST_PG_RESTART unset)", () => {});
  }
} else if (requirePostgres("PostgreSQL restarted under load")) {
  const schema = freshSchema("pledge_restart");
  let server: Proc | undefined;
  let url = "";

  beforeAll(async () => {
    requireBuild();
    const served = await servePostgres("serve", schema);
    server = served.proc;
    url = served.url;
    await withDiagnostics(healthy(served));
  }, 30_000);

  afterAll(async () => {
    await killAll();
    // PostgreSQL may still be starting if the test failed mid-restart.
    for (let attempt = 0; attempt < 40; attempt++) {
      try {
        await dropSchema(schema);
        return;
      } catch {
        await sleep(250);
      }
    }
  }, 30_000);

  describe("pledge serve on PostgreSQL, PostgreSQL restarted under load", () => {
    it("answers retryable 503s during the outage, loses nothing acknowledged, and recovers by itself", async () => {
      const acknowledged: string[] = [];
      const unavailable: Answer[] = [];
      const unexpected: string[] = [];
      let stop = false;
      let lastOkAt = 0;

      const client = async (k: number) => {
        for (let n = 0; !stop; n++) {
          const id = `c${k}-${n}`;
          try {
            const answer = await send(url, "promise.create", { id, timeoutAt: Date.now() + 3_600_000 });
            if (answer.status === 200 && answer.httpStatus === 200) {
              acknowledged.push(id);
              lastOkAt = Date.now();
            } else if (answer.status === 503 && answer.httpStatus === 503) {
              unavailable.push(answer);
              await sleep(20); // a client backs off a little before retrying
            } else unexpected.push(`${id}: HTTP ${answer.httpStatus} ${JSON.stringify(answer)}`);
          } catch (error) {
            unexpected.push(`${id}: ${(error as Error).name}: ${(error as Error).message}`); // F1
          }
        }
      };

      const clients = Array.from({ length: CLIENTS }, (_, k) => client(k));
      await sleep(LOAD_BEFORE_MS);
      const beforeRestart = acknowledged.length;
      const restartMs = await restartPostgres();
      const backAt = Date.now();
      await sleep(LOAD_AFTER_MS);
      stop = true;
      await Promise.all(clients);

      console.log(
        `restart took ${restartMs} ms; ${acknowledged.length} writes acknowledged (${beforeRestart} before the restart), ` +
          `${unavailable.length} answered 503 (slowest ${Math.max(0, ...unavailable.map((a) => a.ms))} ms); ` +
          `first 503: ${JSON.stringify(unavailable[0]?.data)}`,
      );
      expect(unexpected, unexpected.slice(0, 5).join("\n")).toEqual([]); // F1, F2: no 500, no hang
      expect(beforeRestart).toBeGreaterThan(0);
      expect(unavailable.length).toBeGreaterThan(0); // the outage was seen…
      for (const answer of unavailable) {
        // …and answered as PROTOCOL.md's decisions say (F2).
        expect(answer.error).toEqual({ code: "store_unavailable", retryable: true });
        expect(String(answer.data)).toMatch(/^store unavailable: .*cannot be reached/);
        expect(answer.ms).toBeLessThan(HANG_MS);
      }
      expect(server?.exitInfo, "the server process must survive the restart").toBeUndefined();
      expect(lastOkAt, "writes must succeed again after PostgreSQL is back (F4)").toBeGreaterThan(backAt);

      // F3: every acknowledged id reads back, through the same (recovered) server.
      const missing: string[] = [];
      for (const id of acknowledged) {
        const answer = await send(url, "promise.get", { id });
        if (answer.status !== 200) missing.push(`${id}: ${answer.status}`);
      }
      expect(missing, missing.slice(0, 5).join("\n")).toEqual([]);
    }, 60_000);
  });
}
