/**
 * Pool exhaustion (issue 5, item 3): a server on a PostgreSQL store whose pool has
 * two connections and a 500 ms connection timeout (the store's `pool` option,
 * in-process: `pledge serve` has no pool flag). Both connections are held by
 * transactions stuck behind a table lock taken by an outside client; a request
 * arriving then must not wait for them.
 *
 *  X1  It answers 503 with `head.error = { code: "store_unavailable", retryable:
 *      true }` and a message naming the store, within a small multiple of the
 *      connection timeout (the processor may first wait out a background batch
 *      that is itself waiting for a connection), never hanging.
 *  X2  Once the lock is gone the same server answers 200 again, and nothing of the
 *      refused request was applied (its id is still free).
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_SERVE_OPTIONS, type RunningServer } from "../../src/node/options.js";
import { startServer } from "../../src/node/serve.js";
import { openPostgresStore, type PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { dropSchema, freshSchema, POSTGRES_URL, requirePostgres } from "../differential/postgres.js";

const CONNECTION_TIMEOUT_MS = 500;
const POOL_SIZE = 2;

async function send(
  url: string,
  kind: string,
  data: unknown,
): Promise<{ status: number; error?: unknown; data: unknown; ms: number }> {
  const started = Date.now();
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ kind, head: { corrId: "1", version: "2026-04-01" }, data }),
    signal: AbortSignal.timeout(15_000), // a hang fails the test
  });
  const body = (await response.json()) as { head: { status: number; error?: unknown }; data: unknown };
  expect(response.status).toBe(body.head.status);
  return { status: body.head.status, error: body.head.error, data: body.data, ms: Date.now() - started };
}

if (requirePostgres("pool exhaustion answers 503")) {
  const schema = freshSchema("pledge_pool");
  let store: PostgresStore;
  let server: RunningServer;
  let locker: pg.Client;

  beforeAll(async () => {
    store = await openPostgresStore({
      url: POSTGRES_URL,
      schema,
      pool: { max: POOL_SIZE, connectionTimeoutMillis: CONNECTION_TIMEOUT_MS },
    });
    server = await startServer(
      { ...DEFAULT_SERVE_OPTIONS, store: "postgres (given)", port: 0, logLevel: "silent" },
      { store },
    );
    locker = new pg.Client({ connectionString: POSTGRES_URL });
    await locker.connect();
  });

  afterAll(async () => {
    await locker?.query("ROLLBACK").catch(() => {});
    await locker?.end().catch(() => {});
    await server?.close();
    await store?.close();
    await dropSchema(schema);
  });

  describe("a PostgreSQL store whose pool is exhausted", () => {
    it("answers a retryable 503 within the connection timeout instead of hanging, then recovers", async () => {
      const warm = await send(server.url, "promise.create", {
        id: "warm",
        timeoutAt: Date.now() + 3_600_000,
      });
      expect(warm.status).toBe(200);

      // Hold every pooled connection: transactions reading a row of a table locked from outside.
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE ${pg.escapeIdentifier(schema)}.promises IN ACCESS EXCLUSIVE MODE`);
      const holders = Array.from({ length: POOL_SIZE }, (_, i) =>
        store.transaction((tx) => tx.promise(`held-${i}`)),
      );
      await new Promise((resolve) => setTimeout(resolve, 200)); // let both take their connection

      const refused = await send(server.url, "promise.create", {
        id: "refused",
        timeoutAt: Date.now() + 3_600_000,
      });
      console.log(`pool of ${POOL_SIZE} exhausted: answered ${refused.status} in ${refused.ms} ms`);
      expect(refused.status).toBe(503); // X1
      expect(refused.error).toEqual({ code: "store_unavailable", retryable: true });
      expect(String(refused.data)).toMatch(
        /^store unavailable: postgres:\/\/.*cannot be reached: .*timeout/i,
      );
      expect(refused.ms).toBeLessThan(4 * CONNECTION_TIMEOUT_MS);

      await locker.query("ROLLBACK");
      await Promise.all(holders); // X2: the held transactions finish once the lock is gone
      const refusedAfter = await send(server.url, "promise.get", { id: "refused" });
      expect(refusedAfter.status).toBe(404); // nothing of the refused request was applied
      const again = await send(server.url, "promise.create", {
        id: "again",
        timeoutAt: Date.now() + 3_600_000,
      });
      expect(again.status).toBe(200);
    }, 20_000);
  });
}
