/**
 * PostgreSQL's own ceiling beneath the server: commits per second of the
 * smallest write transaction (BEGIN; INSERT one row; COMMIT, three round trips
 * on one connection) from `clients` concurrent connections of a pg Pool, in a
 * schema of the caller's. Every Pledge request that writes ends in a commit
 * like this, so the server's requests/s over this figure says how much of the
 * database's commit rate the server turns into requests (group commit can push
 * it past 1). Each loop runs for a fixed time, its connections opened first.
 */
import pg from "pg";

export interface CommitLoopOptions {
  /** postgres:// URL of the database, without `?schema=`. */
  url: string;
  /** An existing schema; the loop creates its table there. */
  schema: string;
  clients: number;
  durationMs: number;
}

export async function rawCommitLoop(options: CommitLoopOptions): Promise<{ commitsPerSecond: number }> {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.clients,
    options: `-c search_path=${options.schema}`,
  });
  // An idle client that loses its connection emits here; without a listener it would crash the benchmark.
  pool.on("error", () => {});
  try {
    await pool.query(
      "CREATE TABLE IF NOT EXISTS bench_commit (id bigserial PRIMARY KEY, value text NOT NULL)",
    );
    const clients = await Promise.all(Array.from({ length: options.clients }, () => pool.connect()));
    let commits = 0;
    const started = performance.now();
    const deadline = started + options.durationMs;
    try {
      await Promise.all(
        clients.map(async (client) => {
          while (performance.now() < deadline) {
            await client.query("BEGIN");
            await client.query("INSERT INTO bench_commit (value) VALUES ($1)", ["eyJ2YWx1ZSI6Mn0="]);
            await client.query("COMMIT");
            commits += 1;
          }
        }),
      );
    } finally {
      for (const client of clients) client.release();
    }
    return { commitsPerSecond: commits / ((performance.now() - started) / 1000) };
  } finally {
    await pool.end();
  }
}

export interface PostgresSettings {
  version: string;
  synchronousCommit: string;
  fsync: string;
  walSyncMethod: string;
}

/** The server settings that bound a commit's cost, printed with the figures. */
export async function postgresSettings(url: string): Promise<PostgresSettings> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const show = async (name: string) =>
      String(((await client.query(`SHOW ${name}`)).rows[0] as Record<string, unknown>)[name]);
    return {
      version: await show("server_version"),
      synchronousCommit: await show("synchronous_commit"),
      fsync: await show("fsync"),
      walSyncMethod: await show("wal_sync_method"),
    };
  } finally {
    await client.end();
  }
}
