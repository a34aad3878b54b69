/**
 * The dashboard in a real browser (issue 6, items 1 and 2): Debian's chromium,
 * headless, against `pledge serve`'s composition root in this process and a
 * worker on the SDK (`new Pledge({ url })`) whose workflow waits on an external
 * promise (`ctx.promise()`). A person's path: search, open the tree, resolve the
 * waiting node after confirming, and watch the node and then the workflow turn
 * resolved, live, without navigating. A screenshot is kept in test-artifacts/.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { Pledge } from "../../src/index.js";
import { DEFAULT_SERVE_OPTIONS, type RunningServer } from "../../src/node/options.js";
import { startServer } from "../../src/node/serve.js";
import type { Context } from "../../src/sdk/engine/context.js";
import { freePort } from "../server/helpers.js";
import {
  artifactPath,
  type Browser,
  CHROMIUM,
  chromiumAvailable,
  ensureDashboardBuilt,
  launchChromium,
  requireChromium,
  warnSkipped,
} from "./browser.js";

const run = chromiumAvailable || requireChromium;
if (!run) warnSkipped();

let browser: Browser | undefined;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  if (!run) return;
  if (!chromiumAvailable)
    throw new Error(
      `${CHROMIUM} is missing and CI=true: install Debian's chromium (apt-get install -y chromium)`,
    );
  await ensureDashboardBuilt();
  browser = await launchChromium();
}, 120_000);

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  await browser?.close();
});

async function serve(authToken?: string): Promise<RunningServer> {
  const server = await startServer({
    ...DEFAULT_SERVE_OPTIONS,
    store: "memory",
    port: 0,
    logLevel: "silent",
    ...(authToken !== undefined && { authToken }),
  });
  cleanups.push(() => server.close());
  return server;
}

/** Posts one protocol request; answers `data` of a 200. */
async function call(
  url: string,
  kind: string,
  data: unknown,
  token?: string,
): Promise<Record<string, unknown>> {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      ...(token !== undefined && { Authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify({ kind, head: { corrId: `t-${Math.random()}`, version: "2026-04-01" }, data }),
  });
  const body = (await response.json()) as { head: { status: number }; data: Record<string, unknown> };
  if (body.head.status !== 200)
    throw new Error(`${kind} answered ${body.head.status}: ${JSON.stringify(body.data)}`);
  return body.data;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe.skipIf(!run)("the dashboard in Debian's chromium", () => {
  test("a person finds a waiting workflow by searching, resolves its external promise after confirming, and sees the node and then the workflow turn resolved within about a second, without navigating", async () => {
    const server = await serve();
    const worker = new Pledge({ url: server.url, logLevel: "silent" });
    cleanups.push(() => worker.stop());
    worker.register("approveOrder", async (ctx: Context, order: string) => {
      const decision = await ctx.promise<string>();
      return { order, decision };
    });
    const workflowId = `order-${process.pid}-${Date.now()}`;
    const handle = await worker.beginRun(workflowId, "approveOrder", "order-42");
    const waiting = await waitFor("the workflow's external promise", async () => {
      const data = await call(server.url, "promise.search", { tags: { "resonate:parent": workflowId } });
      const found = (data.promises as { id: string; tags: Record<string, string> }[]).find(
        (promise) => promise.id !== workflowId && promise.tags["resonate:external"] === "true",
      );
      return found?.id;
    });

    const page = await (browser as Browser).context.newPage();
    cleanups.push(() => page.close());
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    const requests: string[] = [];
    page.on("request", (request) => requests.push(request.url()));
    await page.goto(`${server.url}/`);

    // Search: the box is an <input type="search">, and Enter searches.
    const box = page.locator('input[type="search"]');
    await box.fill(workflowId);
    await box.press("Enter");
    await page.locator(`.results [data-promise-id="${workflowId}"] button`).click();

    // The tree: the workflow, and under it the promise it waits on.
    const rootNode = page.locator(`.tree li[data-promise-id="${workflowId}"]`);
    const waitingNode = page.locator(`.tree li[data-promise-id="${waiting}"]`);
    await expect.poll(() => rootNode.getAttribute("data-state")).toBe("pending");
    await expect.poll(() => waitingNode.getAttribute("data-state")).toBe("pending");
    await waitingNode.locator(".node-main").first().click();

    // Navigation would wipe this marker and fire framenavigated.
    await page.evaluate(() => {
      (window as unknown as { stayed: boolean }).stayed = true;
    });
    let navigations = 0;
    page.on("framenavigated", (frame) => {
      if (frame === page.mainFrame()) navigations += 1;
    });

    // Resolve… opens a form; nothing is sent before the confirmation.
    await page.getByRole("button", { name: "Resolve…" }).click();
    await page.locator(".confirm textarea").fill('"approved"');
    await page.screenshot({ path: artifactPath("dashboard-confirm.png"), fullPage: true });
    const before = await call(server.url, "promise.get", { id: waiting });
    expect((before.promise as { state: string }).state).toBe("pending");
    const confirmedAt = Date.now();
    await page.getByRole("button", { name: "Confirm resolve" }).click();

    await page.waitForSelector(`.tree li[data-promise-id="${waiting}"][data-state="resolved"]`, {
      timeout: 1500,
    });
    const nodeMs = Date.now() - confirmedAt;
    await page.waitForSelector(`.tree li[data-promise-id="${workflowId}"][data-state="resolved"]`, {
      timeout: 2000,
    });
    const workflowMs = Date.now() - confirmedAt;
    console.info(`dashboard: node resolved after ${nodeMs} ms, workflow after ${workflowMs} ms`);

    expect(await handle.result()).toEqual({ order: "order-42", decision: "approved" });
    expect(navigations).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);

    // The workflow's details: its value, decoded.
    await rootNode.locator(".node-main").first().click();
    await expect
      .poll(() => page.locator(".details pre.value").last().textContent())
      .toContain('"decision": "approved"');
    const screenshot = artifactPath("dashboard.png");
    await page.screenshot({ path: screenshot, fullPage: true });
    console.info(`dashboard: screenshot at ${screenshot}`);

    // Nothing from anywhere but this server; nothing broke on the page.
    expect(requests.filter((url) => !url.startsWith(server.url))).toEqual([]);
    expect(pageErrors).toEqual([]);
  });

  test("with a token set the page asks for it and shows nothing without it; a wrong one is refused, the right one opens it", async () => {
    const token = "dashboard-secret";
    const server = await serve(token);
    await call(
      server.url,
      "promise.create",
      { id: "secret-promise", timeoutAt: Date.now() + 600_000 },
      token,
    );

    const page = await (browser as Browser).context.newPage();
    cleanups.push(() => page.close());
    await page.goto(`${server.url}/`);
    const tokenBox = page.locator('input[type="password"]');
    await tokenBox.waitFor();
    expect(await page.locator('input[type="search"]').count()).toBe(0);
    expect(await page.content()).not.toContain("secret-promise");

    await tokenBox.fill("wrong");
    await tokenBox.press("Enter");
    await page.getByText("That token was refused.").waitFor();
    expect(await page.locator('input[type="search"]').count()).toBe(0);

    await page.locator('input[type="password"]').fill(token);
    await page.locator('input[type="password"]').press("Enter");
    await page.locator('.results [data-promise-id="secret-promise"]').waitFor();
    await page.locator(".live-live").waitFor();
  });

  test("after the server restarts the page is live again by itself; restarted with another token, it asks for the token again", async () => {
    const port = await freePort();
    const options = { ...DEFAULT_SERVE_OPTIONS, store: "memory", port, logLevel: "silent" } as const;
    let server: RunningServer | undefined = await startServer({ ...options, authToken: "first" });
    cleanups.push(async () => server?.close());
    const page = await (browser as Browser).context.newPage();
    cleanups.push(() => page.close());
    await page.goto(`${server.url}/`);
    await page.locator('input[type="password"]').fill("first");
    await page.locator('input[type="password"]').press("Enter");
    await page.locator(".live-live").waitFor();

    await server.close();
    await page.locator(".live-reconnecting").waitFor();
    server = await startServer({ ...options, authToken: "first" });
    await page.locator(".live-live").waitFor({ timeout: 10_000 });
    await call(
      server.url,
      "promise.create",
      { id: "after-restart", timeoutAt: Date.now() + 600_000 },
      "first",
    );
    await page.locator('input[type="search"]').press("Enter");
    await page.locator('.results [data-promise-id="after-restart"]').waitFor();

    await server.close();
    server = await startServer({ ...options, authToken: "second" });
    await page.locator('input[type="password"]').waitFor({ timeout: 10_000 });
    expect(await page.locator('input[type="search"]').count()).toBe(0);
  });
});
