/**
 * The PostgreSQL side the benchmarks share: every run gets a schema of its
 * own in the database named by `--store`, dropped afterwards, so runs never
 * see each other's rows and nothing is left behind.
 */
import pg from "pg";

export async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
  } finally {
    await client.end();
  }
}

export async function createSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA ${pg.escapeIdentifier(schema)}`);
  } finally {
    await client.end();
  }
}

/** The URL with `?schema=`, which `pledge serve` reads to create and use that schema (src/node/open-store.ts). */
export function withSchema(url: string, schema: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set("schema", schema);
  return parsed.toString();
}

/** The URL as printed: a password, if any, masked. */
export function describePostgresUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password !== "") parsed.password = "***";
  return parsed.toString();
}
