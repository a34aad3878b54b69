/**
 * The SDK's two networks (src/sdk/network): `RemoteNetwork` against a real
 * in-process server over HTTP + SSE, `EmbeddedNetwork` against a `ServerShell`
 * built as `node/serve.ts` builds it. Both must give the same answers: protocol
 * statuses as `Response`s (N1), edge faults as `ProtocolRejection`s naming the
 * field, messages for the process's addresses through `subscribe` (N2).
 * Waits are on events; the one deliberate delay is the server that starts late.
 */
import { spawn } from "node:child_process";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, test } from "vitest";
import { AssertionError } from "../../src/lib/assert.js";
import { MonotonicClock, systemClock, systemTimers, type Timers } from "../../src/lib/clock.js";
import { silentLogger } from "../../src/lib/logger.js";
import { EmbeddedNetwork } from "../../src/node/embedded-network.js";
import { DEFAULT_SERVE_OPTIONS, type RunningServer, type ServeOptions } from "../../src/node/options.js";
import { startServer } from "../../src/node/serve.js";
import type { OutgoingMessage } from "../../src/protocol/records.js";
import {
  type Network,
  NetworkClosedError,
  type NetworkRequest,
  ProtocolRejection,
} from "../../src/sdk/network/network.js";
import { processTimers, RemoteNetwork, type RetryPolicy, readEvents } from "../../src/sdk/network/remote.js";
import { ServerShell } from "../../src/server/shell.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { type Store, StoreUnavailableError } from "../../src/store/store.js";
import { freePort } from "../server/helpers.js";

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(overrides: Partial<ServeOptions> = {}): Promise<RunningServer> {
  const server = await startServer({
    ...DEFAULT_SERVE_OPTIONS,
    store: "memory",
    port: 0,
    logLevel: "silent",
    ...overrides,
  });
  cleanups.push(() => server.close());
  return server;
}

function remote(
  url: string,
  options: { group?: string; pid?: string; token?: string; retry?: RetryPolicy } = {},
): RemoteNetwork {
  const network = new RemoteNetwork({
    url,
    group: options.group ?? "g",
    pid: options.pid ?? "w1",
    ...options,
  });
  cleanups.push(() => network.close());
  return network;
}

/** A bare HTTP server whose every request goes to `handler` with its body read. */
async function fakeServer(
  handler: (request: IncomingMessage, body: string, response: ServerResponse) => void,
  port = 0,
): Promise<string> {
  const server = createServer((request, response) => {
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => {
      body += chunk;
    });
    request.on("end", () => handler(request, body, response));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * A server (on `port`, if given) that names `batch` and answers every request,
 * alone or in a batch, 404 `no <id>`, or `<name> has no <id>` when it has a name;
 * `sizes` records each POST: the batch's length, or 0 for one alone (also told to `onPost`).
 */
async function batchServer(
  options: { name?: string; port?: number; onPost?: (size: number) => void } = {},
): Promise<{
  url: string;
  sizes: number[];
}> {
  const sizes: number[] = [];
  const said = options.name === undefined ? "no" : `${options.name} has no`;
  const url = await fakeServer((_request, body, response) => {
    const json = JSON.parse(body) as unknown;
    const requests = Array.isArray(json) ? json : [json];
    const size = Array.isArray(json) ? requests.length : 0;
    sizes.push(size);
    options.onPost?.(size);
    const answers = requests.map((request) =>
      answer(JSON.stringify(request), 404, `${said} ${request.data.id}`),
    );
    response.writeHead(200, { "content-type": "application/json", "pledge-extensions": "batch" });
    response.end(Array.isArray(json) ? `[${answers.join(",")}]` : answers[0]);
  }, options.port);
  return { url, sizes };
}

/** The answer envelope to a posted request body. */
function answer(body: string, status: number, data: unknown, corrId?: string): string {
  const request = JSON.parse(body) as { kind: string; head: { corrId: string } };
  return JSON.stringify({
    kind: request.kind,
    head: { corrId: corrId ?? request.head.corrId, status, version: "2026-04-01" },
    data,
  });
}

/** Messages received by a subscription, and a way to wait for one (no polling). */
function inbox(network: Network) {
  const received: OutgoingMessage[] = [];
  const waiters: { matches: (message: OutgoingMessage) => boolean; resolve: (m: OutgoingMessage) => void }[] =
    [];
  const stop = network.subscribe((message) => {
    received.push(message);
    for (const waiter of [...waiters])
      if (waiter.matches(message)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(message);
      }
  });
  cleanups.push(stop);
  return {
    received,
    next(matches: (message: OutgoingMessage) => boolean): Promise<OutgoingMessage> {
      const already = received.find(matches);
      if (already !== undefined) return Promise.resolve(already);
      return new Promise((resolve) => waiters.push({ matches, resolve }));
    },
  };
}

const HOUR = 3_600_000;
const executeOf = (id: string) => (message: OutgoingMessage) =>
  message.kind === "execute" && message.data.task.id === id;
const unblockOf = (id: string) => (message: OutgoingMessage) =>
  message.kind === "unblock" && message.data.promise.id === id;

function create(id: string, tags: Record<string, string> = {}): NetworkRequest {
  return { kind: "promise.create", data: { id, timeoutAt: Date.now() + HOUR, tags } };
}

/** A backoff long enough that only `close()` can end the wait in time. */
const LONG_BACKOFF = { initialMs: 120_000, maxMs: 120_000 };

/** Timers that tell when a `LONG_BACKOFF` wait is armed (not a 10 s request timeout). */
function backoffWatch(): { timers: Timers; armed: Promise<void> } {
  let signal: () => void = () => {};
  const armed = new Promise<void>((resolve) => {
    signal = resolve;
  });
  const timers: Timers = {
    setTimeout: (callback, delayMs) => {
      if (delayMs >= 60_000) signal();
      return processTimers.setTimeout(callback, delayMs);
    },
    clearTimeout: processTimers.clearTimeout,
  };
  return { timers, armed };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

/**
 * The behaviours both networks share; `open` gives a network whose server
 * side is ready (`group` "g", `pid` "w1").
 */
function sharedBehaviours(open: () => Promise<Network>) {
  test("send answers 200, 404 and 409 as responses", async () => {
    const network = await open();
    const created = await network.send(create("p1"));
    expect(created.status).toBe(200);
    expect(created.data).toMatchObject({ promise: { id: "p1", state: "pending" } });

    const missing = await network.send({ kind: "promise.get", data: { id: "nope" } });
    expect(missing).toMatchObject({ status: 404, error: { code: "not_found", retryable: false } });
    expect(typeof missing.data).toBe("string");

    const root: NetworkRequest = {
      kind: "task.create",
      data: {
        pid: "w1",
        ttl: 30_000,
        action: {
          kind: "promise.create",
          data: { id: "root", timeoutAt: Date.now() + HOUR, tags: { "resonate:target": network.anycast } },
        },
      },
    };
    const first = await network.send(root);
    expect(first.data).toMatchObject({ task: { id: "root", state: "acquired", version: 1 } });
    const second = await network.send(root);
    expect(second).toMatchObject({ status: 409, error: { code: "conflict" } });
  });

  test("a malformed request rejects with a ProtocolRejection naming the field", async () => {
    const network = await open();
    const error = await rejection(network.send(create("")));
    expect(error).toBeInstanceOf(ProtocolRejection);
    expect(error).toMatchObject({ status: 400, message: expect.stringMatching(/^data\.id: /) });
  });

  test("a subscription receives the execute of a promise targeted at its group and the unblock of its listener", async () => {
    const network = await open();
    expect(network.unicast).toBe("poll://uni@g/w1");
    expect(network.anycast).toBe("poll://any@g/w1");
    const messages = inbox(network);

    await network.send(create("job", { "resonate:target": "poll://any@g" }));
    expect(await messages.next(executeOf("job"))).toMatchObject({
      kind: "execute",
      data: { task: { id: "job", version: 0 } },
    });

    await network.send(create("signal", { "resonate:external": "true" }));
    await network.send({
      kind: "promise.register_listener",
      data: { awaited: "signal", address: network.unicast },
    });
    await network.send({
      kind: "promise.settle",
      data: { id: "signal", state: "resolved", value: { data: "InllcyI=" } },
    });
    expect(await messages.next(unblockOf("signal"))).toMatchObject({
      kind: "unblock",
      head: {},
      data: { promise: { id: "signal", state: "resolved", value: { data: "InllcyI=" } } },
    });
  });
}

describe("remote network", () => {
  sharedBehaviours(async () => remote((await serve()).url));

  test("learns from the Pledge-Extensions header which extensions the server takes (ADR 0005)", async () => {
    const pledgeServer = remote((await serve()).url);
    expect(pledgeServer.supports("settle-on-create")).toBe(false); // nothing heard yet
    await pledgeServer.send({ kind: "promise.get", data: { id: "nope" } });
    expect(pledgeServer.supports("settle-on-create")).toBe(true);
    expect(pledgeServer.supports("something-else")).toBe(false);
    const other = remote(
      await fakeServer((_request, body, response) => {
        const head = { corrId: JSON.parse(body).head.corrId, status: 404, version: "2026-04-01" };
        response.writeHead(404, { "content-type": "application/json" });
        response.end(JSON.stringify({ kind: "promise.get", head, data: "not found" }));
      }),
    );
    await other.send({ kind: "promise.get", data: { id: "nope" } });
    expect(other.supports("settle-on-create")).toBe(false);
  });

  test("R4: the first attempts of one turn go in one POST where the server names batch, each answered in its slot", async () => {
    const { url, sizes: posts } = await batchServer();
    const network = remote(url);
    await network.send({ kind: "promise.get", data: { id: "first" } }); // learns the extension, alone
    const ids = ["a", "b", "c", "d", "e"];
    const answers = await Promise.all(ids.map((id) => network.send({ kind: "promise.get", data: { id } })));
    expect(answers.map((response) => response.data)).toEqual(ids.map((id) => `no ${id}`));
    expect(posts).toEqual([0, 5]);
    await network.send({ kind: "promise.get", data: { id: "last" } }); // alone in its turn: no array
    expect(posts).toEqual([0, 5, 0]);
  });

  test("R4: a batch answered with anything but an array of as many slots is retried request by request, at once", async () => {
    const posts: string[] = [];
    const url = await fakeServer((_request, body, response) => {
      const json = JSON.parse(body) as unknown;
      posts.push(Array.isArray(json) ? `batch of ${json.length}` : "alone");
      response.writeHead(200, { "content-type": "application/json", "pledge-extensions": "batch" });
      if (Array.isArray(json)) response.end(`[${answer(JSON.stringify(json[0]), 404, "only one")}]`);
      else response.end(answer(body, 404, "alone"));
    });
    // A backoff longer than the test's timeout: the retry alone must not wait for it.
    const network = remote(url, { retry: { initialMs: 60_000, maxMs: 60_000 } });
    await network.send({ kind: "promise.get", data: { id: "first" } });
    const answers = await Promise.all(
      ["a", "b"].map((id) => network.send({ kind: "promise.get", data: { id } })),
    );
    expect(answers.map((response) => response.data)).toEqual(["alone", "alone"]);
    expect(posts).toEqual(["alone", "batch of 2", "alone", "alone"]);
  });

  test("R4: a turn's requests beyond 1 MiB of body go in further POSTs", async () => {
    const { url, sizes } = await batchServer();
    const network = remote(url);
    await network.send({ kind: "promise.get", data: { id: "first" } });
    const big = "x".repeat(300 * 1024); // four of these overflow a POST
    const ids = Array.from({ length: 10 }, (_, index) => `${big}${index}`);
    const answers = await Promise.all(ids.map((id) => network.send({ kind: "promise.get", data: { id } })));
    expect(answers.every((response) => response.status === 404)).toBe(true);
    // Three of three and one alone, sent together (they may arrive in any order).
    expect(sizes.slice(1).sort()).toEqual([0, 3, 3, 3]);
  });

  test("R4: against pledge serve, a batch's requests apply in order and answer as they would alone", async () => {
    const network = remote((await serve()).url);
    await network.send({ kind: "promise.get", data: { id: "warm-up" } });
    expect(network.supports("batch")).toBe(true);
    const [created, got, settled, again] = await Promise.all([
      network.send(create("p", {})),
      network.send({ kind: "promise.get", data: { id: "p" } }),
      network.send({ kind: "promise.settle", data: { id: "p", state: "resolved" } }),
      network.send({ kind: "promise.get", data: { id: "p" } }),
    ]);
    expect(created?.status).toBe(200);
    expect(got).toMatchObject({ status: 200, data: { promise: { id: "p", state: "pending" } } });
    expect(settled).toMatchObject({ status: 200, data: { promise: { id: "p", state: "resolved" } } });
    expect(again).toMatchObject({ status: 200, data: { promise: { id: "p", state: "resolved" } } });
    await expect(network.send({ kind: "promise.get", data: { id: "" } })).rejects.toBeInstanceOf(
      ProtocolRejection,
    );
  });

  test("the token travels with every request and a wrong one is rejected with 401", async () => {
    const server = await serve({ authToken: "s3cret" });
    const good = remote(server.url, { token: "s3cret" });
    expect((await good.send({ kind: "promise.get", data: { id: "nope" } })).status).toBe(404);
    const messages = inbox(good);
    await good.send(create("job", { "resonate:target": "poll://any@g" }));
    await messages.next(executeOf("job"));

    const wrong = remote(server.url, { token: "guess" });
    const error = await rejection(wrong.send({ kind: "promise.get", data: { id: "nope" } }));
    expect(error).toBeInstanceOf(ProtocolRejection);
    expect(error).toMatchObject({ status: 401 });
  });

  test("a request too large for the server is rejected with 413", async () => {
    const server = await serve({ maxBodyBytes: 1024 });
    const network = remote(server.url);
    const big: NetworkRequest = {
      kind: "promise.create",
      data: { id: "big", timeoutAt: Date.now() + HOUR, param: { data: "x".repeat(4096) } },
    };
    const error = await rejection(network.send(big));
    expect(error).toBeInstanceOf(ProtocolRejection);
    expect(error).toMatchObject({ status: 413 });
  });

  test("an answer that is not a protocol answer for this request is retried with the same body until one is", async () => {
    const seen: { body: string; path: string | undefined; headers: IncomingMessage["headers"] }[] = [];
    const url = await fakeServer((request, body, response) => {
      seen.push({ body, path: request.url, headers: request.headers });
      const json = { "content-type": "application/json" };
      switch (seen.length) {
        case 1:
          return response.writeHead(503, json).end(answer(body, 503, "store down"));
        case 2:
          return response.writeHead(200, { "content-type": "text/html" }).end("<html>proxy</html>");
        case 3:
          return response.writeHead(200, json).end(answer(body, 200, { promise: {} }, "someone-else"));
        case 4:
          return response.writeHead(429, json).end(answer(body, 429, "slow down"));
        case 5:
          return response.writeHead(404, { "content-type": "text/html" }).end("no such route");
        case 6:
          return request.socket.destroy();
        default:
          return response.writeHead(200, json).end(answer(body, 200, { promise: { id: "p" } }));
      }
    });
    const network = new RemoteNetwork({
      url: `${url}/api`,
      token: "tok",
      group: "g",
      pid: "w1",
      retry: { initialMs: 1, maxMs: 2 },
    });
    cleanups.push(() => network.close());
    const response = await network.send({ kind: "promise.get", data: { id: "p" } });
    expect(response).toEqual({ status: 200, data: { promise: { id: "p" } } });
    expect(seen).toHaveLength(7);
    const first = seen[0];
    expect(first?.path).toBe("/api");
    expect(first?.headers).toMatchObject({ "content-type": "application/json", authorization: "Bearer tok" });
    expect(JSON.parse(first?.body ?? "")).toMatchObject({
      kind: "promise.get",
      head: { version: "2026-04-01", auth: "tok" },
      data: { id: "p" },
    });
    expect(new Set(seen.map(({ body }) => body)).size).toBe(1);
  });

  test("a refusal without an envelope is final, not retried", async () => {
    let attempts = 0;
    const url = await fakeServer((_request, _body, response) => {
      attempts += 1;
      response.writeHead(403, { "content-type": "text/plain" }).end("forbidden by the proxy");
    });
    const network = remote(url);
    const error = await rejection(network.send({ kind: "promise.get", data: { id: "p" } }));
    expect(error).toBeInstanceOf(ProtocolRejection);
    expect(error).toMatchObject({ status: 403, message: expect.stringContaining("forbidden by the proxy") });
    expect(attempts).toBe(1);
  });

  test("the poll stream is read at {url}/poll/{group}/{pid} and reconnects after it ends", async () => {
    const paths: (string | undefined)[] = [];
    const url = await fakeServer((request, _body, response) => {
      paths.push(request.url);
      const id = `t${paths.length}`;
      response.writeHead(200, { "content-type": "text/event-stream" });
      response.end(`:\n\ndata: {"kind":"execute","head":{},"data":{"task":{"id":"${id}","version":1}}}\n\n`);
    });
    const network = new RemoteNetwork({
      url: `${url}/`,
      group: "my group",
      pid: "p/1",
      reconnect: { initialMs: 1, maxMs: 2 },
    });
    cleanups.push(() => network.close());
    expect(network.unicast).toBe("poll://uni@my group/p/1");
    const messages = inbox(network);
    await messages.next(executeOf("t2"));
    expect(
      messages.received.slice(0, 2).map((message) => message.kind === "execute" && message.data.task.id),
    ).toEqual(["t1", "t2"]);
    expect(paths[0]).toBe("/poll/my%20group/p%2F1");
  });

  test("the event-stream reader splits events on CR, LF and CRLF across chunks, joins data lines and skips comments and named events", async () => {
    const text =
      "\uFEFF: keep-alive\r\n\r\n" +
      'data: {"id":"ü1"}\r\n\r\n' +
      'event: other\ndata: {"id":"named"}\n\n' +
      'data: {"id":\ndata:"two-lines"}\r\r' +
      "id: 7\nretry: 10\ndata:no-space\n\n" +
      "data: incomplete at the end";
    const bytes = new TextEncoder().encode(text);
    const chunks: Uint8Array[] = [];
    for (let start = 0; start < bytes.length; start += 3) chunks.push(bytes.slice(start, start + 3));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(chunk);
        controller.close();
      },
    });
    const events: string[] = [];
    await readEvents(stream, (data) => events.push(data));
    expect(events).toEqual(['{"id":"ü1"}', '{"id":\n"two-lines"}', "no-space"]);
  });

  test("a server that starts late still gets the request, and the subscription connects", async () => {
    const port = await freePort();
    const network = remote(`http://127.0.0.1:${port}`, { group: "late" });
    const messages = inbox(network);
    const created = network.send(create("early", { "resonate:target": "poll://any@late" }));
    await new Promise((resolve) => setTimeout(resolve, 300)); // the deliberate delay
    await serve({ port });
    expect((await created).status).toBe(200);
    await messages.next(executeOf("early"));
  });

  test("close rejects a send that is waiting to retry with NetworkClosedError", async () => {
    const port = await freePort();
    const { timers, armed } = backoffWatch();
    const network = new RemoteNetwork({
      url: `http://127.0.0.1:${port}`,
      group: "g",
      pid: "w1",
      timers,
      retry: LONG_BACKOFF,
    });
    const pending = network.send({ kind: "promise.get", data: { id: "p" } });
    await armed;
    await network.close();
    const error = await rejection(pending);
    expect(error).toBeInstanceOf(NetworkClosedError);
    expect((error as Error).message).toMatch(/promise\.get .*ECONNREFUSED/);
    expect(await rejection(network.send({ kind: "promise.get", data: { id: "p" } }))).toBeInstanceOf(
      NetworkClosedError,
    );
  }, 5_000);

  test("sequential sends share one keep-alive connection", async () => {
    const ports: (number | undefined)[] = [];
    const url = await fakeServer((request, body, response) => {
      ports.push(request.socket.remotePort);
      response.writeHead(200, { "content-type": "application/json" }).end(answer(body, 200, { promise: {} }));
    });
    const network = remote(url);
    for (const id of ["a", "b", "c"]) await network.send({ kind: "promise.get", data: { id } });
    expect(ports).toHaveLength(3);
    expect(new Set(ports).size).toBe(1);
  });

  test("an answer cut off mid-body is retried until one arrives whole", async () => {
    let attempts = 0;
    const url = await fakeServer((request, body, response) => {
      attempts += 1;
      const whole = answer(body, 200, { promise: { id: "p" } });
      if (attempts === 1) {
        response.writeHead(200, { "content-type": "application/json", "content-length": whole.length });
        response.write(whole.slice(0, 10), () => request.socket.destroy());
        return;
      }
      response.writeHead(200, { "content-type": "application/json" }).end(whole);
    });
    const network = new RemoteNetwork({ url, group: "g", pid: "w1", retry: { initialMs: 1, maxMs: 2 } });
    cleanups.push(() => network.close());
    expect(await network.send({ kind: "promise.get", data: { id: "p" } })).toEqual({
      status: 200,
      data: { promise: { id: "p" } },
    });
    expect(attempts).toBe(2);
  });

  test("an attempt unanswered within requestTimeoutMs is given up, its connection closed, and named as the failure", async () => {
    const closedConnections: Promise<void>[] = [];
    const url = await fakeServer((request) => {
      closedConnections.push(new Promise((resolve) => request.socket.on("close", () => resolve())));
    });
    const { timers, armed } = backoffWatch();
    const network = new RemoteNetwork({
      url,
      group: "g",
      pid: "w1",
      timers,
      retry: LONG_BACKOFF,
      requestTimeoutMs: 50,
    });
    cleanups.push(() => network.close());
    const pending = network.send({ kind: "promise.get", data: { id: "p" } });
    await armed;
    await Promise.all(closedConnections);
    await network.close();
    const error = await rejection(pending);
    expect(error).toBeInstanceOf(NetworkClosedError);
    expect((error as Error).message).toMatch(/promise\.get .*no answer within 50 ms/);
  }, 5_000);

  test("close aborts a request in flight: the send rejects with NetworkClosedError and the connection closes", async () => {
    let arrived: () => void = () => {};
    const requested = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    let connectionClosed: Promise<void> = Promise.resolve();
    const url = await fakeServer((request) => {
      connectionClosed = new Promise((resolve) => request.socket.on("close", () => resolve()));
      arrived(); // and never answers
    });
    const network = remote(url);
    const pending = network.send({ kind: "promise.get", data: { id: "p" } });
    await requested;
    await network.close();
    const error = await rejection(pending);
    expect(error).toBeInstanceOf(NetworkClosedError);
    expect((error as Error).message).toMatch(/promise\.get .*last failure: none/);
    await connectionClosed;
  }, 5_000);

  test("after close nothing keeps the process alive (a child process exits by itself)", async () => {
    const server = await serve();
    const deadPort = await freePort();
    const remoteModule = new URL("../../src/sdk/network/remote.ts", import.meta.url).href;
    const script = `
      import { RemoteNetwork } from ${JSON.stringify(remoteModule)};
      const live = new RemoteNetwork({ url: process.env.LIVE_URL, group: "g", pid: "child" });
      const dead = new RemoteNetwork({ url: process.env.DEAD_URL, group: "g", pid: "child",
        retry: { initialMs: 120000, maxMs: 120000 } });
      let executed;
      const seen = new Promise((resolve) => { executed = resolve; });
      live.subscribe((message) => { if (message.kind === "execute") executed(); });
      dead.subscribe(() => {});
      await live.send({ kind: "promise.create", data: { id: "c", timeoutAt: Date.now() + 60000,
        tags: { "resonate:target": "poll://any@g" } } });
      await seen;
      const pending = dead.send({ kind: "promise.get", data: { id: "c" } }).catch((error) => error.name);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await live.close();
      await dead.close();
      console.log("closed", await pending);
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      env: { ...process.env, LIVE_URL: server.url, DEAD_URL: `http://127.0.0.1:${deadPort}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
    });
    child.stderr.on("data", (chunk) => {
      output += chunk;
    });
    const code = await new Promise<number | string>((resolve) => {
      const limit = setTimeout(() => {
        child.kill("SIGKILL");
        resolve("still running 10 s later");
      }, 10_000);
      child.on("exit", (exitCode) => {
        clearTimeout(limit);
        resolve(exitCode ?? "killed");
      });
    });
    expect({ code, output: output.trim() }).toEqual({ code: 0, output: "closed NetworkClosedError" });
  }, 15_000);
});

describe("remote network over several servers (R5)", () => {
  /** A `batchServer` named `name` that records, in `log`, `name` for every POST it answers (`name[n]`: a batch of n). */
  async function namedServer(name: string, log: string[], port?: number): Promise<string> {
    const onPost = (size: number) => log.push(size === 0 ? name : `${name}[${size}]`);
    return (await batchServer({ name, onPost, ...(port !== undefined && { port }) })).url;
  }

  const get = (network: Network, id: string) => network.send({ kind: "promise.get", data: { id } });

  test("each POST goes to the next server in turn, a turn's batch whole to one", async () => {
    const log: string[] = [];
    const urls = [await namedServer("A", log), await namedServer("B", log), await namedServer("C", log)];
    const network = new RemoteNetwork({ url: urls, group: "g", pid: "w1" });
    cleanups.push(() => network.close());
    for (const id of ["1", "2", "3", "4"]) await get(network, id);
    const batch = await Promise.all(["x", "y", "z"].map((id) => get(network, id)));
    expect(batch.map((response) => response.data)).toEqual(["B has no x", "B has no y", "B has no z"]);
    await get(network, "5");
    expect(log).toEqual(["A", "B", "C", "A", "B[3]", "C"]);
  });

  test("a server that does not answer is passed over: its request is answered by the next at once, and it is skipped until its cool-down ends", async () => {
    const log: string[] = [];
    const deadPort = await freePort();
    const live = await namedServer("B", log);
    let now = 1_000_000;
    const network = new RemoteNetwork({
      url: [`http://127.0.0.1:${deadPort}`, live],
      group: "g",
      pid: "w1",
      now: () => now,
      random: () => 0.5,
      retry: LONG_BACKOFF, // a backoff would outlast the test: failing over must not wait for one
      reconnect: { initialMs: 1_000, maxMs: 30_000 },
    });
    cleanups.push(() => network.close());
    // Sent together, the first, third and fifth go to the dead server first: three failures in
    // one cool-down count as one, so the cool-down is the first step's (750 ms here), not the third's.
    const together = await Promise.all(["1", "2", "3", "4", "5"].map((id) => get(network, id)));
    expect(together.map((response) => response.data)).toEqual(
      ["1", "2", "3", "4", "5"].map((id) => `B has no ${id}`),
    );
    expect(log).toEqual(["B", "B", "B", "B", "B"]);
    // The cool-down over, the first server is tried again; it answers now, and takes its turns again.
    const revived: string[] = [];
    await namedServer("A", revived, deadPort);
    now += 1_000;
    for (const id of ["4", "5", "6"]) await get(network, id);
    expect({ A: revived, B: log.slice(5) }).toEqual({ A: ["A", "A"], B: ["B"] });
  }, 5_000);

  test("when no server answers, the request waits with the usual backoff after trying each once", async () => {
    const ports = [await freePort(), await freePort()];
    const { timers, armed } = backoffWatch();
    const network = new RemoteNetwork({
      url: ports.map((port) => `http://127.0.0.1:${port}`),
      group: "g",
      pid: "w1",
      timers,
      retry: LONG_BACKOFF,
    });
    const pending = get(network, "p");
    await armed;
    await network.close();
    const error = await rejection(pending);
    expect(error).toBeInstanceOf(NetworkClosedError);
    // The last failure before the wait was the second server's: the first's failed over to it.
    expect((error as Error).message).toContain(`ECONNREFUSED 127.0.0.1:${ports[1]}`);
  }, 5_000);

  test("the poll stream moves on to the next server when its connection fails", async () => {
    const deadPort = await freePort();
    const paths: string[] = [];
    const live = await fakeServer((request, _body, response) => {
      paths.push(request.url ?? "");
      response.writeHead(200, { "content-type": "text/event-stream" });
      response.write(`data: {"kind":"execute","head":{},"data":{"task":{"id":"t","version":1}}}\n\n`);
    });
    const network = new RemoteNetwork({
      url: [`http://127.0.0.1:${deadPort}`, live],
      group: "g",
      pid: "w1",
      random: () => 0, // the first connection goes to the first server, which refuses it
      reconnect: { initialMs: 1, maxMs: 2 },
    });
    cleanups.push(() => network.close());
    await inbox(network).next(executeOf("t"));
    expect(paths).toEqual(["/poll/g/w1"]);
  });

  test("a list that is empty or names anything but http(s) URLs is refused, naming the entry", () => {
    const open = (url: unknown) => () => new RemoteNetwork({ url: url as string[], group: "g", pid: "w1" });
    expect(open([])).toThrow(/^url: expected a URL or a non-empty list of URLs, got \[\]$/);
    expect(open(["http://127.0.0.1:1", "ftp://127.0.0.1:2"])).toThrow(
      'url[1]: expected http:// or https://, got "ftp://127.0.0.1:2"',
    );
    expect(open(["http://127.0.0.1:1", 7])).toThrow("url[1]: not a URL: 7");
    expect(open("nope")).toThrow('url: not a URL: "nope"');
    expect(open(["http://127.0.0.1:1", "http://127.0.0.1:2/", "http://127.0.0.1:1/"])).toThrow(
      'url[2]: "http://127.0.0.1:1/" is listed twice (also url[0])',
    );
  });
});

describe("embedded network", () => {
  function shellOn(store: Store): ServerShell {
    const shell = new ServerShell(
      { store, clock: new MonotonicClock(systemClock), timers: systemTimers, logger: silentLogger },
      { debug: false, retryTimeoutMs: 5000, unblockTtlMs: HOUR },
    );
    cleanups.push(() => shell.close());
    return shell;
  }

  function embedded(shell: ServerShell): EmbeddedNetwork {
    const network = new EmbeddedNetwork(shell, { group: "g", pid: "w1" });
    cleanups.push(() => network.close());
    return network;
  }

  sharedBehaviours(async () => {
    const shell = shellOn(new MemoryStore());
    shell.start();
    return embedded(shell);
  });

  /** A memory store that throws `StoreUnavailableError` while `failures` is positive. */
  function flakyStore(): Store & { failures: number } {
    const inner = new MemoryStore();
    return {
      failures: 0,
      description: "flaky memory",
      stats: inner.stats,
      transaction(work) {
        if (this.failures > 0) {
          this.failures -= 1;
          return Promise.reject(new StoreUnavailableError("store down"));
        }
        return inner.transaction(work);
      },
      ping: () => inner.ping(),
      close: () => inner.close(),
    };
  }

  test("a store that is unavailable for a while is retried until it answers", async () => {
    const store = flakyStore();
    const network = embedded(shellOn(store));
    store.failures = 3;
    const created = await network.send(create("p1"));
    expect(created.status).toBe(200);
    expect(store.failures).toBe(0);
  });

  test("close rejects a send that is waiting for the store with NetworkClosedError", async () => {
    const store = flakyStore();
    const { timers, armed } = backoffWatch();
    const network = new EmbeddedNetwork(shellOn(store), {
      group: "g",
      pid: "w1",
      timers,
      retry: LONG_BACKOFF,
    });
    store.failures = Number.POSITIVE_INFINITY;
    const pending = network.send(create("p1"));
    await armed;
    await network.close();
    const error = await rejection(pending);
    expect(error).toBeInstanceOf(NetworkClosedError);
    expect((error as Error).message).toMatch(/store down/);
  }, 5_000);

  test("a bad request never reaches the core's assertions", async () => {
    const network = embedded(shellOn(new MemoryStore()));
    const error = await rejection(network.send({ kind: "promise.get", data: { id: "a\u0000b" } }));
    expect(error).toBeInstanceOf(ProtocolRejection);
    expect(error).not.toBeInstanceOf(AssertionError);
  });
});
