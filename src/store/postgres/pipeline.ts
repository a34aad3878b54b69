/**
 * How the PostgreSQL store talks to the database: statements sent back to back
 * in one write, without waiting for each answer (`pg`'s pipeline mode), so that
 * a batch pays one round trip per step of the replay rather than one per
 * statement; and fixed statement texts prepared once per connection, so that
 * PostgreSQL does not plan them again for every batch.
 *
 * Invariants:
 *  Q1  Answers come back in the order the statements were sent.
 *  Q2  Once one statement fails, PostgreSQL has aborted the transaction and every
 *      later statement of it fails too (one sent after its COMMIT runs on its own);
 *      `pipeline` waits for every answer (none is left unobserved) and reports the
 *      first failure, the cause.
 */
import type pg from "pg";

/** The socket under a pooled client, corked so that the queries written in one turn leave in one write. */
type Corkable = { connection?: { stream?: { cork?(): void; uncork?(): void } } };

/** Sends `queries` in one write and answers their results in order (Q1, Q2). */
export async function pipeline(
  client: pg.PoolClient,
  queries: readonly pg.QueryConfig[],
): Promise<pg.QueryResult[]> {
  const socket = (client as unknown as Corkable).connection?.stream;
  socket?.cork?.();
  let answers: Promise<pg.QueryResult>[];
  try {
    answers = queries.map((query) => client.query(query));
  } finally {
    socket?.uncork?.();
  }
  const settled = await Promise.allSettled(answers);
  const failed = settled.find((outcome) => outcome.status === "rejected");
  if (failed !== undefined) throw failed.reason;
  return settled.map((outcome) => (outcome as PromiseFulfilledResult<pg.QueryResult>).value);
}

/**
 * `text` as a named prepared statement: each connection parses and plans it once.
 * Only for texts drawn from a small fixed set (every distinct text is a name, held
 * for the life of the process and of each connection).
 */
export function prepared(text: string, values: unknown[] = []): pg.QueryConfig {
  let name = preparedNames.get(text);
  if (name === undefined) {
    name = `pledge_${preparedNames.size + 1}`;
    preparedNames.set(text, name);
  }
  return { name, text, values };
}

const preparedNames = new Map<string, string>();
