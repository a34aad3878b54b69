/**
 * The PostgreSQL server the tests use, when one is reachable (issue 5): the URL
 * comes from PLEDGE_TEST_POSTGRES_URL, or the local default. Without one the
 * Postgres tests skip with a loud message, except under CI=true, where a test
 * fails instead: CI starts a server, so its absence there is a fault.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { it } from "vitest";
import { openPostgresStore, type PostgresStore } from "../../src/store/postgres/postgres-store.js";

export const POSTGRES_URL = process.env.PLEDGE_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

async function probe(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Why PostgreSQL cannot be used, or undefined when it can. Probed once per test file. */
export const postgresUnreachable = await probe();

/**
 * Registers, when PostgreSQL is unreachable, the loud skip (or, under CI=true, the
 * failing test) for `what`; returns whether the Postgres tests should run.
 */
export function requirePostgres(what: string): boolean {
  if (postgresUnreachable === undefined) return true;
  const message = `PostgreSQL at ${POSTGRES_URL} is unreachable (${postgresUnreachable}): ${what} NOT RUN. Start PostgreSQL or set PLEDGE_TEST_POSTGRES_URL.`;
  if (process.env.CI === "true") {
    it(`${what}: PostgreSQL must be reachable under CI=true`, () => {
      throw new Error(message);
    });
  } else {
    console.warn(`\n${"!".repeat(100)}\n!!! SKIPPED: ${message}\n${"!".repeat(100)}\n`);
    it.skip(`${what} (PostgreSQL unreachable)`, () => {});
  }
  return false;
}

/** A fresh schema name, unique to this run. */
export function freshSchema(prefix = "pledge_test"): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString("hex")}`;
}

const schemas = new Map<PostgresStore, string>();

/** Opens a store on a fresh schema; `dropPostgresStore` closes it and drops the schema. */
export async function openFreshPostgresStore(
  options: { conflictAttempts?: number } = {},
): Promise<PostgresStore> {
  const schema = freshSchema();
  const store = await openPostgresStore({ url: POSTGRES_URL, schema, ...options });
  schemas.set(store, schema);
  return store;
}

export async function dropPostgresStore(store: PostgresStore): Promise<void> {
  await store.close();
  const schema = schemas.get(store);
  schemas.delete(store);
  if (schema !== undefined) await dropSchema(schema);
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
  } finally {
    await client.end();
  }
}
