/**
 * `pledge serve`: turns flags and `PLEDGE_<FLAG>` variables into `ServeOptions`,
 * refuses an unsafe bind, starts the server and stops it cleanly on a signal.
 *
 * I1. A flag wins over its variable, which wins over `DEFAULT_SERVE_OPTIONS`.
 * I2. A non-loopback host without an auth token is refused (exit 2) unless
 *     `--insecure` (or `PLEDGE_INSECURE`) says so; nothing is started then.
 * I3. Every value is validated before the server starts; garbage is never
 *     silently accepted. `--retain` (a positive duration) turns on background
 *     retention; without it settled records are kept forever.
 */
import { formatDuration } from "../lib/duration.js";
import { DEFAULT_SERVE_OPTIONS, type ServeOptions } from "../node/options.js";
import {
  booleanArgument,
  byteSizeArgument,
  choiceArgument,
  durationArgument,
  type Environment,
  fromEnvironment,
  portArgument,
} from "./args.js";
import { EXIT_OK, OperationError, oneLine, UsageError } from "./errors.js";

export interface ServeFlags {
  port?: string;
  host?: string;
  store?: string;
  authToken?: string;
  debug?: boolean;
  insecure?: boolean;
  sync?: string;
  maxBody?: string;
  retryTimeout?: string;
  unblockTtl?: string;
  retain?: string;
  logLevel?: string;
}

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
const SYNC_MODES = ["full", "normal"] as const;

export interface ResolvedServe {
  options: ServeOptions;
}

/** Flag name (camelCase, as commander gives it) → `--flag` and `PLEDGE_FLAG`. */
function sources(name: keyof ServeFlags): { flag: string; variable: string } {
  const kebab = name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
  return { flag: `--${kebab}`, variable: `PLEDGE_${kebab.replace(/-/g, "_").toUpperCase()}` };
}

export function resolveServeOptions(flags: ServeFlags, env: Environment): ResolvedServe {
  // I1: the text to parse and the name of where it came from, for the error message.
  const text = (name: keyof ServeFlags): { value: string; source: string } | undefined => {
    const { flag, variable } = sources(name);
    const fromFlag = flags[name];
    if (typeof fromFlag === "string") return { value: fromFlag, source: flag };
    const fromVariable = fromEnvironment(env, variable);
    return fromVariable === undefined ? undefined : { value: fromVariable, source: variable };
  };
  const toggle = (name: "debug" | "insecure"): boolean => {
    if (flags[name] === true) return true;
    const { variable } = sources(name);
    const fromVariable = fromEnvironment(env, variable);
    return fromVariable === undefined ? DEFAULT_SERVE_OPTIONS[name] : booleanArgument(variable, fromVariable);
  };
  const parsed = <T>(name: keyof ServeFlags, parse: (source: string, value: string) => T): T | undefined => {
    const given = text(name);
    return given === undefined ? undefined : parse(given.source, given.value);
  };
  const positiveDuration = (source: string, value: string): number => {
    const ms = durationArgument(source, value);
    if (ms < 1) throw new UsageError(`${source}: must be longer than 0, got "${value}"`);
    return ms;
  };
  const nonEmpty = (source: string, value: string): string => {
    if (value.trim() === "") throw new UsageError(`${source}: must not be empty`);
    return value;
  };

  const options: ServeOptions = {
    ...DEFAULT_SERVE_OPTIONS,
    port: parsed("port", portArgument) ?? DEFAULT_SERVE_OPTIONS.port,
    host: parsed("host", nonEmpty) ?? DEFAULT_SERVE_OPTIONS.host,
    store: parsed("store", nonEmpty) ?? DEFAULT_SERVE_OPTIONS.store,
    debug: toggle("debug"),
    insecure: toggle("insecure"),
    sync:
      parsed("sync", (source, value) => choiceArgument(source, value, SYNC_MODES)) ??
      DEFAULT_SERVE_OPTIONS.sync,
    maxBodyBytes: parsed("maxBody", byteSizeArgument) ?? DEFAULT_SERVE_OPTIONS.maxBodyBytes,
    retryTimeoutMs: parsed("retryTimeout", positiveDuration) ?? DEFAULT_SERVE_OPTIONS.retryTimeoutMs,
    unblockTtlMs: parsed("unblockTtl", positiveDuration) ?? DEFAULT_SERVE_OPTIONS.unblockTtlMs,
    logLevel:
      parsed("logLevel", (source, value) => choiceArgument(source, value, LOG_LEVELS)) ??
      DEFAULT_SERVE_OPTIONS.logLevel,
  };
  const authToken = text("authToken")?.value;
  if (authToken !== undefined && authToken !== "") options.authToken = authToken;
  const retainMs = parsed("retain", positiveDuration);
  if (retainMs !== undefined) options.retainMs = retainMs;

  // I2
  if (!isLoopbackHost(options.host) && options.authToken === undefined && !options.insecure) {
    throw new UsageError(
      `refusing to serve on non-loopback host ${options.host} without an auth token: ` +
        "set --auth-token (or PLEDGE_AUTH_TOKEN), or pass --insecure",
    );
  }
  return { options };
}

/** `localhost`, `127.x.x.x`, `::1` (bracketed or not) and the IPv4-mapped loopback. */
export function isLoopbackHost(host: string): boolean {
  const bare = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1");
  if (bare === "localhost" || bare === "::1" || bare === "0:0:0:0:0:0:0:1") return true;
  const v4 = bare.startsWith("::ffff:") ? bare.slice("::ffff:".length) : bare;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

export interface ServeIo {
  stdout(text: string): void;
  /** Resolves when the process is asked to stop (SIGINT / SIGTERM). */
  waitForStop(): Promise<string>;
}

/** Starts the server, prints where it listens, and closes it on the first stop signal. */
export async function runServe(resolved: ResolvedServe, io: ServeIo): Promise<number> {
  const { options } = resolved;
  // Loaded here, not at the top: client commands never pay for the server's modules.
  const { startServer } = await import("../node/serve.js");
  const stop = io.waitForStop();
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(options);
  } catch (error) {
    throw new OperationError(
      oneLine(`cannot start the server: ${error instanceof Error ? error.message : error}`),
    );
  }
  const auth = options.authToken === undefined ? "" : ", auth on";
  const debug = options.debug ? ", debug on" : "";
  const retain = options.retainMs === undefined ? "" : `, retain ${formatDuration(options.retainMs)}`;
  io.stdout(`pledge serving ${server.url} (store ${options.store}${auth}${debug}${retain})\n`);
  await stop;
  try {
    await server.close();
  } catch (error) {
    throw new OperationError(
      oneLine(`closing the server failed: ${error instanceof Error ? error.message : error}`),
    );
  }
  return EXIT_OK;
}
