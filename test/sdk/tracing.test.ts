/**
 * Traces (issue 6 item 6): with an OpenTelemetry SDK installed (here
 * `BasicTracerProvider` and an in-memory exporter), a workflow is one trace,
 * even when the worker that started it stops and another finishes it; the
 * promises carry the trace in their `traceparent` tag. Without OpenTelemetry
 * (or with the api but no SDK) no tag is written.
 */

import * as otel from "@opentelemetry/api";
import { context, trace } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { afterEach, describe, expect, it } from "vitest";
import { setTracingApiForTests, TRACEPARENT_TAG } from "../../src/lib/tracing.js";
import type { Context } from "../../src/sdk/engine/context.js";
import { harnessFactory, promiseExists, taskSuspended, useCleanups } from "./support.js";

const cleanup = useCleanups();
const server = harnessFactory(cleanup);

function installSdk(): InMemorySpanExporter {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  return exporter;
}

afterEach(() => {
  trace.disable();
  context.disable();
  setTracingApiForTests(otel);
});

const step = (_ctx: Context, name: string) => `${name} done`;

async function workflow(ctx: Context): Promise<string> {
  await ctx.run(step, "before");
  const answer = await ctx.promise<string>({ id: "trace-gate" });
  await ctx.sleep(10);
  return ctx.run(step, `after ${answer}`);
}

describe("traces", () => {
  it("a workflow is one trace across a worker restart, and its promises carry it in traceparent", async () => {
    const exporter = installSdk();
    const harness = server();
    const first = harness.client({ pid: "first" });
    first.register("traced", workflow);
    await first.beginRun("trace-1", "traced");
    await promiseExists(harness, "trace-gate");
    await taskSuspended(harness, "trace-1");
    await first.stop(); // the first worker is gone mid-workflow

    const second = harness.client({ pid: "second" });
    second.register("traced", workflow);
    await second.promises.resolve("trace-gate", "yes");
    expect(await (await second.get("trace-1")).result()).toBe("after yes done");

    const spans = exporter.getFinishedSpans();
    const names = spans.map((span) => span.name);
    expect(names).toContain("pledge.run traced");
    expect(names.filter((name) => name === "pledge.execute traced").length).toBeGreaterThanOrEqual(2);
    expect(names).toContain("pledge.run step");
    expect(names).toContain("pledge.latent promise");
    expect(names).toContain("pledge.timer sleep");
    const traceIds = new Set(spans.map((span) => span.spanContext().traceId));
    expect(traceIds.size).toBe(1);
    const [traceId] = traceIds;

    for (const record of harness.records()) {
      const traceparent = record.tags[TRACEPARENT_TAG];
      expect(traceparent, record.id).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      expect(traceparent?.split("-")[1], record.id).toBe(traceId);
    }
    // Each execution hangs under the invocation span the root promise names.
    const invocation = spans.find((span) => span.name === "pledge.run traced");
    const executions = spans.filter((span) => span.name === "pledge.execute traced");
    for (const execution of executions)
      expect(execution.parentSpanContext?.spanId).toBe(invocation?.spanContext().spanId);
  });

  it("without an OpenTelemetry SDK, or without the api at all, no promise is tagged", async () => {
    for (const api of [otel, undefined]) {
      setTracingApiForTests(api);
      const harness = server();
      const pledge = harness.client();
      pledge.register("plain", async (ctx: Context) => ctx.run(step, "only"));
      expect(await pledge.run(`plain-${api === undefined ? "none" : "noop"}`, "plain")).toBe("only done");
      for (const record of harness.records()) expect(record.tags[TRACEPARENT_TAG]).toBeUndefined();
    }
  });
});
