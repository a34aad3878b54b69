/**
 * Composition root of `pledge serve`: the real clock and timers, a store opened
 * from its URL (migrated at open), the shell, the Hono app on Node's HTTP server.
 */
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { MonotonicClock, systemClock, systemTimers } from "../lib/clock.js";
import { createLogger, type Logger } from "../lib/logger.js";
import { createApp } from "../server/http/app.js";
import { ServerShell } from "../server/shell.js";
import type { Store } from "../store/store.js";
import { openStore } from "./open-store.js";
import type { RunningServer, ServeOptions } from "./options.js";

export interface StartServerDependencies {
  logger?: Logger;
  /** A store already opened (embedded mode shares it); otherwise `options.store` is opened. */
  store?: Store;
  /** Called on a violated invariant; default: log and exit the process. */
  onFatal?: (error: Error) => void;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

export async function startServer(
  options: ServeOptions,
  deps: StartServerDependencies = {},
): Promise<RunningServer> {
  if (!isLoopback(options.host) && options.authToken === undefined && !options.insecure)
    throw new Error(
      `refusing to listen on ${options.host} without an auth token; set --auth-token (or PLEDGE_AUTH_TOKEN), or pass --insecure`,
    );
  const logger = deps.logger ?? createLogger(options.logLevel);
  const store = deps.store ?? (await openStore(options.store, { sync: options.sync }));
  const onFatal =
    deps.onFatal ??
    ((error: Error) => {
      logger.fatal({ err: error }, "invariant violated; stopping");
      process.exit(70);
    });
  const clock = new MonotonicClock(systemClock);
  const publicUrl = () =>
    options.publicUrl ?? `http://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}`;
  let port = options.port;
  const shell = new ServerShell(
    {
      store,
      clock,
      timers: systemTimers,
      logger,
      push: async (url, message) => {
        try {
          const response = await fetch(url, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify(message),
            signal: AbortSignal.timeout(10_000),
          });
          return response.ok;
        } catch (error) {
          logger.debug({ err: error, url }, "push delivery failed; it stays in the outbox");
          return false;
        }
      },
      onFatal,
    },
    {
      debug: options.debug,
      retryTimeoutMs: options.retryTimeoutMs,
      unblockTtlMs: options.unblockTtlMs,
      get serverUrl() {
        return publicUrl();
      },
    },
  );
  const app = createApp(shell, {
    debug: options.debug,
    maxBodyBytes: options.maxBodyBytes,
    logger,
    onFatal,
    ...(options.authToken !== undefined && { authToken: options.authToken }),
  });
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const started = serve({ fetch: app.fetch, port: options.port, hostname: options.host }, () =>
      resolve(started),
    );
    started.once("error", reject);
  });
  port = (server.address() as AddressInfo).port;
  const url = publicUrl();
  (store as { setOwnerUrl?: (url: string) => void }).setOwnerUrl?.(url);
  shell.start();
  logger.info({ url, store: store.description, debug: options.debug }, "pledge server listening");
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    get stats() {
      return { commits: store.stats.commits, requests: shell.processor.stats.items };
    },
    close() {
      closing ??= (async () => {
        await shell.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          (server as { closeAllConnections?: () => void }).closeAllConnections?.();
        });
        if (deps.store === undefined) await store.close();
      })();
      return closing;
    },
  };
}
