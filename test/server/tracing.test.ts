/**
 * Server spans (issue 6 item 6): with an OpenTelemetry SDK installed, each
 * `POST /` is one `pledge.request` span named by its kind and status, under the
 * caller's W3C `traceparent` header when it sends one (app.ts W5).
 */
import { trace } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { afterEach, describe, expect, it } from "vitest";
import { cleanUp, ok, serve } from "./helpers.js";

afterEach(async () => {
  await cleanUp();
  trace.disable();
});

describe("server spans", () => {
  it("each protocol request is one span, continuing the caller's trace", async () => {
    const exporter = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    const server = await serve();
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const response = await fetch(`${server.url}/`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
      body: JSON.stringify({
        kind: "promise.get",
        head: { corrId: "1", version: "2026-04-01" },
        data: { id: "missing" },
      }),
    });
    expect(response.status).toBe(404);
    await ok(server.url, "promise.create", { id: "traced", timeoutAt: Date.now() + 60_000 });

    const spans = exporter.getFinishedSpans().filter((span) => span.name === "pledge.request");
    expect(spans.map((span) => span.attributes["pledge.request.kind"])).toEqual([
      "promise.get",
      "promise.create",
    ]);
    const [get, create] = spans;
    expect(get?.spanContext().traceId).toBe(traceId);
    expect(get?.parentSpanContext?.spanId).toBe("00f067aa0ba902b7");
    expect(get?.attributes["http.response.status_code"]).toBe(404);
    expect(create?.spanContext().traceId).not.toBe(traceId);
  });
});
