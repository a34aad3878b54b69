/**
 * Shared pieces of the black-box server tests (test/server): in-process servers
 * on real HTTP, an SSE reader for `GET /poll/{group}/{id}` built on fetch
 * streaming, temporary directories, and a free-port finder for child processes.
 * Everything a test starts here is registered and torn down by `cleanUp()`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_SERVE_OPTIONS, type RunningServer, type ServeOptions } from "../../src/node/options.js";
import { startServer } from "../../src/node/serve.js";
import { type CallOptions, call, type Json, type Reply } from "../support/client.js";

export { call, type Json, type Reply };

const servers = new Set<RunningServer>();
const streams = new Set<PollStream>();
const directories = new Set<string>();
const sockets = new Set<Socket>();

/** Starts an in-process server on a free port with quiet logs and the memory store, unless overridden. */
export async function serve(overrides: Partial<ServeOptions> = {}): Promise<RunningServer> {
  const server = await startServer({
    ...DEFAULT_SERVE_OPTIONS,
    store: "memory",
    port: 0,
    logLevel: "silent",
    retryTimeoutMs: 60_000,
    ...overrides,
  });
  servers.add(server);
  return server;
}

/** Closes a server started by `serve` (idempotent). */
export async function stop(server: RunningServer): Promise<void> {
  servers.delete(server);
  await server.close();
}

/** A fresh temporary directory, removed by `cleanUp()`. */
export function temporaryDirectory(prefix = "pledge-server-"): string {
  const directory = mkdtempSync(join(tmpdir(), prefix));
  directories.add(directory);
  return directory;
}

/** Closes every stream and server this file opened, and removes its temporary directories. */
export async function cleanUp(): Promise<void> {
  for (const stream of streams) stream.close();
  streams.clear();
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  const open = [...servers];
  servers.clear();
  await Promise.allSettled(open.map((server) => server.close()));
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
  directories.clear();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 5 ms; rejects with `what` after `timeoutMs` (a failure bound, never the assertion). */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** A port nobody listens on right now (listen on 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------
// Requests

/** A request that must answer 200; returns `data`. */
export async function ok(url: string, kind: string, data: unknown, options: CallOptions = {}): Promise<Json> {
  const reply = await call(url, kind, data, options);
  if (reply.httpStatus !== 200 || reply.status !== 200)
    throw new Error(
      `${kind} ${JSON.stringify(data)} answered ${reply.httpStatus}: ${JSON.stringify(reply.body)}`,
    );
  return reply.data;
}

/** Creates an external (`resonate:external`) promise that can be listened to; returns its record. */
export async function createExternal(url: string, id: string, options: CallOptions = {}): Promise<Json> {
  const data = await ok(
    url,
    "promise.create",
    { id, timeoutAt: Date.now() + 600_000, tags: { "resonate:external": "true" } },
    options,
  );
  return data.promise;
}

/** Creates a targeted promise (so a task, dispatched to `target`); returns its record. */
export async function createTargeted(url: string, id: string, target: string): Promise<Json> {
  const data = await ok(url, "promise.create", {
    id,
    timeoutAt: Date.now() + 600_000,
    tags: { "resonate:target": target },
  });
  return data.promise;
}

/** Registers `address` as a listener of `id` and settles it; returns the settled record. */
export async function listenAndSettle(url: string, id: string, address: string): Promise<Json> {
  await ok(url, "promise.register_listener", { awaited: id, address });
  const data = await ok(url, "promise.settle", { id, state: "resolved", value: { data: "ZG9uZQ==" } });
  return data.promise;
}

// ---------------------------------------------------------------------------
// SSE

/** `GET /poll/{group}/{id}` without reading it: for status checks. */
export function pollRequest(url: string, group: string, id: string, token?: string): Promise<Response> {
  const headers: Record<string, string> = { accept: "text/event-stream" };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return fetch(`${url}/poll/${encodeURIComponent(group)}/${encodeURIComponent(id)}`, { headers });
}

/**
 * One worker connection: every `data:` event parsed as JSON into `messages`, in
 * arrival order; comment lines (`:`) are counted, not kept.
 */
export class PollStream {
  readonly messages: Json[] = [];
  comments = 0;
  ended = false;
  private readonly controller = new AbortController();
  private pending = "";

  private constructor(
    readonly group: string,
    readonly id: string,
  ) {}

  /**
   * Opens the stream and resolves once the first bytes (the server's opening
   * comment) arrive: the server registers the connection before it writes them,
   * so from then on the connection is routable.
   */
  static async open(url: string, group: string, id: string, token?: string): Promise<PollStream> {
    const stream = new PollStream(group, id);
    streams.add(stream);
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`${url}/poll/${encodeURIComponent(group)}/${encodeURIComponent(id)}`, {
      headers,
      signal: stream.controller.signal,
    });
    if (response.status !== 200 || response.body === null)
      throw new Error(`GET /poll/${group}/${id} answered ${response.status}: ${await response.text()}`);
    const contentType = response.headers.get("content-type") ?? "";
    if (!contentType.startsWith("text/event-stream"))
      throw new Error(`GET /poll/${group}/${id} answered content type ${contentType}`);
    const reader = response.body.getReader();
    const opened = new Promise<void>((resolve, reject) => {
      void stream.read(reader, resolve).catch(reject);
    });
    await opened;
    return stream;
  }

  private async read(reader: ReadableStreamDefaultReader<Uint8Array>, opened: () => void): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        this.pending += decoder.decode(value, { stream: true });
        this.parse();
        opened();
      }
    } catch {
      // aborted by close(), or the server went away
    } finally {
      this.ended = true;
      opened();
    }
  }

  /** Splits complete events (blank-line terminated) off `pending`. */
  private parse(): void {
    for (;;) {
      const match = /\r?\n\r?\n/.exec(this.pending);
      if (match === null) return;
      const block = this.pending.slice(0, match.index);
      this.pending = this.pending.slice(match.index + match[0].length);
      const data: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(":")) this.comments += 1;
        else if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
      }
      if (data.length > 0) this.messages.push(JSON.parse(data.join("\n")));
    }
  }

  /** Messages of `kind` about `id` (an execute's task id or an unblock's promise id). */
  about(kind: "execute" | "unblock", id: string): Json[] {
    return this.messages.filter(
      (message) =>
        message.kind === kind &&
        (kind === "execute" ? message.data?.task?.id === id : message.data?.promise?.id === id),
    );
  }

  /** Resolves with the first message matching `predicate`, received already or later. */
  async waitFor(predicate: (message: Json) => boolean, what: string, timeoutMs = 5000): Promise<Json> {
    let found: Json;
    await waitUntil(
      () => {
        found = this.messages.find(predicate);
        return found !== undefined;
      },
      `${what} on ${this.group}/${this.id} (received ${JSON.stringify(this.messages)})`,
      timeoutMs,
    );
    return found;
  }

  close(): void {
    this.controller.abort();
    streams.delete(this);
  }
}

/**
 * An ordering barrier for one connection: settles a fresh external promise
 * listened to by `poll://uni@{group}/{id}` and waits for its `unblock`. A
 * connection receives its messages in commit order, so once the barrier arrives,
 * every message committed earlier for this connection has arrived too; what has
 * not, never went to it.
 */
let barrierCounter = 0;
export async function barrier(url: string, stream: PollStream): Promise<void> {
  barrierCounter += 1;
  const id = `barrier-${stream.group}-${stream.id}-${barrierCounter}`;
  await createExternal(url, id);
  await listenAndSettle(url, id, `poll://uni@${stream.group}/${stream.id}`);
  await stream.waitFor((message) => message.kind === "unblock" && message.data.promise.id === id, id);
}

// ---------------------------------------------------------------------------
// Raw sockets, for races that fetch cannot stage

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => resolve(socket));
    socket.setNoDelay(true);
    socket.once("error", reject);
    sockets.add(socket);
  });
}

/** What a raw `GET /poll` socket has received, as text (HTTP framing included). */
export interface RawPoll {
  text(): string;
  /** How many SSE `data:` events mention `"id":"<id>"`. */
  count(id: string): number;
}

/**
 * Makes the last byte of a `POST /` with `body` and a whole `GET /poll/{group}/{id}`
 * reach an in-process server in the same turn of its event loop: both writes
 * leave this process before its loop polls again, so the server reads them in
 * one poll phase, the POST first. Resolves with the POST's raw HTTP answer once
 * it is complete, and the poll socket, which stays open until `cleanUp()`.
 */
export async function racePostWithPoll(
  port: number,
  body: string,
  group: string,
  id: string,
): Promise<{ answer: string; poll: RawPoll }> {
  const post = await openSocket(port);
  const get = await openSocket(port);
  let answer = "";
  let received = "";
  const answered = new Promise<void>((resolve) => {
    post.on("data", (chunk: Buffer) => {
      answer += chunk.toString("utf8");
      const end = answer.indexOf("\r\n\r\n");
      const length = /content-length:\s*(\d+)/i.exec(answer);
      if (end >= 0 && length !== null && Buffer.byteLength(answer.slice(end + 4)) >= Number(length[1]))
        resolve();
    });
  });
  get.on("data", (chunk: Buffer) => {
    received += chunk.toString("utf8");
  });
  const bytes = Buffer.from(body, "utf8");
  post.write(
    `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${bytes.length}\r\n\r\n`,
  );
  post.write(bytes.subarray(0, bytes.length - 1));
  await sleep(20);
  post.write(bytes.subarray(bytes.length - 1));
  get.write(
    `GET /poll/${encodeURIComponent(group)}/${encodeURIComponent(id)} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`,
  );
  await answered;
  return {
    answer,
    poll: {
      text: () => received,
      count: (promiseOrTaskId: string) =>
        received
          .split(/\r?\n/)
          .filter(
            (line) => line.startsWith("data:") && line.includes(`"id":${JSON.stringify(promiseOrTaskId)}`),
          ).length,
    },
  };
}

/** One raw HTTP/1.1 answer: status and parsed JSON body. */
export interface RawAnswer {
  status: number;
  body: Json;
}

/** Reads what arrives on a socket; `next(done)` resolves with the bytes once `done` says they are complete. */
function socketReader(socket: Socket): {
  next(done: (bytes: Buffer) => number | undefined): Promise<Buffer>;
} {
  let buffer = Buffer.alloc(0);
  let waiting: { done: (bytes: Buffer) => number | undefined; resolve(bytes: Buffer): void } | undefined;
  const check = () => {
    if (waiting === undefined) return;
    const length = waiting.done(buffer);
    if (length === undefined) return;
    const bytes = buffer.subarray(0, length);
    buffer = buffer.subarray(length);
    const { resolve } = waiting;
    waiting = undefined;
    resolve(bytes);
  };
  socket.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    check();
  });
  return {
    next(done) {
      return new Promise((resolve) => {
        waiting = { done, resolve };
        check();
      });
    },
  };
}

/** Length of a complete HTTP/1.1 answer with a Content-Length, or of an empty chunked one; else undefined. */
function answerLength(bytes: Buffer): number | undefined {
  const end = bytes.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const head = bytes.subarray(0, end).toString("latin1");
  const length = /content-length:\s*(\d+)/i.exec(head);
  if (length !== null)
    return bytes.length >= end + 4 + Number(length[1]) ? end + 4 + Number(length[1]) : undefined;
  const last = bytes.indexOf("0\r\n\r\n", end + 4);
  return last < 0 ? undefined : last + 5;
}

function parseAnswer(bytes: Buffer): RawAnswer {
  const end = bytes.indexOf("\r\n\r\n");
  const head = bytes.subarray(0, end).toString("latin1");
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  return { status, body: JSON.parse(bytes.subarray(end + 4).toString("utf8")) };
}

/**
 * POSTs every body to `/` at once: one keep-alive connection each, all opened
 * and proven accepted first (a `GET /health` answered on each), then every
 * request written in one synchronous block, so the server reads them all in the
 * same turn of its event loop (what concurrent clients in other processes look
 * like to it). Answers in the order of `bodies`.
 */
export async function postAllAtOnce(port: number, bodies: string[]): Promise<RawAnswer[]> {
  const connections = await Promise.all(bodies.map(() => openSocket(port)));
  const readers = connections.map(socketReader);
  for (const socket of connections) socket.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const warm = await Promise.all(readers.map((reader) => reader.next(answerLength)));
  for (const bytes of warm)
    if (!bytes.toString("latin1").startsWith("HTTP/1.1 200")) throw new Error("GET /health failed");
  const answers = readers.map((reader) => reader.next(answerLength));
  for (const [index, socket] of connections.entries()) {
    const bytes = Buffer.from(bodies[index] ?? "", "utf8");
    const head = `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${bytes.length}\r\n\r\n`;
    socket.write(Buffer.concat([Buffer.from(head, "latin1"), bytes]));
  }
  return (await Promise.all(answers)).map(parseAnswer);
}

/** A request envelope as text. */
export function envelope(kind: string, data: unknown, head: Record<string, unknown> = {}): string {
  return JSON.stringify({
    kind,
    head: { corrId: `${kind}-${Math.random()}`, version: "2026-04-01", ...head },
    data,
  });
}
