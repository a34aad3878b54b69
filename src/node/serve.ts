/**
 * Composition roots of the server: `createShell` (the real clock and timers, HTTP
 * push, a fatal handler) over an opened store, `listen` (the Hono app on Node's
 * HTTP server, with `POST /` answered by `protocol-listener.ts` directly, for any
 * shell), and `startServer` (`pledge serve`: open the store from its URL, migrated
 * at open, then both).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { MonotonicClock, systemClock, systemTimers, type Timers } from "../lib/clock.js";
import { createLogger, type Logger } from "../lib/logger.js";
import { createApp, type HttpOptions } from "../server/http/app.js";
import { protocolEndpoint, unhandledAnswer } from "../server/http/protocol-endpoint.js";
import { ServerShell } from "../server/shell.js";
import type { Store } from "../store/store.js";
import { loadDashboardFiles } from "./dashboard-files.js";
import { openStore } from "./open-store.js";
import type { RunningServer, ServeOptions } from "./options.js";
import { protocolListener } from "./protocol-listener.js";

export interface StartServerDependencies {
  logger?: Logger;
  /** A store already opened; otherwise `options.store` is opened (and closed with the server). */
  store?: Store;
  /** Called on a violated invariant; default: log and exit the process. */
  onFatal?: (error: Error) => void;
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

export function exitOnFatal(logger: Logger): (error: Error) => void {
  return (error) => {
    logger.fatal({ err: error }, "invariant violated; stopping");
    process.exit(70);
  };
}

/** Pushes a message to an `http(s)://` address; true once the receiver accepted it. */
function pushWith(logger: Logger) {
  return async (url: string, message: unknown): Promise<boolean> => {
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
  };
}

export interface ShellSettings {
  debug: boolean;
  retryTimeoutMs: number;
  unblockTtlMs: number;
  /** Background retention of settled records (`--retain`); undefined keeps them forever. */
  retainMs?: number;
  /** Put in `execute` messages; read when each is built, so it may be set after listening. */
  serverUrl: () => string | undefined;
}

export function createShell(
  store: Store,
  settings: ShellSettings,
  logger: Logger,
  onFatal: (error: Error) => void,
  timers: Timers = systemTimers,
) {
  return new ServerShell(
    {
      store,
      clock: new MonotonicClock(systemClock),
      timers,
      logger,
      push: pushWith(logger),
      onFatal,
    },
    {
      debug: settings.debug,
      retryTimeoutMs: settings.retryTimeoutMs,
      unblockTtlMs: settings.unblockTtlMs,
      ...(settings.retainMs !== undefined && { retainMs: settings.retainMs }),
      get serverUrl() {
        return settings.serverUrl();
      },
    },
  );
}

export interface Listening {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Serves `shell` over HTTP (POST /, SSE, /events, health, the dashboard) on `host:port`. */
export async function listen(
  shell: ServerShell,
  options: Pick<
    ServeOptions,
    "host" | "port" | "debug" | "maxBodyBytes" | "authToken" | "insecure" | "publicUrl"
  >,
  logger: Logger,
  onFatal: (error: Error) => void,
): Promise<Listening> {
  if (!isLoopback(options.host) && options.authToken === undefined && !options.insecure)
    throw new Error(
      `refusing to listen on ${options.host} without an auth token; set --auth-token (or PLEDGE_AUTH_TOKEN), or pass --insecure`,
    );
  const dashboard = loadDashboardFiles();
  if (dashboard === undefined) logger.warn("the dashboard is not built (npm run build); GET / says so");
  const httpOptions: HttpOptions = {
    debug: options.debug,
    maxBodyBytes: options.maxBodyBytes,
    logger,
    onFatal,
    ...(options.authToken !== undefined && { authToken: options.authToken }),
    ...(dashboard !== undefined && { dashboard }),
  };
  const app = createApp(shell, httpOptions);
  // `POST /` on node:http itself, the rest through Hono's adapter, which is built as
  // its `serve()` builds it (protocol-listener.ts says why and what stays the same).
  const listener = protocolListener({
    endpoint: protocolEndpoint(shell, httpOptions),
    fallback: getRequestListener(app.fetch, { hostname: options.host }),
    unhandled: (error) => unhandledAnswer(error, httpOptions),
  });
  const server = await new Promise<Server>((resolve, reject) => {
    const started = createServer({}, listener);
    started.once("error", reject);
    started.listen(options.port, options.host, () => resolve(started));
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: options.publicUrl ?? `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
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
  const onFatal = deps.onFatal ?? exitOnFatal(logger);
  let url: string | undefined;
  const shell = createShell(
    store,
    {
      debug: options.debug,
      retryTimeoutMs: options.retryTimeoutMs,
      unblockTtlMs: options.unblockTtlMs,
      ...(options.retainMs !== undefined && { retainMs: options.retainMs }),
      serverUrl: () => url,
    },
    logger,
    onFatal,
  );
  let http: Listening;
  try {
    http = await listen(shell, options, logger, onFatal);
  } catch (error) {
    if (deps.store === undefined) await store.close();
    throw error;
  }
  url = http.url;
  (store as { setOwnerUrl?: (url: string) => void }).setOwnerUrl?.(url);
  shell.start();
  logger.info(
    {
      url,
      store: store.description,
      debug: options.debug,
      ...(options.retainMs !== undefined && { retainMs: options.retainMs }),
    },
    "pledge server listening",
  );
  let closing: Promise<void> | undefined;
  return {
    url: http.url,
    port: http.port,
    get stats() {
      return { commits: store.stats.commits, requests: shell.processor.stats.items };
    },
    close() {
      closing ??= (async () => {
        await shell.close();
        await http.close();
        if (deps.store === undefined) await store.close();
      })();
      return closing;
    },
  };
}
