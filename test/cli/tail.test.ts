/**
 * `pledge tail` and `pledge dashboard`, black-box: the built CLI as a child
 * process against servers started in this process (memory store). What users
 * and scripts rely on: one human line per event or raw JSON frames, exit 0 on a
 * stop signal, exit 1 with a one-line reason when there is nothing to follow or
 * the token is refused, exit 2 on bad usage.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_SERVE_OPTIONS, type RunningServer } from "../../src/node/options.js";
import { startServer } from "../../src/node/serve.js";
import { freePort } from "../server/helpers.js";
import { ensureBuilt, finished, ONE_LINE_REASON, pledge, start, waitForLine } from "./helpers.js";

let server: RunningServer;
let secured: RunningServer;
const TOKEN = "tail-test-token";

beforeAll(async () => {
  await ensureBuilt();
  server = await startServer({ ...DEFAULT_SERVE_OPTIONS, store: "memory", port: 0, logLevel: "silent" });
  secured = await startServer({
    ...DEFAULT_SERVE_OPTIONS,
    store: "memory",
    port: 0,
    logLevel: "silent",
    authToken: TOKEN,
  });
}, 180_000);

afterAll(async () => {
  await server?.close();
  await secured?.close();
});

async function call(url: string, kind: string, data: unknown, token?: string): Promise<void> {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      ...(token !== undefined && { Authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify({ kind, head: { corrId: "tail-test", version: "2026-04-01" }, data }),
  });
  expect(response.status, `${kind} ${JSON.stringify(data)}`).toBe(200);
}

let sequence = 0;
function uniqueId(stem: string): string {
  sequence += 1;
  return `${stem}-${process.pid}-${sequence}`;
}

describe("pledge tail", () => {
  it("prints one human line per event (time, kind, id, what, cause) and exits 0 on SIGINT", async () => {
    const child = start(["tail", "--url", server.url]);
    const outcome = finished(child, 20_000);
    await waitForLine(child, /^following .*\/events/m, 10_000);
    let stdout = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const id = uniqueId("tailed");
    await call(server.url, "promise.create", { id, timeoutAt: Date.now() + 60_000 });
    await call(server.url, "promise.settle", { id, state: "resolved", value: {} });
    await waitForLine(
      child,
      new RegExp(`promise\\.settled\\s+${id}\\s+resolved after \\S+\\s+\\(promise\\.settle\\)`),
      10_000,
    );
    expect(stdout).toMatch(
      new RegExp(
        `\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z  promise\\.created\\s+${id}\\s+timeout \\S+\\s+\\(promise\\.create\\)`,
      ),
    );
    child.kill("SIGINT");
    const result = await outcome;
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
  });

  it("--json prints each frame as the server sent it, one per line, starting with the hello; --id filters", async () => {
    const child = start(["tail", "--json", "--id", "json-", "--url", server.url]);
    const outcome = finished(child, 20_000);
    await waitForLine(child, /"kind":"events\.hello"/, 10_000);
    const other = uniqueId("other");
    const id = uniqueId("json");
    await call(server.url, "promise.create", { id: other, timeoutAt: Date.now() + 60_000 });
    await call(server.url, "promise.create", { id, timeoutAt: Date.now() + 60_000 });
    await waitForLine(child, new RegExp(`"id":"${id}"`), 10_000);
    child.kill("SIGINT");
    const result = await outcome;
    expect(result.code).toBe(0);
    const frames = result.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { kind: string; seq: number; promise?: { id: string } });
    expect(frames[0]?.kind).toBe("events.hello");
    expect(frames.slice(1)).toEqual([
      expect.objectContaining({
        kind: "promise.created",
        cause: "promise.create",
        promise: expect.objectContaining({ id }),
      }),
    ]);
  });

  it("follows a server with a token when given one, and refuses to start without it (exit 1, one line)", async () => {
    const refused = await pledge(["tail", "--url", secured.url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(ONE_LINE_REASON);
    expect(refused.stderr).toContain("401 unauthorized (pass --token or set PLEDGE_TOKEN)");

    const child = start(["tail", "--url", secured.url], { PLEDGE_TOKEN: TOKEN });
    const outcome = finished(child, 20_000);
    await waitForLine(child, /^following /m, 10_000);
    const id = uniqueId("secured");
    await call(secured.url, "promise.create", { id, timeoutAt: Date.now() + 60_000 }, TOKEN);
    await waitForLine(child, new RegExp(`promise\\.created\\s+${id}`), 10_000);
    child.kill("SIGTERM");
    expect((await outcome).code).toBe(0);
  });

  it("after losing its server it reconnects by itself, says so on stderr, and goes on printing", async () => {
    const port = await freePort();
    const options = { ...DEFAULT_SERVE_OPTIONS, store: "memory", port, logLevel: "silent" } as const;
    let first: RunningServer | undefined = await startServer(options);
    const child = start(["tail", "--url", first.url]);
    const outcome = finished(child, 30_000);
    try {
      await waitForLine(child, /^following /m, 10_000);
      await first.close();
      first = undefined;
      const second = await startServer(options);
      try {
        const id = uniqueId("after-restart");
        // Until tail is back, events are not seen; keep making them until one is.
        const seen = waitForLine(child, /promise\.created\s+after-restart-/, 15_000);
        let stop = false;
        void seen.finally(() => {
          stop = true;
        });
        for (let index = 0; !stop && index < 100; index += 1) {
          await call(second.url, "promise.create", { id: `${id}-${index}`, timeoutAt: Date.now() + 60_000 });
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        await seen;
      } finally {
        await second.close();
      }
    } finally {
      await first?.close();
      child.kill("SIGINT");
    }
    const result = await outcome;
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/reconnecting/);
  });

  it("with no server to follow: exit 1 with a one-line reason", async () => {
    const port = await freePort();
    const outcome = await pledge(["tail", "--url", `http://127.0.0.1:${port}`]);
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toMatch(ONE_LINE_REASON);
    expect(outcome.stderr).toContain("cannot reach the server");
  });

  it("bad usage is exit 2", async () => {
    const outcome = await pledge(["tail", "--url", "ftp://example"]);
    expect(outcome.code).toBe(2);
    expect(outcome.stderr).toMatch(ONE_LINE_REASON);
    expect((await pledge(["tail", "--no-such-flag"])).code).toBe(2);
  });
});

describe("pledge dashboard", () => {
  it("prints the dashboard URL of a running server, and --json says whether it asks for a token", async () => {
    const human = await pledge(["dashboard", "--url", server.url]);
    expect(human).toMatchObject({ code: 0, stderr: "", stdout: `${server.url}/\n` });
    const json = await pledge(["dashboard", "--json"], { env: { PLEDGE_URL: secured.url } });
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ url: `${secured.url}/`, tokenRequired: true });
  });

  it("says the page will ask for a token, and refuses a wrong one (exit 1)", async () => {
    const asks = await pledge(["dashboard", "--url", secured.url]);
    expect(asks.code).toBe(0);
    expect(asks.stdout).toBe(`${secured.url}/\n`);
    expect(asks.stderr).toMatch(/the page will ask for it/);
    const wrong = await pledge(["dashboard", "--url", secured.url, "--token", "nope"]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(ONE_LINE_REASON);
    expect((await pledge(["dashboard", "--url", secured.url, "--token", TOKEN])).code).toBe(0);
  });

  it("with no server: exit 1 with a one-line reason naming pledge serve", async () => {
    const port = await freePort();
    const outcome = await pledge(["dashboard", "--url", `http://127.0.0.1:${port}`]);
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toMatch(ONE_LINE_REASON);
    expect(outcome.stderr).toContain("pledge serve");
  });
});
