/**
 * The SDK's spans (`src/lib/tracing.ts` loads OpenTelemetry, when installed, and
 * does the W3C formatting). One workflow is one trace: `pledge.run`/`rpc` start an
 * invocation span and tag the root promise with its `traceparent`; each execution
 * of a task (first run, or resumed by another worker after a restart) opens a
 * `pledge.execute` span under the root promise's tag; each durable call made while
 * executing opens a span under that, and tags the call's promise with its own
 * `traceparent`, so a remote callee's execution continues the same trace.
 *
 * Left to the engine (`engine/execution.ts`): when calls are made, replayed and
 * settled; this module only opens and closes spans at those points.
 *
 * Invariants:
 *  R1  A replayed call (its promise already settled when the execution starts it)
 *      opens no span: spans describe work done, not work read back.
 *  R2  Every span this execution opened is ended when the execution finishes
 *      (done, suspended or abandoned); a call still pending ends as `suspended`.
 *  R3  Tags come only from `startSpan`, so without OpenTelemetry (or without a
 *      traced caller) no tag is added and the engine writes what it always wrote.
 */
import { startSpan, TRACEPARENT_TAG, type TraceSpan } from "../lib/tracing.js";
import type { PromiseRecord } from "../protocol/records.js";

/** A client's invocation: a span for `pledge.run`/`rpc`, whose context the root promise carries. */
export function invocationSpan(operation: "run" | "rpc", id: string, name: string): TraceSpan {
  return startSpan(`pledge.${operation} ${name}`, {
    kind: "client",
    attributes: { "pledge.promise.id": id, "pledge.function": name },
  });
}

export class ExecutionTrace {
  private readonly span: TraceSpan;
  private readonly calls = new Map<string, TraceSpan>();

  constructor(root: PromiseRecord, task: { id: string; version: number }, func: string) {
    this.span = startSpan(`pledge.execute ${func}`, {
      parent: { traceparent: root.tags[TRACEPARENT_TAG] },
      attributes: {
        "pledge.promise.id": root.id,
        "pledge.function": func,
        "pledge.task.id": task.id,
        "pledge.task.version": task.version,
      },
    });
  }

  /** A durable call about to be created (R1: never for a replayed one); answers the tags to add. */
  call(kind: string, name: string, id: string): Record<string, string> {
    const span = startSpan(`pledge.${kind} ${name}`, {
      parent: { span: this.span },
      attributes: { "pledge.promise.id": id, "pledge.call.kind": kind, "pledge.function": name },
    });
    this.calls.get(id)?.end();
    this.calls.set(id, span);
    return span.tags; // R3
  }

  /** A call's promise settled while this execution ran. */
  settled(record: PromiseRecord): void {
    const span = this.calls.get(record.id);
    if (span === undefined || record.state === "pending") return;
    this.calls.delete(record.id);
    span.setAttributes({ "pledge.promise.state": record.state });
    span.end(record.state === "resolved" ? undefined : record.state);
  }

  /** R2: the execution is over here (done, suspended or abandoned). */
  finish(outcome: { kind: string; state?: string }): void {
    for (const span of this.calls.values()) {
      span.setAttributes({ "pledge.promise.state": "pending" });
      span.end();
    }
    this.calls.clear();
    this.span.setAttributes({ "pledge.outcome": outcome.state ?? outcome.kind });
    this.span.end(outcome.state === "rejected" ? "rejected" : undefined);
  }
}
