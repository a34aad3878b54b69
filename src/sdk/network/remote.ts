/**
 * The remote network: protocol envelopes over `POST {url}` and outgoing
 * messages over the SSE stream `GET {url}/poll/{group}/{pid}` (PROTOCOL.md
 * §1.1–§1.3, §1.8, §1.9). It owns the envelope, the bearer token, matching an
 * answer to its request, retries with backoff, and the poll stream's parser and
 * reconnects. What an answer means is the caller's business.
 *
 * `url` may list several servers: replicas of one server on one store, each of
 * which takes any request (PostgreSQL). POSTs then go round-robin, one server
 * per POST, as a load balancer in front of the replicas would route them; the
 * poll stream holds one connection and moves to the next server when that
 * connection fails or ends. A server that gave no answer is passed over until
 * a cool-down has passed (the reconnect policy: 0.5–1 s, doubling up to 15–30 s
 * while it keeps failing), and a request that met it is tried again at once on
 * the next server: a replica that died costs the requests in flight to it one
 * more attempt each, not a backoff.
 *
 * Envelopes go through `node:http(s)` over a keep-alive agent of this network's
 * own, not `fetch`: a step costs a few round trips, and fetch's web-stream
 * machinery (Request, AbortSignal, ReadableStream) cost a worker more CPU per
 * request than the rest of the step. The poll stream is one long-lived
 * request, so it keeps `fetch`.
 *
 * Answers are sorted by the protocol status (`head.status`; the HTTP status
 * mirrors it on Pledge, and only stands in when a body is not an envelope):
 *  - 200, 300, 404, 409, 422: a `Response` (N1).
 *  - other 4xx except 408/429, and 501: a `ProtocolRejection`; the same request
 *    cannot succeed later (bad field, bad token, too large).
 *  - anything else (fetch threw, timeout, 408, 429, 5xx, a body that is not an
 *    envelope for this request): retried, 100 ms doubling to 5 s with jitter,
 *    until answered or `close()` (then `NetworkClosedError`).
 *
 * Retrying is safe because every protocol write is idempotent by id except
 * `task.acquire`: an acquire whose first attempt was applied but whose answer
 * was lost answers `409` when retried. The worker treats a `409` on acquire as
 * "not ours": the task it did acquire lapses with its lease and the server
 * dispatches it again. Nothing is lost, it is only late.
 *
 * Invariants:
 *  R1  A retried request keeps its body and corrId; only an answer whose `kind`
 *      and `head.corrId` echo them is accepted (a rejection may echo
 *      "unknown"/"0": Pledge answers so when it could not read the body).
 *  R2  After `close()` nothing is pending: no timer, no request, no idle
 *      socket, no reconnect. Until then a pending send or a subscription keeps
 *      the process alive (the default timers are not `unref`'d), as an open
 *      socket would: an awaited send must not end the process halfway through
 *      a backoff. Idle keep-alive sockets never keep it alive (the agent
 *      `unref`s them).
 *  R3  A message reaches `onMessage` in a microtask of its own, never after the
 *      subscription was stopped, and only once it is an `execute` or an
 *      `unblock` with the fields a worker reads.
 *  R4  Where the server names the `batch` extension (ADR 0006), the first
 *      attempts of one turn of the event loop go in one POST, an array of their
 *      envelopes, at most 1 MiB of them; each slot of the answering array is
 *      sorted as if it had come alone (R1). An answer that is not an array of as
 *      many slots fails every request of the batch, and each is retried alone at
 *      once (the fault may be the batch's), then with the usual backoff.
 *  R5  With several servers, each POST goes to the next in turn that is not
 *      cooling down (all cooling: the one whose cool-down ends first). A POST
 *      that got no answer (refused, reset, cut off, timed out) starts its
 *      server's cool-down unless one is running (the requests in flight to a
 *      dead server count as one failure, not as many), and each of its requests
 *      is tried again at once, alone, up to once per other server between two
 *      waits of the usual backoff. Any answer, whatever its status, ends the
 *      server's cool-down. A URL listed twice is refused.
 */
import {
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type RequestOptions,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { urlToHttpOptions } from "node:url";
import type { Timers } from "../../lib/clock.js";
import {
  BATCH_EXTENSION,
  EXTENSIONS_HEADER,
  MAX_BATCH_REQUESTS,
  type OutgoingMessage,
  PROTOCOL_VERSION,
} from "../../protocol/records.js";
import type { ErrorDetail, Response } from "../../protocol/requests.js";
import { type Network, NetworkClosedError, type NetworkRequest, ProtocolRejection } from "./network.js";

export interface RetryPolicy {
  initialMs: number;
  maxMs: number;
}

export interface RemoteNetworkOptions {
  /**
   * Where envelopes are posted, exactly (`http://127.0.0.1:8001` posts to `/`);
   * several: replicas of one server, used round-robin (header of this file).
   */
  url: string | readonly string[];
  /** Bearer token: `Authorization: Bearer` and `head.auth`. */
  token?: string | undefined;
  group: string;
  pid: string;
  /** Correlation ids. Default `crypto.randomUUID`. */
  newId?: () => string;
  /** Default: the process's timers, kept referenced (R2). */
  timers?: Timers;
  /** Jitter source, in [0, 1). Default `Math.random`. */
  random?: () => number;
  /** Backoff of `send`. Default 100 ms doubling to 5 s. */
  retry?: RetryPolicy;
  /** Backoff of the poll stream's reconnects. Default 1 s doubling to 30 s. */
  reconnect?: RetryPolicy;
  /** One attempt (answer included) gives up after this long. Default 10 s. */
  requestTimeoutMs?: number;
  /** Milliseconds, for the cool-down of a server that failed (R5). Default `Date.now`. */
  now?: () => number;
}

export const SEND_RETRY: RetryPolicy = { initialMs: 100, maxMs: 5_000 };
export const RECONNECT: RetryPolicy = { initialMs: 1_000, maxMs: 30_000 };
const REQUEST_TIMEOUT_MS = 10_000;
/**
 * An idle keep-alive socket is closed after this long, before Node's default
 * server keep-alive (5 s) would close it under a request sent on it. A server
 * that announces a shorter `Keep-Alive: timeout` shortens it (Node's agent
 * reads the hint only when it has a timeout of its own).
 */
const IDLE_SOCKET_TIMEOUT_MS = 4_000;
/** The most body one batch of several requests carries (R4); a larger request goes alone. */
const MAX_BATCH_BYTES = 1024 * 1024;
/** An SSE event larger than this is not a message of ours: drop the connection. */
const MAX_EVENT_CHARS = 64 * 1024 * 1024;

/** Timers that keep the process alive while armed (R2). */
export const processTimers: Timers = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

// ---------------------------------------------------------------------------
// Shared with the embedded network (node/embedded-network.ts)

/** The wire envelope of a request. Nested actions get a head too, as other SDKs send them. */
export function toEnvelope(request: NetworkRequest, corrId: string, auth?: string) {
  const head =
    auth === undefined ? { corrId, version: PROTOCOL_VERSION } : { corrId, version: PROTOCOL_VERSION, auth };
  return { kind: request.kind, head, data: withNestedHeads(request, corrId) };
}

function withNestedHeads(request: NetworkRequest, corrId: string): unknown {
  const nest = (action: object) =>
    "data" in action && "kind" in action
      ? { kind: action.kind, head: { corrId, version: PROTOCOL_VERSION }, data: action.data }
      : action;
  switch (request.kind) {
    case "task.create":
    case "task.fence":
    case "task.fulfill":
      return { ...request.data, action: nest(request.data.action) };
    case "task.suspend":
      return { ...request.data, actions: request.data.actions.map(nest) };
    default:
      return request.data;
  }
}

export type StatusClass = "answer" | "reject" | "retry";

/** What a protocol status means to the network (header of this file). */
export function classifyStatus(status: number): StatusClass {
  if (status === 200 || status === 300 || status === 404 || status === 409 || status === 422) return "answer";
  if (status === 408 || status === 429) return "retry";
  if ((status >= 400 && status < 500) || status === 501) return "reject";
  return "retry";
}

const DEFAULT_ERROR_CODE: Record<number, string> = {
  404: "not_found",
  409: "conflict",
  422: "unprocessable",
};

/**
 * Cancellable waits between attempts. `close` rejects every wait with the
 * error it is given and refuses new ones, so no timer outlives it (R2).
 */
export class Backoff {
  private readonly waits = new Map<unknown, (error: Error) => void>();
  private closedWith: Error | undefined;

  constructor(
    private readonly timers: Timers,
    private readonly random: () => number,
  ) {}

  /** The delay before attempt `attempt + 1` (attempt counts from 1): doubling, capped, equal jitter. */
  delayMs(policy: RetryPolicy, attempt: number): number {
    const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt - 1, 30));
    return Math.round(base / 2 + (base / 2) * this.random());
  }

  wait(delayMs: number): Promise<void> {
    if (this.closedWith !== undefined) return Promise.reject(this.closedWith);
    return new Promise<void>((resolve, reject) => {
      const handle = this.timers.setTimeout(() => {
        this.waits.delete(handle);
        resolve();
      }, delayMs);
      this.waits.set(handle, reject);
    });
  }

  close(error: Error): void {
    this.closedWith ??= error;
    for (const [handle, reject] of this.waits) {
      this.timers.clearTimeout(handle);
      reject(error);
    }
    this.waits.clear();
  }
}

/** The message shapes a worker reads (R3); anything else is dropped. */
export function toOutgoingMessage(json: unknown): OutgoingMessage | undefined {
  if (!isObject(json) || !isObject(json.head) || !isObject(json.data)) return undefined;
  if (json.kind === "execute") {
    const task = json.data.task;
    if (!isObject(task) || typeof task.id !== "string" || !Number.isSafeInteger(task.version))
      return undefined;
    return json as unknown as OutgoingMessage;
  }
  if (json.kind === "unblock") {
    const promise = json.data.promise;
    if (!isObject(promise) || typeof promise.id !== "string" || typeof promise.state !== "string")
      return undefined;
    return json as unknown as OutgoingMessage;
  }
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------
// The remote network

type Attempt =
  | { kind: "answer"; response: Response }
  | { kind: "reject"; status: number; message: string }
  | { kind: "retry"; reason: string; now?: boolean; failover?: boolean };

/** What one POST came to: an answer read in full, or why there is none (`failover`: another server may answer, R5). */
type Exchanged = { httpStatus: number; text: string } | { reason: string; failover?: boolean };

/** A first attempt waiting for its turn's batch. */
interface Queued {
  kind: string;
  corrId: string;
  text: string;
  resolve(outcome: Attempt): void;
}

export class RemoteNetwork implements Network {
  readonly unicast: string;
  readonly anycast: string;
  private readonly token: string | undefined;
  private readonly newId: () => string;
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly retry: RetryPolicy;
  private readonly reconnect: RetryPolicy;
  private readonly requestTimeoutMs: number;
  private readonly backoff: Backoff;
  private readonly now: () => number;
  /** The servers of `url`, in its order (R5). */
  private readonly servers: readonly Server[];
  /** The next server's index in `servers` (R5). */
  private turn = 0;
  /** Keep-alive agents, one per scheme in use (an https agent cannot carry http, nor the reverse). */
  private readonly agents = new Map<string, HttpAgent>();
  /** Ends each request in flight, giving the reason its attempt reports. */
  private readonly inFlight = new Set<(reason: string) => void>();
  private readonly subscriptions = new Set<PollSubscription>();
  private closed = false;
  /** What the server's `Pledge-Extensions` header named on its latest answer (ADR 0005). */
  private extensions: ReadonlySet<string> = new Set();
  /** First attempts waiting for this turn's batch (R4). */
  private queued: Queued[] = [];

  constructor(options: RemoteNetworkOptions) {
    const urls: readonly unknown[] = typeof options.url === "string" ? [options.url] : options.url;
    if (!Array.isArray(urls) || urls.length === 0)
      throw new TypeError(
        `url: expected a URL or a non-empty list of URLs, got ${JSON.stringify(options.url)}`,
      );
    const field = (index: number) => (typeof options.url === "string" ? "url" : `url[${index}]`);
    const parsed = urls.map((url, index) => parseServerUrl(url, field(index)));
    parsed.forEach(({ parsed: { href } }, index) => {
      const earlier = parsed.findIndex((other) => other.parsed.href === href);
      if (earlier < index)
        throw new TypeError(
          `${field(index)}: ${JSON.stringify(href)} is listed twice (also url[${earlier}])`,
        );
    });
    this.unicast = `poll://uni@${options.group}/${options.pid}`;
    this.anycast = `poll://any@${options.group}/${options.pid}`;
    this.token = options.token === "" ? undefined : options.token;
    this.newId = options.newId ?? (() => globalThis.crypto.randomUUID());
    this.timers = options.timers ?? processTimers;
    this.random = options.random ?? Math.random;
    this.retry = options.retry ?? SEND_RETRY;
    this.reconnect = options.reconnect ?? RECONNECT;
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.backoff = new Backoff(this.timers, this.random);
    this.now = options.now ?? Date.now;
    // No cap on sockets, as fetch had none: a request queued behind a cap would
    // spend its `requestTimeoutMs` waiting for a socket rather than an answer.
    const agentOptions = { keepAlive: true, timeout: IDLE_SOCKET_TIMEOUT_MS };
    const agentFor = (https: boolean): HttpAgent => {
      const scheme = https ? "https:" : "http:";
      let agent = this.agents.get(scheme);
      if (agent === undefined) {
        agent = https ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
        this.agents.set(scheme, agent);
      }
      return agent;
    };
    const headers = this.headers({ "content-type": "application/json", accept: "application/json" });
    const pollPath = `/poll/${encodeURIComponent(options.group)}/${encodeURIComponent(options.pid)}`;
    this.servers = parsed.map(({ url, parsed }) => {
      const https = parsed.protocol === "https:";
      const { hostname, port, path } = urlToHttpOptions(parsed);
      return {
        post: https ? httpsRequest : httpRequest,
        postOptions: { hostname, port, path, method: "POST", agent: agentFor(https) },
        postHeaders: ["host", parsed.host, ...Object.entries(headers).flat()],
        pollUrl: `${url.replace(/\/+$/, "")}${pollPath}`,
        failures: 0,
        coolingUntil: 0,
      };
    });
  }

  async send(request: NetworkRequest): Promise<Response> {
    if (this.closed) throw new NetworkClosedError(`network closed; ${request.kind} not sent`);
    const corrId = this.newId();
    const text = JSON.stringify(toEnvelope(request, corrId, this.token));
    let lastFailure = "none";
    /** Attempts on another server since the last backoff wait, and the waits so far (R5). */
    let failovers = 0;
    let waits = 0;
    for (let attempt = 1; ; attempt++) {
      // A first attempt joins this turn's batch where the server takes batches (R4); retries go alone.
      const outcome =
        attempt === 1 && this.supports(BATCH_EXTENSION)
          ? await this.batched(request.kind, corrId, text)
          : await this.attempt(request.kind, corrId, Buffer.from(text, "utf8"));
      if (outcome.kind === "answer") return outcome.response;
      if (outcome.kind === "reject") throw new ProtocolRejection(outcome.status, outcome.message);
      if (outcome.reason !== ABORTED_BY_CLOSE) lastFailure = outcome.reason;
      if (this.closed) throw closedWhileRetrying(request.kind, lastFailure);
      if (outcome.now === true) continue;
      // R5: another server may answer at once where this one gave no answer.
      if (outcome.failover === true && failovers < this.servers.length - 1) {
        failovers += 1;
        continue;
      }
      waits += 1;
      try {
        await this.backoff.wait(this.backoff.delayMs(this.retry, waits));
      } catch {
        throw closedWhileRetrying(request.kind, lastFailure);
      }
      failovers = 0;
    }
  }

  subscribe(onMessage: (message: OutgoingMessage) => void): () => void {
    if (this.closed) return () => {};
    const subscription = new PollSubscription({
      urls: this.servers.map((server) => server.pollUrl),
      first: this.servers.length === 1 ? 0 : Math.floor(this.random() * this.servers.length),
      headers: this.headers({ accept: "text/event-stream" }),
      timers: this.timers,
      backoff: new Backoff(this.timers, this.random),
      reconnect: this.reconnect,
      onMessage,
    });
    this.subscriptions.add(subscription);
    subscription.start();
    return () => {
      subscription.stop();
      this.subscriptions.delete(subscription);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.backoff.close(new NetworkClosedError("network closed"));
    for (const end of [...this.inFlight]) end(ABORTED_BY_CLOSE);
    for (const agent of this.agents.values()) agent.destroy(); // their idle sockets (R2)
    for (const subscription of this.subscriptions) subscription.stop();
    this.subscriptions.clear();
  }

  private headers(extra: Record<string, string>): Record<string, string> {
    return this.token === undefined ? extra : { ...extra, authorization: `Bearer ${this.token}` };
  }

  supports(extension: string): boolean {
    return this.extensions.has(extension);
  }

  /** The server's latest word on its extensions (a server may be replaced by another behind a URL). */
  private noteExtensions(header: string | string[] | undefined): void {
    const named = typeof header === "string" ? header.split(",").map((name) => name.trim()) : [];
    this.extensions = new Set(named.filter((name) => name !== ""));
  }

  /** One request posted alone. Never throws (nor rejects). */
  private async attempt(kind: string, corrId: string, body: Buffer): Promise<Attempt> {
    const reply = await this.exchange(body);
    return "reason" in reply
      ? { kind: "retry", reason: reply.reason, failover: reply.failover === true }
      : readAnswer({ kind, corrId, ...reply });
  }

  /** Joins the batch of this turn of the event loop (R4); answers as `attempt` would. */
  private batched(kind: string, corrId: string, text: string): Promise<Attempt> {
    return new Promise<Attempt>((resolve) => {
      this.queued.push({ kind, corrId, text, resolve });
      if (this.queued.length === 1) setImmediate(() => this.postQueued());
    });
  }

  /** Posts what this turn queued: one request alone, several as arrays (`batchesOf`). */
  private postQueued(): void {
    const queued = this.queued;
    this.queued = [];
    if (this.closed) {
      for (const request of queued) request.resolve({ kind: "retry", reason: ABORTED_BY_CLOSE });
      return;
    }
    for (const part of batchesOf(queued)) {
      if (part.length === 1) {
        const [only] = part as [Queued];
        void this.attempt(only.kind, only.corrId, Buffer.from(only.text, "utf8")).then(only.resolve);
        continue;
      }
      const body = Buffer.from(`[${part.map((request) => request.text).join(",")}]`, "utf8");
      void this.exchange(body).then((reply) => {
        const answers = "reason" in reply ? undefined : batchAnswers(reply.text, part.length);
        for (const [index, request] of part.entries()) {
          const answer = answers?.[index];
          request.resolve(
            answer !== undefined
              ? sortAnswer({ kind: request.kind, corrId: request.corrId, httpStatus: 200, json: answer })
              : "reason" in reply && reply.failover === true
                ? // No answer from this server: another may answer at once (R5).
                  { kind: "retry", failover: true, reason: reply.reason }
                : {
                    kind: "retry",
                    // Tried again alone at once: the fault may be the batch's (too large, not understood).
                    now: true,
                    reason:
                      "reason" in reply
                        ? reply.reason
                        : `HTTP ${reply.httpStatus}: not an array of ${part.length} answers to the batch: ${oneLine(reply.text) || "(empty body)"}`,
                  },
          );
        }
      });
    }
  }

  /** The server of the next POST (R5). */
  private pick(): Server {
    const servers = this.servers;
    if (servers.length === 1) return servers[0] as Server;
    const now = this.now();
    let chosen = -1;
    let soonest = this.turn;
    for (let step = 0; step < servers.length && chosen < 0; step++) {
      const index = (this.turn + step) % servers.length;
      const coolingUntil = (servers[index] as Server).coolingUntil;
      if (coolingUntil <= now) chosen = index;
      else if (coolingUntil < (servers[soonest] as Server).coolingUntil) soonest = index;
    }
    if (chosen < 0) chosen = soonest;
    this.turn = (chosen + 1) % servers.length;
    return servers[chosen] as Server;
  }

  /** One POST, its answer read in full, within `requestTimeoutMs`. Never throws (nor rejects). */
  private exchange(body: Buffer): Promise<Exchanged> {
    const server = this.pick();
    const reply = this.exchangeWith(server, body);
    return this.servers.length === 1 ? reply : reply.then((outcome) => this.noteOutcome(server, outcome));
  }

  /** Starts or ends `server`'s cool-down after a POST to it (R5). */
  private noteOutcome(server: Server, outcome: Exchanged): Exchanged {
    if (!("reason" in outcome)) {
      server.failures = 0;
      server.coolingUntil = 0;
      return outcome;
    }
    if (outcome.reason === ABORTED_BY_CLOSE) return outcome;
    const now = this.now();
    if (server.coolingUntil <= now) {
      server.failures += 1;
      server.coolingUntil = now + this.backoff.delayMs(this.reconnect, server.failures);
    }
    return { ...outcome, failover: true };
  }

  private exchangeWith(server: Server, body: Buffer): Promise<Exchanged> {
    let request: ClientRequest;
    try {
      request = server.post({
        ...server.postOptions,
        headers: [...server.postHeaders, "content-length", String(body.length)],
      });
    } catch (error) {
      // A header Node refuses (a token with a newline) fails the attempt, as it failed fetch.
      return Promise.resolve({ reason: describeRequestFailure(error) });
    }
    return new Promise<Exchanged>((resolve) => {
      // The first outcome wins; whatever the request emits afterwards is ignored.
      let settled = false;
      const settle = (outcome: Exchanged) => {
        if (settled) return;
        settled = true;
        this.timers.clearTimeout(timeout);
        this.inFlight.delete(end);
        resolve(outcome);
      };
      // Destroying the request destroys its socket: the agent never reuses a
      // connection with an answer still coming on it.
      const end = (reason: string) => {
        settle({ reason });
        request.destroy();
      };
      const timeout = this.timers.setTimeout(
        () => end(`no answer within ${this.requestTimeoutMs} ms`),
        this.requestTimeoutMs,
      );
      this.inFlight.add(end);
      request.on("error", (error) => settle({ reason: describeRequestFailure(error) }));
      request.on("response", (response) => {
        this.noteExtensions(response.headers[EXTENSIONS_HEADER.toLowerCase()]);
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          text += chunk;
        });
        response.on("end", () => settle({ httpStatus: response.statusCode ?? 0, text }));
        response.on("error", (error) =>
          settle({ reason: `the connection broke mid-answer: ${describeRequestFailure(error)}` }),
        );
        response.on("close", () => {
          if (!response.complete) settle({ reason: "the connection closed mid-answer" });
        });
      });
      request.end(body);
    });
  }
}

const ABORTED_BY_CLOSE = "aborted by close()";

/** One server of `url`: how to post to it and read its poll stream, and its cool-down (R5). */
interface Server {
  post: typeof httpRequest;
  /** Where and how each envelope is posted; only `content-length` varies. */
  postOptions: RequestOptions;
  /**
   * The headers as a flat name/value list, which Node writes as given (still
   * validated) rather than through `setHeader` one by one; `host` included, as
   * Node adds it only to headers given as an object.
   */
  postHeaders: readonly string[];
  pollUrl: string;
  /** Cool-downs started in a row (a failure while one runs starts none); the next one's length doubles with it. */
  failures: number;
  /** Passed over until then (`now()`), unless every server is. */
  coolingUntil: number;
}

/** `url` (named `field` in errors) as an http(s) URL. */
function parseServerUrl(url: unknown, field: string): { url: string; parsed: URL } {
  let parsed: URL;
  try {
    if (typeof url !== "string") throw new TypeError();
    parsed = new URL(url);
  } catch {
    throw new TypeError(`${field}: not a URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    throw new TypeError(`${field}: expected http:// or https://, got ${JSON.stringify(url)}`);
  return { url, parsed };
}

function closedWhileRetrying(kind: string, lastFailure: string): NetworkClosedError {
  return new NetworkClosedError(`network closed while retrying ${kind} (last failure: ${lastFailure})`);
}

/** Sorts one HTTP answer (header of this file; R1). */
function readAnswer(input: { kind: string; corrId: string; httpStatus: number; text: string }): Attempt {
  let json: unknown;
  try {
    json = JSON.parse(input.text);
  } catch {
    json = undefined;
  }
  return sortAnswer({ ...input, json });
}

/**
 * The queued requests in POSTs of at most `MAX_BATCH_REQUESTS` requests and, where
 * more than one, `MAX_BATCH_BYTES` of body: well under any server's body limit.
 */
function batchesOf(queued: readonly Queued[]): Queued[][] {
  const parts: Queued[][] = [];
  let part: Queued[] = [];
  let bytes = 0;
  for (const request of queued) {
    const size = Buffer.byteLength(request.text, "utf8") + 1;
    if (part.length > 0 && (part.length >= MAX_BATCH_REQUESTS || bytes + size > MAX_BATCH_BYTES)) {
      parts.push(part);
      part = [];
      bytes = 0;
    }
    part.push(request);
    bytes += size;
  }
  if (part.length > 0) parts.push(part);
  return parts;
}

/** The elements of a batch's answer, or undefined when it is not an array of `count` (R4). */
function batchAnswers(text: string, count: number): unknown[] | undefined {
  try {
    const json: unknown = JSON.parse(text);
    return Array.isArray(json) && json.length === count ? json : undefined;
  } catch {
    return undefined;
  }
}

/** Sorts one answer, alone or from a batch (R1); `text`, when given, describes a body that is not an envelope. */
function sortAnswer(input: {
  kind: string;
  corrId: string;
  httpStatus: number;
  json: unknown;
  text?: string;
}): Attempt {
  const { kind, corrId, httpStatus, json } = input;
  const envelope: { kind?: unknown; head: Record<string, unknown>; data?: unknown } | undefined =
    isObject(json) && isObject(json.head) ? { kind: json.kind, head: json.head, data: json.data } : undefined;
  const status = envelope?.head.status;
  if (envelope === undefined || typeof envelope.kind !== "string" || !Number.isSafeInteger(status)) {
    // Not an envelope: a proxy, a wrong path, a crashed server. A client fault is final;
    // a 404 may be a load balancer with no server behind it yet, so it is retried.
    // Serialised again only here: on the way every answer of a batch takes, it would
    // cost a JSON.stringify of each.
    const text = input.text ?? JSON.stringify(json) ?? "";
    const described = `HTTP ${httpStatus} without a protocol envelope: ${oneLine(text) || "(empty body)"}`;
    return classifyStatus(httpStatus) === "reject"
      ? { kind: "reject", status: httpStatus, message: described }
      : { kind: "retry", reason: described };
  }
  const head = envelope.head;
  const protocolStatus = status as number;
  const data = envelope.data;
  const message = typeof data === "string" ? data : `status ${protocolStatus}`;
  const echoes = envelope.kind === kind && head.corrId === corrId;
  switch (classifyStatus(protocolStatus)) {
    case "reject": {
      const unread = envelope.kind === "unknown" && head.corrId === "0";
      if (!echoes && !unread) return { kind: "retry", reason: "the answer is for another request" };
      return { kind: "reject", status: protocolStatus, message };
    }
    case "retry":
      return { kind: "retry", reason: `status ${protocolStatus}: ${oneLine(message)}` };
    case "answer": {
      if (!echoes) return { kind: "retry", reason: "the answer is for another request" };
      if (protocolStatus === 200 || protocolStatus === 300) {
        if (data === undefined) return { kind: "retry", reason: `status ${protocolStatus} without data` };
        return { kind: "answer", response: { status: protocolStatus, data } };
      }
      if (typeof data !== "string")
        return { kind: "retry", reason: `status ${protocolStatus} whose data is not a message` };
      const error: ErrorDetail =
        isObject(head.error) &&
        typeof head.error.code === "string" &&
        typeof head.error.retryable === "boolean"
          ? { code: head.error.code, retryable: head.error.retryable }
          : { code: DEFAULT_ERROR_CODE[protocolStatus] ?? "unknown", retryable: false };
      return {
        kind: "answer",
        response: { status: protocolStatus as 404 | 409 | 422, data, error },
      };
    }
  }
}

/**
 * A failed request in one line with its code: `connect ECONNREFUSED 127.0.0.1:8001`,
 * `socket hang up (ECONNRESET)`. Connecting to a name with several addresses
 * fails with an `AggregateError` whose own message is empty: its parts are named.
 */
function describeRequestFailure(error: unknown): string {
  if (!(error instanceof Error)) return oneLine(String(error));
  const code = (error as { code?: unknown }).code;
  const parts =
    error instanceof AggregateError && error.errors.length > 0
      ? [...new Set(error.errors.map((part) => (part instanceof Error ? part.message : String(part))))]
      : [error.message];
  const message = oneLine(parts.join("; ")) || error.name;
  return typeof code === "string" && !message.includes(code) ? `${message} (${code})` : message;
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

// ---------------------------------------------------------------------------
// The poll stream

interface PollSubscriptionOptions {
  /** The stream at each server; a connection that fails or ends moves on to the next (R5). */
  urls: readonly string[];
  /** The index in `urls` of the first connection's. */
  first: number;
  headers: Record<string, string>;
  timers: Timers;
  backoff: Backoff;
  reconnect: RetryPolicy;
  onMessage: (message: OutgoingMessage) => void;
}

/** One subscription: connect, read events, reconnect after a failure or end of stream (N2). */
class PollSubscription {
  private stopped = false;
  private controller: AbortController | undefined;
  /** Failed connections in a row; reset once a connection opens. */
  private failures = 0;
  /** The index in `urls` of the next connection's. */
  private next: number;

  constructor(private readonly options: PollSubscriptionOptions) {
    this.next = options.first;
  }

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.controller?.abort();
    this.options.backoff.close(new NetworkClosedError("subscription stopped"));
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      await this.connectOnce();
      if (this.stopped) return;
      this.failures += 1;
      try {
        await this.options.backoff.wait(this.options.backoff.delayMs(this.options.reconnect, this.failures));
      } catch {
        return; // stopped
      }
    }
  }

  /** One connection, until it fails or ends. Never throws. */
  private async connectOnce(): Promise<void> {
    const controller = new AbortController();
    this.controller = controller;
    const urls = this.options.urls;
    const url = urls[this.next % urls.length] as string;
    this.next = (this.next + 1) % urls.length;
    try {
      const response = await fetch(url, {
        headers: this.options.headers,
        signal: controller.signal,
      });
      const contentType = response.headers.get("content-type") ?? "";
      if (!response.ok || !contentType.includes("text/event-stream") || response.body === null) {
        await response.body?.cancel().catch(() => {});
        return;
      }
      this.failures = 0;
      await readEvents(response.body, (data) => this.dispatch(data));
    } catch {
      // refused, reset, aborted by stop(), or a stream we will not read: reconnect (or stop)
    } finally {
      controller.abort(); // a stream left half-read must not keep its socket (R2)
      if (this.controller === controller) this.controller = undefined;
    }
  }

  private dispatch(data: string): void {
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      return;
    }
    const message = toOutgoingMessage(json);
    if (message === undefined) return;
    queueMicrotask(() => {
      if (!this.stopped) this.options.onMessage(message);
    });
  }
}

/**
 * Reads a `text/event-stream` body (the WHATWG parsing rules, reduced to what
 * the protocol uses): lines end in CR, LF or CRLF; a blank line ends an event;
 * `data:` lines are joined with LF; comments (`:`) and `id:`/`retry:` are
 * ignored; events with an `event:` name other than `message` are not ours.
 * Resolves when the stream ends; rejects when it fails or is aborted.
 */
export async function readEvents(
  body: ReadableStream<Uint8Array>,
  onEvent: (data: string) => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  let data: string[] = [];
  let dataChars = 0;
  let eventName = "";
  const line = (text: string) => {
    if (text === "") {
      if (data.length > 0 && (eventName === "" || eventName === "message")) onEvent(data.join("\n"));
      data = [];
      dataChars = 0;
      eventName = "";
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") {
      data.push(value);
      dataChars += value.length;
    } else if (field === "event") {
      eventName = value;
    }
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let start = 0;
      for (let index = 0; index < buffer.length; index++) {
        const char = buffer.charCodeAt(index);
        if (char !== 10 && char !== 13) continue;
        // A CR at the end of a chunk may be the first half of a CRLF: wait for more.
        if (char === 13 && index === buffer.length - 1) break;
        line(buffer.slice(start, index));
        if (char === 13 && buffer.charCodeAt(index + 1) === 10) index++;
        start = index + 1;
      }
      buffer = buffer.slice(start);
      if (buffer.length + dataChars > MAX_EVENT_CHARS) throw new Error("SSE event too large");
    }
  } finally {
    reader.releaseLock();
  }
}
