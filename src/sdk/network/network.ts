/**
 * The SDK's one door to a server: send a protocol request, receive outgoing
 * messages. Two implementations: `remote` (HTTP + SSE to `pledge serve` or any
 * server speaking the protocol) and `embedded` (the server core in-process,
 * wired in `node/`). The SDK's engine and worker see only this interface, so
 * they also run under the simulator's network.
 *
 * Invariants:
 *  N1  `send` resolves only with a protocol-class answer (200, 300, 404, 409,
 *      422 — and 400/403 as `ProtocolRejection`s); anything else (no answer,
 *      5xx, 429, a broken body) is retried inside `send` with backoff until
 *      it gets an answer or the network is closed. A durable write is never
 *      reported as lost because the server was briefly unreachable.
 *  N2  Messages are delivered to `subscribe`rs at most once per arrival; the
 *      subscription reconnects by itself (1 s doubling to 30 s).
 */
import type { OutgoingMessage } from "../../protocol/records.js";
import type { Request, Response } from "../../protocol/requests.js";

/** A request as the SDK builds it: the core's typed request, without `corrId` (the network adds one). */
export type NetworkRequest =
  Exclude<Request, { kind: `debug.${string}` }> extends infer R
    ? R extends { corrId: string }
      ? Omit<R, "corrId">
      : never
    : never;

export interface Network {
  /** Where messages for this process arrive: `poll://uni@{group}/{pid}` and `poll://any@{group}/{pid}`. */
  readonly unicast: string;
  readonly anycast: string;
  send(request: NetworkRequest): Promise<Response>;
  /**
   * Whether the server takes a protocol extension (`PROTOCOL_EXTENSIONS`), as far
   * as its answers so far tell (ADR 0005). Absent: none.
   */
  supports?(extension: string): boolean;
  /** Starts receiving this process's messages; returns a function that stops. */
  subscribe(onMessage: (message: OutgoingMessage) => void): () => void;
  close(): Promise<void>;
}

/** The server refused the request as malformed or forbidden (400, 401, 403): retrying cannot help. */
export class ProtocolRejection extends Error {
  override name = "ProtocolRejection";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The network was closed while a request was still being retried. */
export class NetworkClosedError extends Error {
  override name = "NetworkClosedError";
}
