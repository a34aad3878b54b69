/**
 * Starts Pledge in-process for the black-box HTTP suite. Each test gets a fresh
 * server (memory store, debug mode, background loops paused with `debug.start`)
 * so that every test owns its debug clock from time 0 and never moves it back
 * (§1.6). After each test the response observer must have seen no violation
 * and `debug.snap` must satisfy every snapshot property (`Client.check`).
 */
import { afterEach, beforeEach, expect } from "vitest";
import { DEFAULT_SERVE_OPTIONS, type ServeOptions } from "../../src/node/options.js";
import { startServer } from "../../src/node/serve.js";
import { Client } from "./client.js";

export const AUTH_TOKEN = "conformance-secret-token";

export interface Started {
  url: string;
  close(): Promise<void>;
}

/** Starts a server with the suite's defaults, overridden by `overrides`. */
export async function start(overrides: Partial<ServeOptions> = {}): Promise<Started> {
  const server = await startServer({
    ...DEFAULT_SERVE_OPTIONS,
    store: "memory",
    port: 0,
    debug: true,
    logLevel: "silent",
    retryTimeoutMs: 5000,
    ...overrides,
  });
  return server;
}

export interface Harness {
  /** Base URL of the current test's server. */
  readonly url: string;
  /** Client of the current test (with the token when auth is on). */
  readonly c: Client;
}

export interface HarnessOptions {
  /** Start with `authToken` set; the harness client carries it. */
  auth?: boolean;
  /** Skip the after-test snapshot check (for tests that break the debug surface on purpose). */
  skipSnapshotCheck?: boolean;
}

/**
 * Registers hooks that give every test a fresh debug server and a client at
 * time 0, with `debug.start` already sent, and check the properties after it.
 */
export function useServer(options: HarnessOptions = {}): Harness {
  let server: Started | undefined;
  let client: Client | undefined;
  beforeEach(async () => {
    server = await start(options.auth ? { authToken: AUTH_TOKEN } : {});
    client = new Client(server.url, options.auth ? { token: AUTH_TOKEN } : {});
    await client.ok("debug.start", {});
  });
  afterEach(async () => {
    try {
      if (client !== undefined && !options.skipSnapshotCheck) {
        expect(client.violations, "properties of responses").toEqual([]);
        await client.check();
      }
    } finally {
      await server?.close();
      server = undefined;
      client = undefined;
    }
  });
  return {
    get url() {
      if (server === undefined) throw new Error("no server outside a test");
      return server.url;
    },
    get c() {
      if (client === undefined) throw new Error("no client outside a test");
      return client;
    },
  };
}
