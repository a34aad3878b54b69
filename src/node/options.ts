/**
 * Options of `pledge serve` and of an embedded server (INTERFACES.md). Every
 * duration here is in milliseconds; the CLI parses `30s`, `5m`, … into these.
 */
export interface ServeOptions {
  /** Store URL: `memory`, `sqlite:<path>` (or a bare path), `postgres://…`. Default `sqlite:./pledge.db`. */
  store: string;
  /** Port to listen on; 0 picks a free one. Default 8001. */
  port: number;
  /** Host to bind. Default 127.0.0.1. */
  host: string;
  /** Bearer token every request must carry; undefined disables auth. */
  authToken?: string;
  /** Enables `debug.*` and `head["resonate:debug_time"]`. */
  debug: boolean;
  /** Allows a non-loopback host without a token. */
  insecure: boolean;
  /** SQLite `PRAGMA synchronous`. Default `full`. */
  sync: "full" | "normal";
  /** Largest accepted request body in bytes. Default 10 MiB. */
  maxBodyBytes: number;
  /** Interval between dispatches of a pending task (R6). Default 5000. */
  retryTimeoutMs: number;
  /** How long an undelivered `unblock` waits in the outbox. Default 1 hour. */
  unblockTtlMs: number;
  /**
   * Settled promises (with their tasks) older than this are deleted in the
   * background (`--retain`); undefined, the default, keeps them forever. An id is
   * idempotent only while its record exists.
   */
  retainMs?: number;
  /** Log level for pino: `fatal`…`trace`, or `silent`. Default `info`. */
  logLevel: string;
  /** Public URL put in `execute` messages' `head.serverUrl`; default derived from host and port. */
  publicUrl?: string;
}

export const DEFAULT_SERVE_OPTIONS: ServeOptions = {
  store: "sqlite:./pledge.db",
  port: 8001,
  host: "127.0.0.1",
  debug: false,
  insecure: false,
  sync: "full",
  maxBodyBytes: 10 * 1024 * 1024,
  retryTimeoutMs: 5000,
  unblockTtlMs: 60 * 60 * 1000,
  logLevel: "info",
};

/** A running server, as returned by `startServer`. */
export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:8001`. */
  readonly url: string;
  readonly port: number;
  /** Transactions committed and requests handled, for tests and benchmarks. */
  readonly stats: { commits: number; requests: number };
  close(): Promise<void>;
}
