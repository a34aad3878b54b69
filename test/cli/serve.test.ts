/**
 * `pledge serve` as a real process: it starts on the flags (or PLEDGE_*
 * variables), prints one line with its URL and store, answers /health and
 * client commands, and exits 0 on SIGTERM / SIGINT. It refuses an unsafe bind
 * or a bad value with exit 2 before starting anything.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, finished, ONE_LINE_REASON, pledge, start, waitForLine } from "./helpers.js";

let directory: string;

beforeAll(async () => {
  await ensureBuilt();
  directory = mkdtempSync(join(tmpdir(), "pledge-cli-serve-"));
}, 180_000);

afterAll(() => {
  if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
});

const SERVING = /^pledge serving (http:\/\/127\.0\.0\.1:(\d+)) \(store ([^,)]+)[^)]*\)\n/m;

describe("pledge serve", () => {
  it("starts on the flags, answers /health and clients, and exits 0 on SIGTERM", async () => {
    const store = `sqlite:${join(directory, "flags.db")}`;
    const child = start([
      "serve",
      "--port",
      "0",
      "--store",
      store,
      "--log-level",
      "silent",
      "--retry-timeout",
      "2s",
    ]);
    try {
      const [, url, port, printedStore] = await waitForLine(child, SERVING, 20_000);
      expect(Number(port)).toBeGreaterThan(0);
      expect(printedStore).toBe(store);
      const health = await fetch(`${url}/health`);
      expect(health.status).toBe(200);

      const created = await pledge([
        "promises",
        "create",
        "served",
        "--timeout",
        "1m",
        "--json",
        "--url",
        url ?? "",
      ]);
      expect(created.code, created.stderr).toBe(0);
      expect(JSON.parse(created.stdout).promise.id).toBe("served");

      const exited = finished(child, 20_000);
      child.kill("SIGTERM");
      const outcome = await exited;
      expect(outcome.code, outcome.stderr).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("takes its settings from PLEDGE_* variables and exits 0 on SIGINT", async () => {
    const store = `sqlite:${join(directory, "env.db")}`;
    const child = start(["serve"], {
      PLEDGE_PORT: "0",
      PLEDGE_STORE: store,
      PLEDGE_LOG_LEVEL: "silent",
      PLEDGE_AUTH_TOKEN: "env-token",
      PLEDGE_MAX_BODY: "64KiB",
    });
    try {
      const [line, url, , printedStore] = await waitForLine(child, SERVING, 20_000);
      expect(printedStore).toBe(store);
      expect(line).toContain("auth on");
      expect(line).not.toContain("env-token");

      const refused = await pledge(["promises", "get", "x", "--url", url ?? ""]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("401");
      const allowed = await pledge([
        "promises",
        "create",
        "env",
        "--timeout",
        "1m",
        "--url",
        url ?? "",
        "--token",
        "env-token",
      ]);
      expect(allowed.code, allowed.stderr).toBe(0);

      const exited = finished(child, 20_000);
      child.kill("SIGINT");
      expect((await exited).code).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("logs JSON lines at the --log-level when stdout is not a terminal", async () => {
    const child = start(["serve", "--port", "0", "--store", "memory", "--log-level", "debug"]);
    try {
      const [line] = await waitForLine(child, /^\{[^\n]*"pledge server listening"[^\n]*\}\n/m, 20_000);
      const record = JSON.parse(line) as Record<string, unknown>;
      expect(record).toMatchObject({ level: 30, service: "pledge", store: "memory" });
      expect(typeof record.time).toBe("number");
      const exited = finished(child, 20_000);
      child.kill("SIGTERM");
      expect((await exited).code).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("refuses 0.0.0.0 without a token: exit 2 and a one-line reason", async () => {
    const outcome = await pledge(["serve", "--host", "0.0.0.0", "--port", "0", "--store", "memory"]);
    expect(outcome.code).toBe(2);
    expect(outcome.stdout).toBe("");
    expect(outcome.stderr).toMatch(ONE_LINE_REASON);
    expect(outcome.stderr).toContain("--insecure");

    const fromEnv = await pledge(["serve"], {
      env: { PLEDGE_HOST: "0.0.0.0", PLEDGE_PORT: "0", PLEDGE_STORE: "memory" },
    });
    expect(fromEnv.code).toBe(2);
  });

  it.each([
    [["--retry-timeout", "5"]],
    [["--unblock-ttl", "forever"]],
    [["--retain", "a while"]],
    [["--max-body", "huge"]],
    [["--port", "http"]],
    [["--sync", "off"]],
    [["--log-level", "chatty"]],
    [["--bogus"]],
  ])("exits 2 with a one-line reason for serve %j", async (args) => {
    const outcome = await pledge(["serve", "--store", "memory", "--port", "0", ...args]);
    expect(outcome.code).toBe(2);
    expect(outcome.stdout).toBe("");
    expect(outcome.stderr).toMatch(ONE_LINE_REASON);
  });

  it("exits 1 with a one-line reason when the server cannot start", async () => {
    const blocker = start(["serve", "--port", "0", "--store", "memory", "--log-level", "silent"]);
    try {
      const [, , port] = await waitForLine(blocker, SERVING, 20_000);
      const outcome = await pledge([
        "serve",
        "--port",
        port ?? "",
        "--store",
        "memory",
        "--log-level",
        "silent",
      ]);
      expect(outcome.code).toBe(1);
      expect(outcome.stderr).toMatch(ONE_LINE_REASON);
    } finally {
      blocker.kill("SIGKILL");
    }
  });
});
