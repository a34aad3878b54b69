/**
 * Who serves the dashboard, and how (src/server/http/dashboard.ts D1–D3): `pledge
 * serve` and an embedded instance that `listen`s both answer `GET /` with the
 * page and `/assets/*` with its files, under a Content-Security-Policy that keeps
 * the page to its own origin; `POST /` stays the protocol endpoint. No browser here.
 */
import { afterEach, beforeAll, describe, expect, test } from "vitest";
import { Pledge } from "../../src/index.js";
import { silentLogger } from "../../src/lib/logger.js";
import { DEFAULT_SERVE_OPTIONS } from "../../src/node/options.js";
import { createShell, startServer } from "../../src/node/serve.js";
import { createApp } from "../../src/server/http/app.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { ensureDashboardBuilt } from "./browser.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

beforeAll(ensureDashboardBuilt, 120_000);

async function expectDashboard(url: string): Promise<void> {
  const page = await fetch(`${url}/`);
  expect(page.status).toBe(200);
  expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
  const policy = page.headers.get("content-security-policy") ?? "";
  expect(policy).toContain("default-src 'none'");
  expect(policy).toContain("connect-src 'self'");
  const html = await page.text();
  expect(html).toContain('src="./assets/app.js"');
  expect(html).not.toMatch(/https?:\/\//);

  const script = await fetch(`${url}/assets/app.js`);
  expect(script.status).toBe(200);
  expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
  expect((await script.text()).length).toBeGreaterThan(1000);
  expect((await fetch(`${url}/assets/app.css`)).status).toBe(200);
  for (const path of ["/assets/nothing.js", "/assets/..%2Fpackage.json", "/assets/index.ts"])
    expect((await fetch(`${url}${path}`)).status, path).toBe(404);
}

describe("serving the dashboard", () => {
  test("pledge serve answers GET / with the page and /assets with its files; POST / is still the protocol", async () => {
    const server = await startServer({
      ...DEFAULT_SERVE_OPTIONS,
      store: "memory",
      port: 0,
      logLevel: "silent",
    });
    cleanups.push(() => server.close());
    await expectDashboard(server.url);
    const answer = await fetch(`${server.url}/`, {
      method: "POST",
      body: JSON.stringify({
        kind: "promise.search",
        head: { corrId: "1", version: "2026-04-01" },
        data: {},
      }),
    });
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { kind: string }).kind).toBe("promise.search");
  });

  test("the page's files need no token (they hold no data); /events and POST / do", async () => {
    const token = "serving-secret";
    const server = await startServer({
      ...DEFAULT_SERVE_OPTIONS,
      store: "memory",
      port: 0,
      logLevel: "silent",
      authToken: token,
    });
    cleanups.push(() => server.close());
    await expectDashboard(server.url);
    expect((await fetch(`${server.url}/events`)).status).toBe(401);
  });

  test("an embedded instance that listens serves the dashboard and /events too", async () => {
    const pledge = new Pledge({ store: "memory", listen: { port: 0 } });
    cleanups.push(() => pledge.stop());
    const url = await pledge.url();
    expect(url).toBeDefined();
    await expectDashboard(url as string);
    const events = await fetch(`${url}/events`);
    expect(events.status).toBe(200);
    expect(events.headers.get("content-type")).toBe("text/event-stream");
    await events.body?.cancel();
  });

  test("without a build, GET / says how to make one (503)", async () => {
    const shell = createShell(
      new MemoryStore(),
      { debug: false, retryTimeoutMs: 5000, unblockTtlMs: 3_600_000, serverUrl: () => undefined },
      silentLogger,
      (error) => {
        throw error;
      },
    );
    const app = createApp(shell, {
      debug: false,
      maxBodyBytes: 1024,
      logger: silentLogger,
      onFatal: (error) => {
        throw error;
      },
    });
    const page = await app.request("/");
    expect(page.status).toBe(503);
    expect(await page.text()).toContain("npm run build");
  });
});
