/**
 * `POST /` (PROTOCOL.md §1) without a transport: a request is two headers and a
 * way to read the body; the answer is a status, headers and a body string. The
 * Hono route (`app.ts`) and the Node listener (`node/protocol-listener.ts`) both
 * call it, so the two give the same answer byte for byte; only reading the body
 * and writing the answer belong to the transport.
 *
 * It validates once (auth first, then `protocol/parse.ts`), hands typed requests
 * to the shell and dresses responses in the §1.3 envelope with the HTTP status
 * mirroring `head.status`. Store failures map to HTTP here and nowhere else.
 *
 * Invariants (app.ts states W1–W5; these are the ones this file keeps):
 *  W1  With a token set, nothing but the token decides a request without it:
 *      401 before any other check, same answer whatever the body names (a batch,
 *      ADR 0006, is one request here: only the Authorization header can carry it).
 *  W2  Every protocol response body is JSON with `Content-Type: application/json`.
 *  W5  Each `POST /` is one `pledge.request` span (OpenTelemetry, when installed:
 *      `lib/tracing.ts`), ended exactly when it is answered, as its metrics are.
 */
import { timingSafeEqual } from "node:crypto";
import { performance } from "node:perf_hooks";
import { AssertionError } from "../../lib/assert.js";
import type { Logger } from "../../lib/logger.js";
import { startSpan, type TraceSpan } from "../../lib/tracing.js";
import { decodeBody, type Echo, echo } from "../../protocol/decode.js";
import { type ErrorCode, protocolError } from "../../protocol/errors.js";
import { failureResponse, parseRequest } from "../../protocol/parse.js";
import {
  EXTENSIONS_HEADER,
  MAX_BATCH_REQUESTS,
  PROTOCOL_EXTENSIONS,
  PROTOCOL_VERSION,
} from "../../protocol/records.js";
import type { Response as ProtocolResponse } from "../../protocol/requests.js";
import { StoreUnavailableError } from "../../store/store.js";
import type { ServerShell } from "../shell.js";

export interface EndpointOptions {
  authToken?: string;
  debug: boolean;
  maxBodyBytes: number;
  logger: Logger;
  /** Called with a violated invariant; the process must not go on. */
  onFatal(error: Error): void;
}

/** One `POST /` as the endpoint sees it, whatever carried it. */
export interface EndpointRequest {
  /** A header by lower-case name, as the Fetch API reads it (repeats joined by ", "); undefined when absent. */
  header(name: "authorization" | "traceparent"): string | undefined;
  /** The body's bytes, or undefined when it is larger than `maxBytes` (then it is not read past the limit). */
  body(maxBytes: number): Promise<Uint8Array | undefined>;
}

/** What one request came to: the fields its answer echoes, and the response. */
interface Outcome {
  kind: string;
  corrId: string;
  response: ProtocolResponse;
}

export interface EndpointAnswer {
  status: number;
  headers: Readonly<Record<string, string>>;
  body: string;
}

/**
 * The one header set of every protocol answer (W2); shared, never modified.
 * `Pledge-Extensions` names the protocol extensions this server takes (ADR 0005),
 * so that Pledge's SDK uses them only here; other clients ignore the header.
 */
export const JSON_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "Content-Type": "application/json",
  [EXTENSIONS_HEADER]: [...PROTOCOL_EXTENSIONS].join(", "),
});

function envelope(kind: string, corrId: string, response: ProtocolResponse): string {
  const head: Record<string, unknown> = { corrId, status: response.status, version: PROTOCOL_VERSION };
  if ("error" in response) head.error = response.error;
  return JSON.stringify({ kind, head, data: response.data });
}

export function tokenMatches(expected: string, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function bearer(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return match?.[1];
}

/**
 * What a route answers when a handler throws past its own catch (Hono's
 * `onError`, and the Node listener for `POST /`): a violated invariant stops the
 * process, anything else is logged and answered 500.
 */
export function unhandledAnswer(error: unknown, options: Pick<EndpointOptions, "logger" | "onFatal">) {
  if (error instanceof AssertionError) options.onFatal(error);
  options.logger.error({ err: error }, "unhandled error");
  return { status: 500, headers: JSON_HEADERS, body: JSON.stringify({ error: "internal error" }) };
}

export function protocolEndpoint(
  shell: ServerShell,
  options: EndpointOptions,
): (request: EndpointRequest) => Promise<EndpointAnswer> {
  const failed = (code: ErrorCode & ("store_unavailable" | "internal"), message: string) =>
    code === "store_unavailable" ? protocolError(503, code, message) : protocolError(500, code, message);

  /** Every answer goes through here, so each is counted once (metrics). */
  /** `started`: the arrival (a `performance.now()` reading) and the request's span. */
  const answer = (
    started: { ms: number; span: TraceSpan },
    kind: string,
    corrId: string,
    response: ProtocolResponse,
  ): EndpointAnswer => {
    shell.metrics.requestAnswered(kind, response.status, started.ms);
    started.span.setAttributes({ "pledge.request.kind": kind, "http.response.status_code": response.status });
    started.span.end(response.status >= 500 ? `status ${response.status}` : undefined);
    return { status: response.status, headers: JSON_HEADERS, body: envelope(kind, corrId, response) };
  };

  const unauthorized = () => protocolError(401, "unauthorized", "authorization: missing or invalid token");
  const authorized = (presented: string | undefined) =>
    options.authToken === undefined || tokenMatches(options.authToken, presented);

  /** One decoded request: authorised (W1), parsed, handled. Never rejects. */
  const settle = async (
    json: unknown,
    text: string,
    claimed: Echo,
    headerToken?: string,
  ): Promise<Outcome> => {
    if (!authorized(headerToken ?? claimed.auth))
      return { kind: claimed.kind, corrId: claimed.corrId, response: unauthorized() };
    const parsed = parseRequest(json, { debug: options.debug, text });
    if (!parsed.ok)
      return {
        kind: parsed.failure.kind,
        corrId: parsed.failure.corrId,
        response: failureResponse(parsed.failure),
      };
    const { request: typed } = parsed;
    const outcome = (response: ProtocolResponse) => ({ kind: typed.kind, corrId: typed.corrId, response });
    try {
      return outcome(await shell.handle(typed, parsed.debugTime));
    } catch (error) {
      if (error instanceof StoreUnavailableError) {
        options.logger.warn({ err: error, kind: typed.kind }, "store unavailable");
        return outcome(failed("store_unavailable", `store unavailable: ${error.message}`));
      }
      if (error instanceof AssertionError) options.onFatal(error);
      options.logger.error({ err: error, kind: typed.kind }, "request failed");
      return outcome(failed("internal", "internal error; see the server log"));
    }
  };

  /**
   * A batch (ADR 0006): each request answered as if it came alone, in its own slot of
   * an array, under HTTP 200. With a server token, only the `Authorization` header
   * can carry it (W1 for the batch as a whole: without it, one 401, whatever the body
   * holds). All reach the shell in one turn, so they share a group commit.
   */
  const batch = async (
    started: { ms: number; span: TraceSpan },
    requests: unknown[],
    text: string,
    headerToken: string | undefined,
  ): Promise<EndpointAnswer> => {
    if (!authorized(headerToken)) return answer(started, "unknown", "0", unauthorized());
    if (requests.length === 0 || requests.length > MAX_BATCH_REQUESTS) {
      const message = `body: a batch holds 1 to ${MAX_BATCH_REQUESTS} requests, not ${requests.length}`;
      return answer(started, "unknown", "0", protocolError(400, "invalid_envelope", message));
    }
    const outcomes = await Promise.all(
      requests.map((request) => settle(request, text, echo(request), headerToken)),
    );
    for (const { kind, response } of outcomes)
      shell.metrics.requestAnswered(kind, response.status, started.ms);
    started.span.setAttributes({
      "pledge.request.kind": "batch",
      "pledge.batch.size": outcomes.length,
      "http.response.status_code": 200,
    });
    const serverErrors = outcomes.filter(({ response }) => response.status >= 500).length;
    started.span.end(
      serverErrors > 0 ? `${serverErrors} of ${outcomes.length} requests answered 5xx` : undefined,
    );
    const bodies = outcomes.map(({ kind, corrId, response }) => envelope(kind, corrId, response));
    return { status: 200, headers: JSON_HEADERS, body: `[${bodies.join(",")}]` };
  };

  return async (request) => {
    const started = {
      ms: performance.now(),
      // W5: a span per protocol request, under the caller's W3C `traceparent` header if any.
      span: startSpan("pledge.request", {
        kind: "server",
        parent: { traceparent: request.header("traceparent") },
      }),
    };
    const headerToken = bearer(request.header("authorization"));
    const bytes = await request.body(options.maxBodyBytes);
    if (bytes === undefined) {
      // The body is not read past the limit, so only the header can carry a token here.
      if (!authorized(headerToken)) return answer(started, "unknown", "0", unauthorized());
      const message = `body: larger than the limit of ${options.maxBodyBytes} bytes`;
      return answer(started, "unknown", "0", protocolError(413, "body_too_large", message));
    }
    const decoded = decodeBody(bytes);
    if (!decoded.ok) {
      if (!authorized(headerToken)) return answer(started, "unknown", "0", unauthorized());
      return answer(started, decoded.failure.kind, decoded.failure.corrId, failureResponse(decoded.failure));
    }
    if (Array.isArray(decoded.json)) return batch(started, decoded.json, decoded.text, headerToken);
    const { kind, corrId, response } = await settle(decoded.json, decoded.text, decoded, headerToken);
    return answer(started, kind, corrId, response);
  };
}
