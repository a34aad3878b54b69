/**
 * Embedded mode: the server core in this process, on a store opened from its URL
 * (default `sqlite:./pledge.db`), reached through an in-process network; with
 * `listen`, also served over HTTP so the CLI and remote workers reach it.
 *
 * Opening a SQLite file makes this process its one owner (INTERFACES.md), so every
 * lease recorded in it belonged to a process that is gone: they end at once and
 * the unfinished work is dispatched again, here. (On PostgreSQL, other processes
 * may hold leases; they expire on their own deadlines.)
 */
import { keepAliveTimers } from "../lib/clock.js";
import { createLogger, type Logger } from "../lib/logger.js";
import type { Network } from "../sdk/network/network.js";
import type { ServerShell } from "../server/shell.js";
import type { Store } from "../store/store.js";
import { EmbeddedNetwork } from "./embedded-network.js";
import { openStore, parseStoreUrl } from "./open-store.js";
import { DEFAULT_SERVE_OPTIONS } from "./options.js";
import { createShell, exitOnFatal, type Listening, listen } from "./serve.js";

export interface EmbeddedOptions {
  store: string;
  group: string;
  pid: string;
  listen?: { port?: number; host?: string };
  token?: string;
  logLevel?: string;
  sync?: "full" | "normal";
}

export interface Embedded {
  network: Network;
  shell: ServerShell;
  store: Store;
  /** The HTTP URL when `listen` was given. */
  url?: string;
  close(): Promise<void>;
}

export async function openEmbedded(options: EmbeddedOptions, logger?: Logger): Promise<Embedded> {
  const log = logger ?? createLogger(options.logLevel ?? "warn");
  const store = await openStore(options.store, options.sync === undefined ? {} : { sync: options.sync });
  const onFatal = exitOnFatal(log);
  let url: string | undefined;
  const shell = createShell(
    store,
    {
      debug: false,
      retryTimeoutMs: DEFAULT_SERVE_OPTIONS.retryTimeoutMs,
      unblockTtlMs: DEFAULT_SERVE_OPTIONS.unblockTtlMs,
      serverUrl: () => url,
    },
    log,
    onFatal,
    // An embedded instance keeps its process alive, like a server, until `stop()`.
    keepAliveTimers,
  );
  let http: Listening | undefined;
  try {
    if (options.listen !== undefined) {
      http = await listen(
        shell,
        {
          host: options.listen.host ?? DEFAULT_SERVE_OPTIONS.host,
          port: options.listen.port ?? DEFAULT_SERVE_OPTIONS.port,
          debug: false,
          maxBodyBytes: DEFAULT_SERVE_OPTIONS.maxBodyBytes,
          insecure: false,
          ...(options.token !== undefined && { authToken: options.token }),
        },
        log,
        onFatal,
      );
      url = http.url;
      (store as { setOwnerUrl?: (url: string) => void }).setOwnerUrl?.(url);
    }
    // Only a SQLite file has one owner; on PostgreSQL other processes may hold leases.
    if (parseStoreUrl(options.store).kind === "sqlite") await shell.expireAllLeases();
  } catch (error) {
    await http?.close();
    await store.close();
    throw error;
  }
  shell.start();
  const network = new EmbeddedNetwork(shell, { group: options.group, pid: options.pid });
  return {
    network,
    shell,
    store,
    ...(url !== undefined && { url }),
    async close() {
      await network.close();
      await shell.close();
      await http?.close();
      await store.close();
    },
  };
}
