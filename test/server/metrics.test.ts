/**
 * `GET /metrics` (INTERFACES.md HTTP; issue 6 item 4): Prometheus text from an
 * in-process server on the memory store, scraped before and after a workload;
 * the counters must move by exactly what the workload did.
 */
import { afterEach, describe, expect, test } from "vitest";
import { call, cleanUp, ok, PollStream, serve, sleep } from "./helpers.js";

afterEach(cleanUp);

interface Scrape {
  status: number;
  contentType: string | null;
  text: string;
}

async function scrape(url: string, token?: string): Promise<Scrape> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${url}/metrics`, { headers });
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    text: await response.text(),
  };
}

/** The value of one sample (`name{labels} value`), 0 when the series is absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const found = new Map<string, string>();
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g))
      found.set(pair[1] ?? "", pair[2] ?? "");
    if (found.size !== Object.keys(labels).length) continue;
    if (Object.entries(labels).every(([key, value]) => found.get(key) === value)) return Number(match[3]);
  }
  return 0;
}

async function metricsOf(url: string): Promise<string> {
  const result = await scrape(url);
  expect(result.status).toBe(200);
  return result.text;
}

describe("GET /metrics", () => {
  test("counters move by exactly the workload's requests, and the commit histograms grow", async () => {
    const server = await serve();
    const before = await metricsOf(server.url);

    for (let index = 0; index < 10; index += 1)
      await ok(server.url, "promise.create", { id: `m-${index}`, timeoutAt: Date.now() + 600_000 });
    for (let index = 0; index < 5; index += 1)
      await ok(server.url, "promise.settle", {
        id: `m-${index}`,
        state: "resolved",
        value: { data: "ZG9uZQ==" },
      });
    const missing = await call(server.url, "promise.get", { id: "no-such-promise" });
    expect(missing.status).toBe(404);

    const scraped = await scrape(server.url);
    expect(scraped.status).toBe(200);
    expect(scraped.contentType).toMatch(/^text\/plain/);
    const after = scraped.text;
    const moved = (name: string, labels: Record<string, string> = {}) =>
      sample(after, name, labels) - sample(before, name, labels);

    expect(moved("pledge_requests_total", { kind: "promise.create", status: "200" })).toBe(10);
    expect(moved("pledge_requests_total", { kind: "promise.settle", status: "200" })).toBe(5);
    expect(moved("pledge_requests_total", { kind: "promise.get", status: "404" })).toBe(1);
    expect(moved("pledge_request_duration_seconds_count", { kind: "promise.create" })).toBe(10);
    expect(moved("pledge_request_duration_seconds_count", { kind: "promise.settle" })).toBe(5);
    expect(moved("pledge_request_duration_seconds_count", { kind: "promise.get" })).toBe(1);
    expect(sample(after, "pledge_request_duration_seconds_sum", { kind: "promise.create" })).toBeGreaterThan(
      0,
    );
    // Each awaited request committed in its own batch (or shared one with a sweep).
    expect(moved("pledge_batch_size_count")).toBeGreaterThanOrEqual(16);
    expect(moved("pledge_batch_size_sum")).toBeGreaterThanOrEqual(16);
    expect(moved("pledge_store_commit_seconds_count")).toBeGreaterThanOrEqual(16);
    expect(sample(after, "pledge_sse_connections")).toBe(0);
    expect(sample(after, "pledge_outbox_messages")).toBe(0);
  });

  test("the by-state gauges count promises and tasks as stored, every state present", async () => {
    const server = await serve();
    const empty = await metricsOf(server.url);
    expect(empty).toContain('pledge_promises{state="rejected_timedout"} 0');
    expect(sample(empty, "pledge_promises", { state: "pending" })).toBe(0);
    expect(sample(empty, "pledge_tasks", { state: "pending" })).toBe(0);

    for (let index = 0; index < 4; index += 1)
      await ok(server.url, "promise.create", { id: `s-${index}`, timeoutAt: Date.now() + 600_000 });
    await ok(server.url, "promise.settle", { id: "s-0", state: "resolved", value: { data: "" } });
    await ok(server.url, "promise.settle", { id: "s-1", state: "rejected", value: { data: "" } });
    // A promise with a target makes a task (pending, its execute undelivered).
    await ok(server.url, "promise.create", {
      id: "s-task",
      timeoutAt: Date.now() + 600_000,
      tags: { "resonate:target": "poll://any@nobody" },
    });

    const after = await metricsOf(server.url);
    expect(sample(after, "pledge_promises", { state: "pending" })).toBe(3);
    expect(sample(after, "pledge_promises", { state: "resolved" })).toBe(1);
    expect(sample(after, "pledge_promises", { state: "rejected" })).toBe(1);
    expect(sample(after, "pledge_tasks", { state: "pending" })).toBe(1);
    expect(sample(after, "pledge_tasks", { state: "acquired" })).toBe(0);
  });

  test("an unknown request kind is counted as unknown, never as a label of its own", async () => {
    const server = await serve();
    const reply = await call(server.url, "promise.explode", { id: "x" });
    expect(reply.status).toBe(400);
    const after = await metricsOf(server.url);
    expect(sample(after, "pledge_requests_total", { kind: "unknown", status: "400" })).toBe(1);
    expect(after).not.toContain("promise.explode");
  });

  test("the SSE gauge counts open /poll connections and the outbox gauge what waits undelivered", async () => {
    const server = await serve();
    const worker = await PollStream.open(server.url, "g", "w1");
    expect(sample(await metricsOf(server.url), "pledge_sse_connections")).toBe(1);

    await ok(server.url, "promise.create", {
      id: "stuck",
      timeoutAt: Date.now() + 600_000,
      tags: { "resonate:target": "poll://any@nobody" },
    });
    expect(sample(await metricsOf(server.url), "pledge_outbox_messages")).toBe(1);

    worker.close();
    const deadline = Date.now() + 5000;
    while (sample(await metricsOf(server.url), "pledge_sse_connections") !== 0) {
      if (Date.now() > deadline) throw new Error("the SSE gauge never went back to 0");
      await sleep(10);
    }
  });

  test("an external promise timing out is one timer fired", async () => {
    const server = await serve();
    const before = sample(await metricsOf(server.url), "pledge_timers_fired_total");
    await ok(server.url, "promise.create", {
      id: "soon",
      timeoutAt: Date.now() + 50,
      tags: { "resonate:external": "true" },
    });
    // No request touches the promise meanwhile: a read past its deadline would
    // settle it itself (a request's transition, not a timer's).
    const deadline = Date.now() + 5000;
    let fired = 0;
    while (fired === 0) {
      if (Date.now() > deadline) throw new Error("no timer counted within 5 s");
      fired = sample(await metricsOf(server.url), "pledge_timers_fired_total") - before;
      if (fired === 0) await sleep(10);
    }
    expect(fired).toBe(1);
  });

  test("with a token set, a scrape without it gets 401 and one with it gets the metrics", async () => {
    const server = await serve({ authToken: "secret" });
    expect((await scrape(server.url)).status).toBe(401);
    expect((await scrape(server.url, "wrong")).status).toBe(401);
    const authorized = await scrape(server.url, "secret");
    expect(authorized.status).toBe(200);
    expect(authorized.text).toContain("# TYPE pledge_requests_total counter");
  });

  test("two servers in one process keep separate figures", async () => {
    const first = await serve();
    const second = await serve();
    await ok(first.url, "promise.create", { id: "only-first", timeoutAt: Date.now() + 600_000 });
    const kind = { kind: "promise.create", status: "200" };
    expect(sample(await metricsOf(first.url), "pledge_requests_total", kind)).toBe(1);
    expect(sample(await metricsOf(second.url), "pledge_requests_total", kind)).toBe(0);
  });
});
