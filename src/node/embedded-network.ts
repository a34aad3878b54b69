/**
 * The embedded network: the SDK's `Network` wired straight to an in-process
 * `ServerShell`, with no HTTP in between. It owns making a request look exactly
 * as it would after crossing the wire, and retrying what a store could not
 * commit; the shell owns everything else.
 *
 * Invariants:
 *  M1  Every request passes the edge validation HTTP uses (`parseRequest`,
 *      debug off) on its JSON form, so a bad user id is the same `400`
 *      (`ProtocolRejection`, naming the field) as over HTTP, and a value JSON
 *      cannot carry (`undefined`, `NaN`) is dropped or refused exactly as there;
 *      the core only ever sees what it asserts on. (HTTP's body-size limit has no
 *      counterpart here.)
 *  M2  Statuses are sorted as the remote network sorts them (`classifyStatus`);
 *      a `StoreUnavailableError` (HTTP's 503) is retried with backoff (100 ms
 *      doubling to 5 s) until the shell answers or `close()` rejects the send
 *      with `NetworkClosedError`. Any other exception is a bug and propagates.
 *  M3  A message reaches `onMessage` in a microtask of its own, never after its
 *      subscription was stopped; the connection always takes it (no buffer).
 */
import type { Timers } from "../lib/clock.js";
import { parseRequest } from "../protocol/parse.js";
import { type OutgoingMessage, PROTOCOL_EXTENSIONS } from "../protocol/records.js";
import type { Response } from "../protocol/requests.js";
import {
  type Network,
  NetworkClosedError,
  type NetworkRequest,
  ProtocolRejection,
} from "../sdk/network/network.js";
import {
  Backoff,
  classifyStatus,
  processTimers,
  type RetryPolicy,
  SEND_RETRY,
  toEnvelope,
} from "../sdk/network/remote.js";
import type { Connection } from "../server/delivery.js";
import type { ServerShell } from "../server/shell.js";
import { StoreUnavailableError } from "../store/store.js";

export interface EmbeddedNetworkOptions {
  group: string;
  pid: string;
  /** Correlation ids. Default `crypto.randomUUID`. */
  newId?: () => string;
  /** Default: the process's timers, kept referenced while a retry waits. */
  timers?: Timers;
  /** Jitter source, in [0, 1). Default `Math.random`. */
  random?: () => number;
  /** Backoff while the store is unavailable. Default 100 ms doubling to 5 s. */
  retry?: RetryPolicy;
}

export class EmbeddedNetwork implements Network {
  readonly unicast: string;
  readonly anycast: string;
  private readonly group: string;
  private readonly pid: string;
  private readonly newId: () => string;
  private readonly retry: RetryPolicy;
  private readonly backoff: Backoff;
  private readonly disconnects = new Set<() => void>();
  private closed = false;

  constructor(
    private readonly shell: ServerShell,
    options: EmbeddedNetworkOptions,
  ) {
    this.group = options.group;
    this.pid = options.pid;
    this.unicast = `poll://uni@${options.group}/${options.pid}`;
    this.anycast = `poll://any@${options.group}/${options.pid}`;
    this.newId = options.newId ?? (() => globalThis.crypto.randomUUID());
    this.retry = options.retry ?? SEND_RETRY;
    this.backoff = new Backoff(options.timers ?? processTimers, options.random ?? Math.random);
  }

  /** In process: the same core as the server, so every extension it takes. */
  supports(extension: string): boolean {
    return PROTOCOL_EXTENSIONS.has(extension);
  }

  async send(request: NetworkRequest): Promise<Response> {
    if (this.closed) throw new NetworkClosedError(`network closed; ${request.kind} not sent`);
    // M1: the JSON form, as the HTTP layer would have read it.
    const text = JSON.stringify(toEnvelope(request, this.newId()));
    const parsed = parseRequest(JSON.parse(text), { debug: false, text });
    if (!parsed.ok) throw new ProtocolRejection(parsed.failure.status, parsed.failure.message);
    for (let attempt = 1; ; attempt++) {
      let lastFailure: string;
      try {
        const response = await this.shell.handle(parsed.request);
        const sorted = classifyStatus(response.status);
        if (sorted === "answer") return response;
        const message = typeof response.data === "string" ? response.data : `status ${response.status}`;
        if (sorted === "reject") throw new ProtocolRejection(response.status, message);
        lastFailure = `status ${response.status}: ${message}`;
      } catch (error) {
        if (!(error instanceof StoreUnavailableError)) throw error;
        lastFailure = error.message;
      }
      const closed = () =>
        new NetworkClosedError(
          `network closed while retrying ${request.kind} (last failure: ${lastFailure})`,
        );
      if (this.closed) throw closed();
      try {
        await this.backoff.wait(this.backoff.delayMs(this.retry, attempt));
      } catch {
        throw closed();
      }
    }
  }

  subscribe(onMessage: (message: OutgoingMessage) => void): () => void {
    if (this.closed) return () => {};
    let stopped = false;
    const connection: Connection = {
      group: this.group,
      id: this.pid,
      send(message) {
        queueMicrotask(() => {
          if (!stopped) onMessage(message);
        });
        return true;
      },
    };
    const disconnectFromShell = this.shell.connect(connection);
    const disconnect = () => {
      if (stopped) return;
      stopped = true;
      disconnectFromShell();
      this.disconnects.delete(disconnect);
    };
    this.disconnects.add(disconnect);
    return disconnect;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.backoff.close(new NetworkClosedError("network closed"));
    for (const disconnect of [...this.disconnects]) disconnect();
  }
}
