/**
 * OpenTelemetry, when the user has it. `@opentelemetry/api` is an optional peer
 * dependency: it is imported once, dynamically, and every helper here is a no-op
 * when it is missing. With the api but no SDK registered, the api's own no-op
 * tracer answers, so spans cost a few allocations and carry no valid context.
 *
 * Trace context crosses processes in a promise tag, `traceparent`, in the W3C
 * Trace Context format (`00-<trace id>-<span id>-<flags>`), written and read here
 * without a propagator, so a workflow is one trace across workers and restarts.
 *
 * Invariants:
 *  T1  Nothing here changes what Pledge does: no clock or randomness is read
 *      (only the installed OTel SDK reads them, for its spans), and a `traceparent`
 *      tag is written only from a valid span context, which exists only when an
 *      SDK is installed or a caller's context already carried one.
 *  T2  A span is ended at most once (`end` is idempotent).
 */
import type * as OtelApi from "@opentelemetry/api";

export const TRACEPARENT_TAG = "traceparent";

type Api = typeof OtelApi;

let api: Api | undefined;
try {
  api = await import("@opentelemetry/api");
} catch {
  api = undefined; // Not installed: tracing stays off.
}

/** Replaces the api (tests only: `undefined` checks Pledge without OpenTelemetry). */
export function setTracingApiForTests(replacement: Api | undefined): void {
  api = replacement;
}

export type SpanAttributes = Record<string, string | number | boolean>;

/** A started span, or nothing at all when tracing is off. */
export interface TraceSpan {
  /** `{ traceparent }` of this span when its context is valid, else `{}` (T1). */
  readonly tags: Record<string, string>;
  setAttributes(attributes: SpanAttributes): void;
  /** Ends the span; `error` marks it failed. Idempotent (T2). */
  end(error?: string): void;
}

const NO_SPAN: TraceSpan = { tags: {}, setAttributes() {}, end() {} };

/** An opaque parent: a span started here, or a `traceparent` read from a tag or header. */
export type TraceParent = { span: TraceSpan } | { traceparent: string | undefined } | undefined;

const HANDLES = new WeakMap<TraceSpan, OtelApi.Span>();

/** Starts a span under `parent` (else under the caller's active context). */
export function startSpan(
  name: string,
  options: { parent?: TraceParent; attributes?: SpanAttributes; kind?: "server" | "client" | "internal" },
): TraceSpan {
  const otel = api;
  if (otel === undefined) return NO_SPAN;
  const parentContext = contextOf(otel, options.parent);
  const kind =
    options.kind === "server"
      ? otel.SpanKind.SERVER
      : options.kind === "client"
        ? otel.SpanKind.CLIENT
        : otel.SpanKind.INTERNAL;
  const span = otel.trace
    .getTracer("pledge")
    .startSpan(name, { kind, attributes: options.attributes }, parentContext);
  const spanContext = span.spanContext();
  const tags: Record<string, string> = otel.trace.isSpanContextValid(spanContext)
    ? { [TRACEPARENT_TAG]: formatTraceparent(spanContext) }
    : {};
  let ended = false;
  const handle: TraceSpan = {
    tags,
    setAttributes(attributes) {
      if (!ended) span.setAttributes(attributes);
    },
    end(error) {
      if (ended) return; // T2
      ended = true;
      if (error !== undefined) span.setStatus({ code: otel.SpanStatusCode.ERROR, message: error });
      span.end();
    },
  };
  HANDLES.set(handle, span);
  return handle;
}

function contextOf(otel: Api, parent: TraceParent): OtelApi.Context {
  const active = otel.context.active();
  if (parent === undefined) return active;
  if ("span" in parent) {
    const span = HANDLES.get(parent.span);
    return span === undefined ? active : otel.trace.setSpan(active, span);
  }
  const spanContext = parseTraceparent(parent.traceparent);
  return spanContext === undefined ? active : otel.trace.setSpanContext(active, spanContext);
}

function formatTraceparent(spanContext: OtelApi.SpanContext): string {
  const flags = (spanContext.traceFlags & 0xff).toString(16).padStart(2, "0");
  return `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** A W3C `traceparent` as a remote span context; `undefined` when absent or malformed. */
export function parseTraceparent(
  text: string | undefined,
): { traceId: string; spanId: string; traceFlags: number; isRemote: true } | undefined {
  const match = text === undefined ? null : TRACEPARENT.exec(text);
  if (match === null) return undefined;
  const [, traceId = "", spanId = "", flags = "00"] = match;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, traceFlags: Number.parseInt(flags, 16), isRemote: true };
}
