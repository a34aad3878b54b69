/**
 * Server events (src/server/events.ts E1–E4, src/server/http/event-stream.ts
 * F1–F3, docs/events.md): what `GET /events` tells, when, to whom, and what a
 * slow client costs. The shell-level tests drive a `ServerShell` on the memory
 * store with a clock that only moves when told; the HTTP ones run `pledge serve`
 * in this process and read the stream with fetch.
 */
import { afterEach, describe, expect, test } from "vitest";
import type { Clock, Timers } from "../../src/lib/clock.js";
import { silentLogger } from "../../src/lib/logger.js";
import type { ServerEvent } from "../../src/protocol/events.js";
import type { Request } from "../../src/protocol/requests.js";
import { EventHub, taskEventKind } from "../../src/server/events.js";
import { eventStreamResponse } from "../../src/server/http/event-stream.js";
import { ServerShell } from "../../src/server/shell.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { cleanUp, ok, serve, waitUntil } from "./helpers.js";

afterEach(cleanUp);

const NEVER: Timers = { setTimeout: () => undefined, clearTimeout: () => {} };

function shellAt(time: { now: number }) {
  const clock: Clock = { now: () => time.now };
  return new ServerShell(
    { store: new MemoryStore(), clock, timers: NEVER, logger: silentLogger },
    { debug: false, retryTimeoutMs: 5000, unblockTtlMs: 3_600_000 },
  );
}

let corr = 0;
function request(kind: string, data: Record<string, unknown>): Request {
  corr += 1;
  return { kind, corrId: String(corr), data } as unknown as Request;
}

/** `kind cause id` of each event, the shape most assertions need. */
function lines(events: readonly ServerEvent[]): string[] {
  return events.map((event) => {
    const id =
      "promise" in event
        ? event.promise.id
        : "task" in event
          ? event.task.id
          : "schedule" in event
            ? event.schedule.id
            : "-";
    return `${event.kind} ${event.cause} ${id}`;
  });
}

describe("the shell's events", () => {
  test("a targeted promise's life is told in commit order: created, claimed, settled, fulfilled, with seq rising by one", async () => {
    const time = { now: 1_000 };
    const shell = shellAt(time);
    const events: ServerEvent[] = [];
    shell.events.subscribe((event) => events.push(event));
    await shell.handle(
      request("promise.create", {
        id: "job",
        timeoutAt: 60_000,
        tags: { "resonate:target": "poll://any@g" },
      }),
    );
    time.now = 2_000;
    await shell.handle(request("task.acquire", { id: "job", version: 0, pid: "w1", ttl: 10_000 }));
    await shell.handle(request("task.heartbeat", { pid: "w1", tasks: [{ id: "job", version: 1 }] }));
    time.now = 3_000;
    await shell.handle(request("promise.settle", { id: "job", state: "resolved", value: {} }));
    await shell.close();

    expect(lines(events)).toEqual([
      "promise.created promise.create job",
      "task.created promise.create job",
      "task.claimed task.acquire job",
      "promise.settled promise.settle job",
      "task.fulfilled promise.settle job",
    ]);
    expect(events.map((event) => event.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(events[2]).toMatchObject({
      at: 2_000,
      from: "pending",
      task: { id: "job", state: "acquired", version: 1, pid: "w1", ttl: 10_000 },
    });
    expect(events[3]).toMatchObject({ at: 3_000, promise: { state: "resolved", settledAt: 3_000 } });
  });

  test("events carry summaries: no param and no value, however large", async () => {
    const shell = shellAt({ now: 1_000 });
    const events: ServerEvent[] = [];
    shell.events.subscribe((event) => events.push(event));
    const big = Buffer.from(JSON.stringify("x".repeat(100_000))).toString("base64");
    await shell.handle(request("promise.create", { id: "p", timeoutAt: 60_000, param: { data: big } }));
    await shell.handle(request("promise.settle", { id: "p", state: "resolved", value: { data: big } }));
    await shell.close();
    expect(lines(events)).toEqual(["promise.created promise.create p", "promise.settled promise.settle p"]);
    for (const event of events) {
      expect(event).not.toHaveProperty("promise.param");
      expect(event).not.toHaveProperty("promise.value");
      expect(JSON.stringify(event).length).toBeLessThan(500);
    }
  });

  test("with nobody listening no event is described, so none is numbered", async () => {
    const shell = shellAt({ now: 1_000 });
    await shell.handle(request("promise.create", { id: "quiet", timeoutAt: 60_000 }));
    await shell.handle(request("promise.settle", { id: "quiet", state: "rejected", value: {} }));
    expect(shell.events.lastSeq).toBe(0);
    const events: ServerEvent[] = [];
    const unsubscribe = shell.events.subscribe((event) => events.push(event));
    await shell.handle(request("promise.create", { id: "heard", timeoutAt: 60_000 }));
    unsubscribe();
    await shell.handle(request("promise.create", { id: "quiet-again", timeoutAt: 60_000 }));
    await shell.close();
    expect(lines(events)).toEqual(["promise.created promise.create heard"]);
    expect(shell.events.lastSeq).toBe(1);
  });

  test("a request that changes nothing tells nothing", async () => {
    const shell = shellAt({ now: 1_000 });
    const events: ServerEvent[] = [];
    shell.events.subscribe((event) => events.push(event));
    await shell.handle(request("promise.create", { id: "once", timeoutAt: 60_000 }));
    await shell.handle(request("promise.create", { id: "once", timeoutAt: 60_000 }));
    await shell.handle(request("promise.get", { id: "once" }));
    await shell.close();
    expect(lines(events)).toEqual(["promise.created promise.create once"]);
  });

  test("a subscriber that throws is removed and the others still hear every event", () => {
    const hub = new EventHub();
    const heard: number[] = [];
    hub.subscribe(() => {
      throw new Error("broken subscriber");
    });
    hub.subscribe((event) => heard.push(event.seq));
    hub.publish([
      { kind: "server.reset", at: 1, cause: "debug.reset" },
      { kind: "server.reset", at: 2, cause: "debug.reset" },
    ]);
    expect(heard).toEqual([1, 2]);
    expect(hub.size).toBe(1);
  });

  test("task transitions are named from the state before and after", () => {
    expect(taskEventKind(undefined, "pending", "promise.create")).toBe("task.created");
    expect(taskEventKind("pending", "acquired", "task.acquire")).toBe("task.claimed");
    expect(taskEventKind("acquired", "pending", "timer")).toBe("task.released");
    expect(taskEventKind("acquired", "suspended", "task.suspend")).toBe("task.suspended");
    expect(taskEventKind("suspended", "pending", "promise.settle")).toBe("task.resumed");
    expect(taskEventKind("acquired", "halted", "task.halt")).toBe("task.halted");
    expect(taskEventKind("halted", "pending", "task.continue")).toBe("task.continued");
    expect(taskEventKind("acquired", "fulfilled", "task.fulfill")).toBe("task.fulfilled");
    expect(taskEventKind("pending", "pending", "timer")).toBe("task.retried");
    expect(taskEventKind("pending", "pending", "promise.settle")).toBeUndefined();
    expect(taskEventKind("acquired", "acquired", "task.heartbeat")).toBeUndefined();
  });
});

describe("the /events stream's buffer", () => {
  test("a client that does not read is dropped once its unread frames would pass the limit, and unsubscribed", async () => {
    const hub = new EventHub();
    let ended = 0;
    const response = eventStreamResponse(hub, {
      bufferBytes: 4096,
      keepAliveMs: 60_000,
      retryMs: 1000,
      logger: silentLogger,
      onEnd: () => {
        ended += 1;
      },
    });
    expect(hub.size).toBe(1);
    // Nobody reads the body: every frame stays queued in the stream.
    for (let index = 0; index < 100 && hub.size > 0; index += 1)
      hub.publish([{ kind: "server.reset", at: index, cause: "x".repeat(100) }]);
    expect(hub.size).toBe(0);
    expect(ended).toBe(1);
    expect(hub.lastSeq).toBeLessThan(4096 / 100);
    // What was queued is let go at once; the response ends cleanly, so an EventSource reconnects.
    const reader = response.body?.getReader();
    expect(await reader?.read()).toEqual({ done: true, value: undefined });
  });

  test("a client that goes away is unsubscribed", async () => {
    const hub = new EventHub();
    let ended = 0;
    const response = eventStreamResponse(hub, {
      bufferBytes: 4096,
      keepAliveMs: 60_000,
      retryMs: 1000,
      logger: silentLogger,
      onEnd: () => {
        ended += 1;
      },
    });
    await response.body?.cancel();
    expect(hub.size).toBe(0);
    expect(ended).toBe(1);
  });
});

/** An `/events` client over fetch, collecting parsed `data:` frames. */
class EventsClient {
  readonly frames: Record<string, unknown>[] = [];
  private readonly controller = new AbortController();

  static async open(url: string, init: RequestInit = {}): Promise<EventsClient> {
    const client = new EventsClient();
    const response = await fetch(url, { ...init, signal: client.controller.signal });
    if (response.status !== 200 || response.body === null)
      throw new Error(`GET ${url} answered ${response.status}`);
    void client.read(response.body);
    await waitUntil(() => client.frames.length > 0, "the hello frame");
    return client;
  }

  get events(): ServerEvent[] {
    return this.frames.filter((frame) => frame.kind !== "events.hello") as unknown as ServerEvent[];
  }

  close(): void {
    this.controller.abort();
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of block.split("\n"))
            if (line.startsWith("data: ")) this.frames.push(JSON.parse(line.slice(6)));
        }
      }
    } catch {
      // aborted by close()
    }
  }
}

describe("GET /events over HTTP", () => {
  test("the first frame says where numbering stands; then come the events of committed requests", async () => {
    const server = await serve();
    await ok(server.url, "promise.create", { id: "before", timeoutAt: Date.now() + 60_000 });
    const client = await EventsClient.open(`${server.url}/events`);
    expect(client.frames[0]).toEqual({ kind: "events.hello", seq: 0 });
    await ok(server.url, "promise.create", { id: "after", timeoutAt: Date.now() + 60_000 });
    await ok(server.url, "promise.settle", { id: "after", state: "resolved", value: {} });
    await waitUntil(() => client.events.length >= 2, "two events");
    expect(lines(client.events)).toEqual([
      "promise.created promise.create after",
      "promise.settled promise.settle after",
    ]);
    client.close();
  });

  test("a deadline the server's timer fires is told with cause timer", async () => {
    const server = await serve();
    const client = await EventsClient.open(`${server.url}/events`);
    await ok(server.url, "promise.create", {
      id: "deadline",
      timeoutAt: Date.now() + 100,
      tags: { "resonate:external": "true" },
    });
    await waitUntil(() => client.events.length >= 2, "the timeout's event");
    expect(lines(client.events)).toEqual([
      "promise.created promise.create deadline",
      "promise.settled timer deadline",
    ]);
    expect(client.events[1]).toMatchObject({ promise: { state: "rejected_timedout" } });
    client.close();
  });

  test("with a token set: 401 with the same plain body as /poll without it; the header or ?token= opens the stream", async () => {
    const token = "events-secret";
    const server = await serve({ authToken: token });
    for (const path of ["/events", "/events?token=wrong"]) {
      const refused = await fetch(`${server.url}${path}`);
      expect(refused.status).toBe(401);
      expect(await refused.text()).toBe("unauthorized");
    }
    const poll = await fetch(`${server.url}/poll/g/w`);
    expect(poll.status).toBe(401);
    expect(await poll.text()).toBe("unauthorized");

    const byHeader = await EventsClient.open(`${server.url}/events`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    const byQuery = await EventsClient.open(`${server.url}/events?token=${token}`);
    await ok(server.url, "promise.create", { id: "secret", timeoutAt: Date.now() + 60_000 }, { token });
    await waitUntil(() => byHeader.events.length === 1 && byQuery.events.length === 1, "an event on both");
    byHeader.close();
    byQuery.close();
  });
});
