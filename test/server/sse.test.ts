/**
 * SSE delivery over real HTTP (PROTOCOL.md §1.8 addresses, §1.9 the poll
 * endpoint; Pledge's decisions on delivery). Workers are fetch streams on
 * `GET /poll/{group}/{id}`; "did not receive" is proven with an ordering
 * barrier (helpers.ts `barrier`), not with a sleep (the one wait, after an
 * acquire, gives a faulty server three retry intervals to misbehave; a correct
 * one passes whatever the timing).
 */
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import {
  barrier,
  call,
  cleanUp,
  createExternal,
  createTargeted,
  listenAndSettle,
  ok,
  PollStream,
  pollRequest,
  type RawPoll,
  racePostWithPoll,
  serve,
  sleep,
  stop,
  temporaryDirectory,
  waitUntil,
} from "./helpers.js";

afterEach(cleanUp);

const executeOf =
  (id: string, version = 0) =>
  (message: { kind: string; data: { task?: { id: string; version: number } } }) =>
    message.kind === "execute" && message.data.task?.id === id && message.data.task.version === version;

describe("anycast", () => {
  test("an execute for poll://any@g reaches exactly one connection of g, and that worker acquires the task", async () => {
    const server = await serve();
    const w1 = await PollStream.open(server.url, "g", "w1");
    const w2 = await PollStream.open(server.url, "g", "w2");

    await createTargeted(server.url, "job-1", "poll://any@g");
    await waitUntil(
      () => w1.about("execute", "job-1").length + w2.about("execute", "job-1").length > 0,
      "an execute for job-1 on w1 or w2",
    );
    await barrier(server.url, w1);
    await barrier(server.url, w2);

    const received = [...w1.about("execute", "job-1"), ...w2.about("execute", "job-1")];
    expect(received).toStrictEqual([
      { kind: "execute", head: { serverUrl: server.url }, data: { task: { id: "job-1", version: 0 } } },
    ]);
    const worker = w1.about("execute", "job-1").length === 1 ? "w1" : "w2";
    const acquired = await ok(server.url, "task.acquire", {
      id: "job-1",
      version: 0,
      pid: worker,
      ttl: 30_000,
    });
    expect(acquired.task).toMatchObject({ id: "job-1", state: "acquired", version: 1, pid: worker });
  });

  test("each of several executes for poll://any@g reaches exactly one connection of g", async () => {
    const server = await serve();
    const w1 = await PollStream.open(server.url, "g", "w1");
    const w2 = await PollStream.open(server.url, "g", "w2");
    for (let index = 0; index < 4; index += 1)
      await createTargeted(server.url, `spread-${index}`, "poll://any@g");
    await waitUntil(() => w1.messages.length + w2.messages.length >= 4, "four executes across w1 and w2");
    await barrier(server.url, w1);
    await barrier(server.url, w2);
    // Which connection takes each is the server's choice (round-robin today, random in §1.8); each goes to one.
    for (let index = 0; index < 4; index += 1)
      expect(
        w1.about("execute", `spread-${index}`).length + w2.about("execute", `spread-${index}`).length,
      ).toBe(1);
  });

  test("poll://any@g/w2 prefers connection w2 over the rest of the group", async () => {
    const server = await serve();
    const w1 = await PollStream.open(server.url, "g", "w1");
    const w2 = await PollStream.open(server.url, "g", "w2");
    const w3 = await PollStream.open(server.url, "g", "w3");
    for (let index = 0; index < 4; index += 1)
      await createTargeted(server.url, `pref-${index}`, "poll://any@g/w2");
    for (let index = 0; index < 4; index += 1)
      await w2.waitFor(executeOf(`pref-${index}`), `execute pref-${index}`);
    await barrier(server.url, w1);
    await barrier(server.url, w3);
    expect(w1.messages.filter((message) => message.kind === "execute")).toStrictEqual([]);
    expect(w3.messages.filter((message) => message.kind === "execute")).toStrictEqual([]);
    expect(w2.messages.filter((message) => message.kind === "execute")).toHaveLength(4);
  });

  test("poll://any@g/w9 falls back to another connection of g when w9 is not connected", async () => {
    const server = await serve();
    const w1 = await PollStream.open(server.url, "g", "w1");
    await createTargeted(server.url, "fallback", "poll://any@g/w9");
    await w1.waitFor(executeOf("fallback"), "execute fallback");
  });

  test("an execute for group g never reaches a connection of another group", async () => {
    const server = await serve();
    const other = await PollStream.open(server.url, "h", "w1");
    const mine = await PollStream.open(server.url, "g", "w1");
    await createTargeted(server.url, "grouped", "poll://any@g");
    await mine.waitFor(executeOf("grouped"), "execute grouped");
    await barrier(server.url, other);
    expect(other.about("execute", "grouped")).toStrictEqual([]);
  });
});

describe("unicast", () => {
  test("a listener at poll://uni@g/w1 gets an unblock with the settled record; w2 of the same group does not", async () => {
    const server = await serve();
    const w1 = await PollStream.open(server.url, "g", "w1");
    const w2 = await PollStream.open(server.url, "g", "w2");
    await createExternal(server.url, "human-1");
    const settled = await listenAndSettle(server.url, "human-1", "poll://uni@g/w1");
    expect(settled.state).toBe("resolved");

    const unblock = await w1.waitFor(
      (message) => message.kind === "unblock" && message.data.promise.id === "human-1",
      "unblock human-1",
    );
    expect(unblock).toStrictEqual({ kind: "unblock", head: {}, data: { promise: settled } });
    await barrier(server.url, w2);
    expect(w2.about("unblock", "human-1")).toStrictEqual([]);
    await barrier(server.url, w1);
    expect(w1.about("unblock", "human-1")).toHaveLength(1);
  });

  test("an unblock queued while nobody is connected is delivered when the connection opens", async () => {
    const server = await serve();
    await createExternal(server.url, "queued");
    const settled = await listenAndSettle(server.url, "queued", "poll://uni@g/w1");
    const w1 = await PollStream.open(server.url, "g", "w1");
    const unblock = await w1.waitFor(
      (message) => message.kind === "unblock" && message.data.promise.id === "queued",
      "unblock queued",
    );
    expect(unblock.data.promise).toStrictEqual(settled);
  });

  test("an unblock for w1 is not taken by w2 while w1 is away, and reaches w1 once it connects", async () => {
    const server = await serve();
    const w2 = await PollStream.open(server.url, "g", "w2");
    await createExternal(server.url, "for-w1");
    await listenAndSettle(server.url, "for-w1", "poll://uni@g/w1");
    await barrier(server.url, w2);
    expect(w2.about("unblock", "for-w1")).toStrictEqual([]);
    const w1 = await PollStream.open(server.url, "g", "w1");
    await w1.waitFor(
      (message) => message.kind === "unblock" && message.data.promise.id === "for-w1",
      "for-w1",
    );
  });

  test("a worker that closes its stream and reconnects receives what settled while it was away", async () => {
    const server = await serve({ debug: true });
    const first = await PollStream.open(server.url, "g", "w1");
    await barrier(server.url, first);
    first.close();
    await awaitDisconnect(server.url, "g", "w1");

    await createExternal(server.url, "while-away");
    const settled = await listenAndSettle(server.url, "while-away", "poll://uni@g/w1");
    const second = await PollStream.open(server.url, "g", "w1");
    const unblock = await second.waitFor(
      (message) => message.kind === "unblock" && message.data.promise.id === "while-away",
      "unblock while-away",
    );
    expect(unblock.data.promise).toStrictEqual(settled);
  });

  test("an unblock queued for an absent worker survives a server restart on the same SQLite file", async () => {
    const directory = temporaryDirectory();
    const store = `sqlite:${join(directory, "p.db")}`;
    const first = await serve({ store });
    await createExternal(first.url, "durable-unblock");
    const settled = await listenAndSettle(first.url, "durable-unblock", "poll://uni@g/w1");
    await stop(first);

    const second = await serve({ store });
    const w1 = await PollStream.open(second.url, "g", "w1");
    const unblock = await w1.waitFor(
      (message) => message.kind === "unblock" && message.data.promise.id === "durable-unblock",
      "unblock durable-unblock after restart",
    );
    expect(unblock.data.promise).toStrictEqual(settled);
  });
});

describe("redelivery of executes", () => {
  test("an execute whose task is never acquired is sent again after the retry timeout, and not after acquire", async () => {
    const retryTimeoutMs = 300;
    const server = await serve({ retryTimeoutMs });
    const w1 = await PollStream.open(server.url, "g", "w1");
    await createTargeted(server.url, "slow", "poll://any@g");
    await w1.waitFor(executeOf("slow"), "first execute of slow");
    await waitUntil(() => w1.about("execute", "slow").length >= 2, "a second execute of slow", 5000);
    for (const message of w1.about("execute", "slow"))
      expect(message.data.task).toStrictEqual({ id: "slow", version: 0 });

    await ok(server.url, "task.acquire", { id: "slow", version: 0, pid: "w1", ttl: 60_000 });
    const sent = w1.about("execute", "slow").length;
    await sleep(3 * retryTimeoutMs);
    await barrier(server.url, w1);
    expect(w1.about("execute", "slow")).toHaveLength(sent);
  });
});

describe("each message is handed over once", () => {
  const envelope = (kind: string, data: unknown) =>
    JSON.stringify({ kind, head: { corrId: `race-${kind}`, version: "2026-04-01" }, data });

  test("an unblock committed in the same turn as its worker connects is sent to it once, not twice", async () => {
    const server = await serve();
    for (let round = 0; round < 5; round += 1) {
      const id = `race-unblock-${round}`;
      const worker = `w${round}`;
      await createExternal(server.url, id);
      await ok(server.url, "promise.register_listener", { awaited: id, address: `poll://uni@g/${worker}` });
      const { answer, poll } = await racePostWithPoll(
        server.port,
        envelope("promise.settle", { id, state: "resolved" }),
        "g",
        worker,
      );
      expect(answer).toMatch(/^HTTP\/1\.1 200/);
      // Barrier: a later unblock for the same worker; once it is in, everything earlier is.
      const after = `${id}-after`;
      await createExternal(server.url, after);
      await listenAndSettle(server.url, after, `poll://uni@g/${worker}`);
      await waitUntil(() => poll.count(after) > 0, `the barrier unblock ${after}`);
      expect(poll.count(id), poll.text()).toBe(1);
    }
  });

  test("an execute committed in the same turn as another worker of the group connects reaches one worker once", async () => {
    const server = await serve();
    const w1 = await PollStream.open(server.url, "g", "w1");
    const late: RawPoll[] = [];
    for (let round = 0; round < 5; round += 1) {
      const id = `race-execute-${round}`;
      const worker = `late-${round}`;
      const { answer, poll } = await racePostWithPoll(
        server.port,
        envelope("promise.create", {
          id,
          timeoutAt: Date.now() + 600_000,
          tags: { "resonate:target": "poll://any@g" },
        }),
        "g",
        worker,
      );
      expect(answer).toMatch(/^HTTP\/1\.1 200/);
      late.push(poll);
      const after = `${id}-after`;
      await createExternal(server.url, after);
      await listenAndSettle(server.url, after, `poll://uni@g/${worker}`);
      await waitUntil(() => poll.count(after) > 0, `the barrier unblock ${after}`);
      await barrier(server.url, w1);
      // Every earlier late connection is still open and in the group: count on all of them.
      for (const [index, earlier] of late.entries()) {
        if (index === round) continue;
        const probe = `${id}-after-${index}`;
        await createExternal(server.url, probe);
        await listenAndSettle(server.url, probe, `poll://uni@g/late-${index}`);
        await waitUntil(() => earlier.count(probe) > 0, `the barrier unblock ${probe}`);
      }
      const received = w1.about("execute", id).length + late.reduce((sum, poll) => sum + poll.count(id), 0);
      expect(
        received,
        `w1: ${JSON.stringify(w1.messages)}\n${late.map((poll) => poll.text()).join("\n")}`,
      ).toBe(1);
    }
  });
});

describe("the poll endpoint", () => {
  test("with an auth token, /poll without the bearer header or with a wrong one answers 401; the right one streams", async () => {
    const token = "sse-secret";
    const server = await serve({ authToken: token });
    const missing = await pollRequest(server.url, "g", "w1");
    expect(missing.status).toBe(401);
    await missing.body?.cancel();
    const wrong = await pollRequest(server.url, "g", "w1", "not-the-token");
    expect(wrong.status).toBe(401);
    await wrong.body?.cancel();

    const w1 = await PollStream.open(server.url, "g", "w1", token);
    await createExternal(server.url, "authed", { token });
    await ok(
      server.url,
      "promise.register_listener",
      { awaited: "authed", address: "poll://uni@g/w1" },
      { token },
    );
    await ok(server.url, "promise.settle", { id: "authed", state: "resolved" }, { token });
    await w1.waitFor(
      (message) => message.kind === "unblock" && message.data.promise.id === "authed",
      "authed",
    );
  });

  test("/health and /ready answer 200, with auth on and without a token", async () => {
    for (const server of [await serve(), await serve({ authToken: "t" })]) {
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
      expect((await fetch(`${server.url}/ready`)).status).toBe(200);
    }
  });

  test("the stream is text/event-stream and opens with a comment line", async () => {
    const server = await serve();
    const w1 = await PollStream.open(server.url, "g", "w1");
    expect(w1.comments).toBeGreaterThan(0);
    expect(w1.messages).toStrictEqual([]);
  });
});

/**
 * Waits until the server has dropped every connection of (group, id): a probe
 * unblock for it stays in the outbox (visible in debug.snap) only once no live
 * connection takes it. Needs a debug server.
 */
let probeCounter = 0;
async function awaitDisconnect(url: string, group: string, id: string): Promise<void> {
  const address = `poll://uni@${group}/${id}`;
  for (let attempt = 0; attempt < 200; attempt += 1) {
    probeCounter += 1;
    const probe = `probe-${probeCounter}`;
    await createExternal(url, probe);
    await listenAndSettle(url, probe, address);
    const snap = await call(url, "debug.snap", {});
    const queued = (
      snap.data.messages as { address: string; message: { data: { promise?: { id: string } } } }[]
    ).some((entry) => entry.address === address && entry.message.data.promise?.id === probe);
    if (queued) return;
    await sleep(10);
  }
  throw new Error(`the server kept a connection for ${address} open after the client closed it`);
}
