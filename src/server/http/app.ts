/**
 * The HTTP edge (PROTOCOL.md §1), written against web-standard Request/Response
 * through Hono so it runs the same standalone and embedded. `POST /` is
 * `protocol-endpoint.ts` (validation, the shell, the §1.3 envelope, store failures
 * mapped to HTTP), which `pledge serve` also answers on Node's listener directly;
 * the rest (SSE, `/events`, the dashboard, health, metrics) is here.
 *
 * Invariants:
 *  W1  With a token set, nothing but the token decides a request without it:
 *      401 before any other check, same answer whatever the body names (a batch,
 *      ADR 0006, is one request here: only the Authorization header can carry it).
 *  W2  Every protocol response body is JSON with `Content-Type: application/json`.
 *  W3  An SSE frame carries exactly one `data:` line (compact JSON has no newline).
 *  W4  `GET /events` takes its token from the header or `?token=` (an `EventSource`
 *      cannot send headers); without it, the same plain 401 as `/poll`.
 *  W5  Each `POST /` is one `pledge.request` span (OpenTelemetry, when installed:
 *      `lib/tracing.ts`), ended exactly when it is answered, as its metrics are.
 */
import { Hono, type HonoRequest } from "hono";
import { streamSSE } from "hono/streaming";
import { assert } from "../../lib/assert.js";
import type { Logger } from "../../lib/logger.js";
import type { OutgoingMessage } from "../../protocol/records.js";
import type { Connection } from "../delivery.js";
import type { ServerShell } from "../shell.js";
import { type DashboardFiles, dashboardResponse } from "./dashboard.js";
import { eventStreamResponse } from "./event-stream.js";
import { bearer, protocolEndpoint, tokenMatches, unhandledAnswer } from "./protocol-endpoint.js";

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

  const endpoint = protocolEndpoint(shell, options);

  // The protocol itself (protocol-endpoint.ts); `pledge serve` answers it on Node's
  // listener directly (node/protocol-listener.ts) and the rest through here.
  app.post("/", async (c) => {
    const answer = await endpoint({
      header: (name) => c.req.header(name),
      body: (maxBytes) => readBodyWithin(c.req, maxBytes),
    });
    return new Response(answer.body, { status: answer.status, headers: answer.headers });
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
  app.onError((error) => {
    const answer = unhandledAnswer(error, options);
    return new Response(answer.body, { status: answer.status, headers: answer.headers });
  });
  return app;
}
