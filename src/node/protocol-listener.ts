/**
 * `pledge serve`'s request listener: `POST /` straight on `node:http`, everything
 * else through Hono's Node adapter. The adapter costs each request a lazy
 * `Request`, a `Response`, and their bookkeeping (some 40–70 µs of CPU on a
 * protocol request); the protocol is nearly all of a server's traffic, and its
 * answer is always one JSON string, so it needs none of that.
 *
 * What the answer is belongs to `server/http/protocol-endpoint.ts`, which the Hono
 * route calls too; this file only reads the body and writes the answer, and does
 * both as the adapter does, so a client cannot tell the two paths apart:
 *  L1  Headers are read as the Fetch API reads them: by lower-case name, repeats
 *      joined by ", ", trimmed.
 *  L2  The body limit is the route's: a declared length over it is refused unread;
 *      an undeclared (chunked) body is counted as it arrives and not kept past it.
 *  L3  The answer is written as the adapter writes a string `Response` with plain
 *      headers: its headers, then Node's own (Date, Connection, Keep-Alive), then
 *      `Content-Length` (on HTTP/1.0, `Content-Length` right after its headers,
 *      before Node's); a body left unread is drained as the adapter drains it
 *      (at most 64 MiB, at most 500 ms, then the socket is closed).
 *  L4  Only a request the adapter would take as it is goes the fast way: method
 *      `POST`, target exactly `/`, a `Host` its plain-host pattern accepts. Any
 *      other (a query, an absolute URL, an odd host) goes to Hono untouched.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { EndpointAnswer, EndpointRequest } from "../server/http/protocol-endpoint.js";

export type RequestListener = (incoming: IncomingMessage, outgoing: ServerResponse) => void;

export interface ProtocolListenerOptions {
  endpoint: (request: EndpointRequest) => Promise<EndpointAnswer>;
  /** Every request that is not the protocol's (L4). */
  fallback: RequestListener;
  /** The answer when the endpoint throws (Hono's `onError` for the same route). */
  unhandled: (error: unknown) => EndpointAnswer;
}

/** The adapter's `reValidHost`: a host it uses without parsing a URL (L4). */
const PLAIN_HOST = /^[a-z0-9._-]+(?::(?:[1-5]\d{3,4}|[6-9]\d{3}))?$/;
/** The adapter's limits on draining a body nobody read (L3). */
const DRAIN_BYTES_MAX = 64 * 1024 * 1024;
const DRAIN_TIMEOUT_MS = 500;

export function protocolListener(options: ProtocolListenerOptions): RequestListener {
  return (incoming, outgoing) => {
    const host = incoming.headers.host;
    if (incoming.method !== "POST" || incoming.url !== "/" || host === undefined || !PLAIN_HOST.test(host)) {
      options.fallback(incoming, outgoing);
      return;
    }
    const request: EndpointRequest = {
      header: (name) => header(incoming.rawHeaders, name),
      body: (maxBytes) => readBody(incoming, maxBytes),
    };
    options
      .endpoint(request)
      .catch(options.unhandled)
      .then((answer) => write(incoming, outgoing, answer));
  };
}

/** HTTP whitespace at either end, as the Fetch API's header normalisation removes it. */
const EDGE_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;

/** L1: the value of `name` (lower case), repeats joined by ", ". */
function header(raw: string[], name: string): string | undefined {
  let value: string | undefined;
  for (let index = 0; index < raw.length; index += 2) {
    const key = raw[index] as string;
    if (key.length !== name.length || key.toLowerCase() !== name) continue;
    const item = (raw[index + 1] as string).replace(EDGE_WHITESPACE, "");
    value = value === undefined ? item : `${value}, ${item}`;
  }
  return value;
}

/** L2: the body, or undefined when it is larger than `maxBytes`. */
function readBody(incoming: IncomingMessage, maxBytes: number): Promise<Uint8Array | undefined> {
  const declared = header(incoming.rawHeaders, "content-length");
  if (declared !== undefined && Number(declared) > maxBytes) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onError);
      incoming.off("close", onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength;
      if (declared === undefined && size > maxBytes) {
        stop();
        incoming.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      stop();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      stop();
      reject(error);
    };
    const onClose = () => {
      stop();
      reject(new Error("the client closed the connection before the body ended"));
    };
    incoming.on("data", onData);
    incoming.on("end", onEnd);
    incoming.on("error", onError);
    incoming.on("close", onClose);
  });
}

/** L3. */
function write(incoming: IncomingMessage, outgoing: ServerResponse, answer: EndpointAnswer): void {
  if (!incoming.readableEnded)
    outgoing.once("finish", () => {
      if (!incoming.readableEnded) drain(incoming);
    });
  if (outgoing.useChunkedEncodingByDefault) {
    // HTTP/1.1: Node works out Content-Length from the one chunk and writes it after its own headers.
    outgoing.statusCode = answer.status;
    for (const [name, value] of Object.entries(answer.headers)) outgoing.setHeader(name, value);
    outgoing.end(answer.body);
  } else {
    // HTTP/1.0: the adapter states the length among the answer's headers.
    outgoing.writeHead(answer.status, {
      ...answer.headers,
      "Content-Length": Buffer.byteLength(answer.body),
    });
    outgoing.end(answer.body);
  }
}

/** L3: reads and drops what is left of a body, within the adapter's limits. */
function drain(incoming: IncomingMessage): void {
  if (incoming.destroyed) return;
  let size = 0;
  const stop = () => {
    clearTimeout(timer);
    incoming.off("data", onData);
    incoming.off("end", stop);
    incoming.off("error", stop);
  };
  const close = () => {
    stop();
    incoming.socket?.destroySoon();
  };
  const onData = (chunk: Buffer) => {
    size += chunk.byteLength;
    if (size > DRAIN_BYTES_MAX) close();
  };
  const timer = setTimeout(close, DRAIN_TIMEOUT_MS);
  timer.unref();
  incoming.on("data", onData);
  incoming.on("end", stop);
  incoming.on("error", stop);
  incoming.resume();
}
