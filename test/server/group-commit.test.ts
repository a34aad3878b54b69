/**
 * Group commit over real HTTP on a SQLite file (src/server/processor.ts G1–G3):
 * concurrent requests share transactions, every acknowledged write is there to
 * read, and a lone request is not held back waiting for company. Performance is
 * the benchmarks' business; here only counts and answers are asserted.
 *
 * Concurrent requests come from raw sockets written in one synchronous block, or
 * from a client in another process. Not from fetch in this process: the test's
 * undici client and the server share one event loop, and undici hands its
 * requests to the sockets one loop turn at a time, so the server never sees two
 * at once (N requests → N commits); no real client looks like that.
 */
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, describe, expect, test } from "vitest";
import { call, cleanUp, envelope, ok, postAllAtOnce, serve, temporaryDirectory } from "./helpers.js";

const CLIENT = join(dirname(fileURLToPath(import.meta.url)), "clients/concurrent-create.mjs");

afterEach(cleanUp);

const CONCURRENT = 200;

async function sqliteServer() {
  return serve({ store: `sqlite:${join(temporaryDirectory(), "p.db")}` });
}

describe("group commit", () => {
  test(`${CONCURRENT} concurrent promise.create requests commit in fewer than ${CONCURRENT} transactions, and all are readable`, async () => {
    const server = await sqliteServer();
    const timeoutAt = Date.now() + 600_000;
    const bodies = Array.from({ length: CONCURRENT }, (_, index) =>
      envelope("promise.create", {
        id: `gc-${index}`,
        timeoutAt,
        param: { data: Buffer.from(JSON.stringify({ index })).toString("base64") },
        tags: { batch: "one" },
      }),
    );
    const before = server.stats.commits;
    const answers = await postAllAtOnce(server.port, bodies);
    const after = server.stats.commits;

    for (const answer of answers) expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(after - before).toBeGreaterThan(0);
    expect(after - before).toBeLessThan(CONCURRENT);

    const reads = await Promise.all(
      answers.map((answer) => call(server.url, "promise.get", { id: answer.body.data.promise.id })),
    );
    for (const [index, read] of reads.entries()) {
      expect(read.httpStatus).toBe(200);
      expect(read.data.promise).toStrictEqual(answers[index]?.body.data.promise);
      expect(read.data.promise).toMatchObject({
        id: `gc-${index}`,
        state: "pending",
        timeoutAt,
        tags: { batch: "one" },
      });
    }
  });

  test(`${CONCURRENT} creates from a concurrent client in another process commit in fewer than ${CONCURRENT} transactions`, async () => {
    const server = await sqliteServer();
    const timeoutAt = Date.now() + 600_000;
    const before = server.stats.commits;
    const { stdout } = await promisify(execFile)(process.execPath, [
      CLIENT,
      server.url,
      String(CONCURRENT),
      "remote-",
      String(timeoutAt),
    ]);
    const after = server.stats.commits;
    const statuses: number[] = JSON.parse(stdout);
    expect(statuses).toStrictEqual(Array.from({ length: CONCURRENT }, () => 200));
    expect(after - before).toBeLessThan(CONCURRENT);
    for (let index = 0; index < CONCURRENT; index += 1) {
      const read = await call(server.url, "promise.get", { id: `remote-${index}` });
      expect(read.httpStatus).toBe(200);
      expect(read.data.promise).toMatchObject({ id: `remote-${index}`, state: "pending", timeoutAt });
    }
  });

  test("concurrent creates of the same id in one batch answer the same record and store one promise", async () => {
    const server = await sqliteServer();
    const timeoutAt = Date.now() + 600_000;
    const before = server.stats.commits;
    const answers = await postAllAtOnce(
      server.port,
      Array.from({ length: 50 }, (_, index) =>
        envelope("promise.create", { id: "same", timeoutAt, param: { data: String(index) } }),
      ),
    );
    expect(server.stats.commits - before).toBeLessThan(50);
    const first = answers[0]?.body.data.promise;
    expect(first).toMatchObject({ id: "same", param: { data: "0" } });
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.body.data.promise).toStrictEqual(first);
    }
    expect((await ok(server.url, "promise.get", { id: "same" })).promise).toStrictEqual(first);
  });

  test("a lone request is answered without waiting for others to join its batch", async () => {
    const server = await sqliteServer();
    const before = server.stats.commits;
    const data = await ok(server.url, "promise.create", { id: "alone", timeoutAt: Date.now() + 600_000 });
    expect(data.promise.id).toBe("alone");
    expect(server.stats.commits).toBeGreaterThan(before);
    expect((await ok(server.url, "promise.get", { id: "alone" })).promise).toStrictEqual(data.promise);
  });
});
