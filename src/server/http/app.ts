/**
 * The HTTP edge (PROTOCOL.md §1), written against web-standard Request/Response
 * through Hono so it runs the same standalone and embedded. It validates once
 * (auth first, then `protocol/parse.ts`), hands typed requests to the shell and
 * dresses responses in the §1.3 envelope with the HTTP status mirroring
 * `head.status`. Store failures map to HTTP here and nowhere else.
 *
 * Invariants:
 *  W1  With a token set, nothing but the token decides a request without it:
 *      401 before any other check, same answer whatever the body names.
 *  W2  Every protocol response body is JSON with `Content-Type: application/json`.
 *  W3  An SSE frame carries exactly one `data:` line (compact JSON has no newline).
 *  W4  `GET /events` takes its token from the header or `?token=` (an `EventSource`
 *      cannot send headers); without it, the same plain 401 as `/poll`.
 *  W5  Each `POST /` is one `pledge.request` span (OpenTelemetry, when installed:
 *      `lib/tracing.ts`), ended exactly when it is answered, as its metrics are.
 */
import { timingSafeEqual } from "node:crypto";
import { performance } from "node:perf_hooks";
import { Hono, type HonoRequest } from "hono";
import { streamSSE } from "hono/streaming";
import { AssertionError, assert } from "../../lib/assert.js";
import type { Logger } from "../../lib/logger.js";
import { startSpan, type TraceSpan } from "../../lib/tracing.js";
import { type ErrorCode, protocolError } from "../../protocol/errors.js";
import { decodeBody, failureResponse, parseRequest } from "../../protocol/parse.js";
import { type OutgoingMessage, PROTOCOL_VERSION } from "../../protocol/records.js";
import type { Response as ProtocolResponse } from "../../protocol/requests.js";
import { StoreUnavailableError } from "../../store/store.js";
import type { Connection } from "../delivery.js";
import type { ServerShell } from "../shell.js";
import { type DashboardFiles, dashboardResponse } from "./dashboard.js";
import { eventStreamResponse } from "./event-stream.js";

export interface HttpOptions {
  authToken?: string;
  debug: boolean;
  maxBodyBytes: number;
  /** Most SSE connections at once; more get 503. */
  maxConnections?: number;
  /** Keep-alive comment interval on SSE streams. */
  keepAliveMs?: number;
  /** Frames queued on one SSE connection before further messages are dropped (at-most-once). */
  connectionBufferLimit?: number;
  /** Unread bytes one `/events` client may have queued before it is dropped. Default 1 MiB. */
  eventBufferBytes?: number;
  /** The dashboard's built files; without them `GET /` says how to build them. */
  dashboard?: DashboardFiles;
  logger: Logger;
  /** Called with a violated invariant; the process must not go on. */
  onFatal(error: Error): void;
}

const JSON_HEADERS = { "Content-Type": "application/json" };

function envelope(kind: string, corrId: string, response: ProtocolResponse): string {
  const head: Record<string, unknown> = { corrId, status: response.status, version: PROTOCOL_VERSION };
  if ("error" in response) head.error = response.error;
  return JSON.stringify({ kind, head, data: response.data });
}

function reply(kind: string, corrId: string, response: ProtocolResponse): Response {
  return new Response(envelope(kind, corrId, response), { status: response.status, headers: JSON_HEADERS });
}

function tokenMatches(expected: string, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}

function bearer(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return match?.[1];
}

/**
 * The request body, or undefined when it is larger than `maxBytes`. A declared
 * length is checked before reading (then the adapter's buffered fast path reads
 * exactly that much); a chunked body is counted as it streams and not read past
 * the limit.
 */
async function readBodyWithin(request: HonoRequest, maxBytes: number): Promise<Uint8Array | undefined> {
  const declared = request.header("content-length");
  if (declared !== undefined) {
    if (Number(declared) > maxBytes) return undefined;
    return new Uint8Array(await request.arrayBuffer());
  }
  const body = request.raw.body;
  if (body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

export function createApp(shell: ServerShell, options: HttpOptions): Hono {
  const app = new Hono();
  const maxConnections = options.maxConnections ?? 10_000;
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const bufferLimit = options.connectionBufferLimit ?? 1_000;
  let openConnections = 0;

  const failed = (code: ErrorCode & ("store_unavailable" | "internal"), message: string) =>
    code === "store_unavailable" ? protocolError(503, code, message) : protocolError(500, code, message);

  /** Every answer of POST / goes through here, so each is counted once (metrics). */
  /** `started`: the arrival (a `performance.now()` reading) and the request's span. */
  const answer = (
    started: { ms: number; span: TraceSpan },
    kind: string,
    corrId: string,
    response: ProtocolResponse,
  ): Response => {
    shell.metrics.requestAnswered(kind, response.status, started.ms);
    started.span.setAttributes({ "pledge.request.kind": kind, "http.response.status_code": response.status });
    started.span.end(response.status >= 500 ? `status ${response.status}` : undefined);
    return reply(kind, corrId, response);
  };

  const unauthorized = () => protocolError(401, "unauthorized", "authorization: missing or invalid token");

  app.post("/", async (c) => {
    const started = {
      ms: performance.now(),
      // W5: a span per protocol request, under the caller's W3C `traceparent` header if any.
      span: startSpan("pledge.request", {
        kind: "server",
        parent: { traceparent: c.req.header("traceparent") },
      }),
    };
    const headerToken = bearer(c.req.header("authorization"));
    const bytes = await readBodyWithin(c.req, options.maxBodyBytes);
    if (bytes === undefined) {
      // The body is not read past the limit, so only the header can carry a token here.
      if (options.authToken !== undefined && !tokenMatches(options.authToken, headerToken))
        return answer(started, "unknown", "0", unauthorized());
      const message = `body: larger than the limit of ${options.maxBodyBytes} bytes`;
      return answer(started, "unknown", "0", protocolError(413, "body_too_large", message));
    }
    const decoded = decodeBody(bytes);
    if (options.authToken !== undefined) {
      const presented = headerToken ?? (decoded.ok ? decoded.auth : undefined);
      if (!tokenMatches(options.authToken, presented)) {
        return answer(
          started,
          decoded.ok ? decoded.kind : "unknown",
          decoded.ok ? decoded.corrId : "0",
          unauthorized(),
        );
      }
    }
    if (!decoded.ok)
      return answer(started, decoded.failure.kind, decoded.failure.corrId, failureResponse(decoded.failure));
    const parsed = parseRequest(decoded.json, { debug: options.debug, text: decoded.text });
    if (!parsed.ok)
      return answer(started, parsed.failure.kind, parsed.failure.corrId, failureResponse(parsed.failure));
    const { request } = parsed;
    try {
      const response = await shell.handle(request, parsed.debugTime);
      return answer(started, request.kind, request.corrId, response);
    } catch (error) {
      if (error instanceof StoreUnavailableError) {
        options.logger.warn({ err: error, kind: request.kind }, "store unavailable");
        return answer(
          started,
          request.kind,
          request.corrId,
          failed("store_unavailable", `store unavailable: ${error.message}`),
        );
      }
      if (error instanceof AssertionError) options.onFatal(error);
      options.logger.error({ err: error, kind: request.kind }, "request failed");
      return answer(
        started,
        request.kind,
        request.corrId,
        failed("internal", "internal error; see the server log"),
      );
    }
  });

  app.get("/poll/:group/:id", (c) => {
    if (
      options.authToken !== undefined &&
      !tokenMatches(options.authToken, bearer(c.req.header("authorization")))
    )
      return c.text("unauthorized", 401);
    if (openConnections >= maxConnections) return c.text("too many connections", 503);
    const group = c.req.param("group");
    const id = c.req.param("id");
    return streamSSE(c, async (stream) => {
      openConnections += 1;
      let buffered = 0;
      let closed = false;
      const connection: Connection = {
        group,
        id,
        send(message: OutgoingMessage): boolean {
          if (closed || buffered >= bufferLimit) return false;
          const data = JSON.stringify(message);
          assert(!data.includes("\n"), "W3 an SSE data line has no newline");
          buffered += 1;
          stream
            .writeSSE({ data })
            .catch(() => {})
            .finally(() => {
              buffered -= 1;
            });
          return true;
        },
      };
      const disconnect = shell.connect(connection);
      const finished = new Promise<void>((resolve) => {
        stream.onAbort(() => {
          closed = true;
          resolve();
        });
      });
      // Keep-alive comments on a timer that dies with the connection, so a closed
      // stream leaves nothing behind that would hold the process open.
      const keepAlive = setInterval(() => {
        if (!closed) stream.write(":\n\n").catch(() => {});
      }, keepAliveMs);
      try {
        await stream.write(":\n\n");
        await finished;
      } finally {
        clearInterval(keepAlive);
        closed = true;
        disconnect();
        openConnections -= 1;
      }
    });
  });

  let openEventStreams = 0;
  app.get("/events", (c) => {
    const presented = bearer(c.req.header("authorization")) ?? c.req.query("token");
    if (options.authToken !== undefined && !tokenMatches(options.authToken, presented))
      return c.text("unauthorized", 401); // W4
    if (openEventStreams >= maxConnections) return c.text("too many connections", 503);
    openEventStreams += 1;
    return eventStreamResponse(shell.events, {
      bufferBytes: options.eventBufferBytes ?? 1024 * 1024,
      keepAliveMs,
      retryMs: 1000,
      logger: options.logger,
      onEnd: () => {
        openEventStreams -= 1;
      },
    });
  });

  app.get("/", () => dashboardResponse(options.dashboard, "index.html"));
  app.get("/assets/:name", (c) => dashboardResponse(options.dashboard, c.req.param("name")));

  app.get("/metrics", async (c) => {
    if (
      options.authToken !== undefined &&
      !tokenMatches(options.authToken, bearer(c.req.header("authorization")))
    )
      return c.text("unauthorized", 401);
    try {
      const text = await shell.metrics.scrape();
      return new Response(text, { status: 200, headers: { "Content-Type": shell.metrics.contentType } });
    } catch (error) {
      options.logger.warn({ err: error }, "metrics scrape failed");
      return c.text("metrics unavailable", 503);
    }
  });

  app.get("/health", () => new Response(null, { status: 200 }));

  app.get("/ready", async () => {
    try {
      await shell.ready();
      return new Response(null, { status: 200 });
    } catch {
      return new Response(null, { status: 503 });
    }
  });

  for (const legacy of ["/promises", "/promises/*", "/tasks", "/tasks/*", "/schedules", "/schedules/*"]) {
    app.all(legacy, () =>
      Response.json(
        { error: "the REST API is gone; POST protocol envelopes to / (version 2026-04-01)" },
        { status: 410 },
      ),
    );
  }

  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));
  app.onError((error, c) => {
    if (error instanceof AssertionError) options.onFatal(error);
    options.logger.error({ err: error }, "unhandled error");
    return c.json({ error: "internal error" }, 500);
  });
  return app;
}
