/**
 * Structured logs (pino). The shell takes a `Logger`; tests pass `silentLogger`.
 * Where the output goes decides its form: JSON lines (one object per line, for
 * log collectors) unless the stream is a terminal, where a person reads
 * `12:04:39.123 INFO  message key=value`, coloured by level unless `NO_COLOR`
 * is set. The level comes from `--log-level` (`serve`) or `logLevel` (embedded).
 *
 * Invariants:
 *  L1  Not a terminal: every line written is exactly pino's JSON line.
 *  L2  The readable form drops no field: every key of the JSON object but the
 *      fixed ones (time, level, msg, pid, hostname, service) is shown as key=value.
 */
import { pino } from "pino";

export type Logger = Pick<pino.Logger, "info" | "warn" | "error" | "debug" | "fatal">;

export interface LogOutput {
  write(text: string): void;
}

export interface LoggerOptions {
  /** Where lines go; default stdout. */
  destination?: LogOutput;
  /** Whether a person reads it (readable form); default: the destination is a TTY. */
  tty?: boolean;
  /** Colour the level in the readable form; default: unless `NO_COLOR` is set. */
  color?: boolean;
}

export function createLogger(level: string, options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? process.stdout;
  const tty = options.tty ?? (destination === process.stdout && process.stdout.isTTY === true);
  const base = { service: "pledge" };
  if (!tty) return pino({ level, base }, destination); // L1
  const color = options.color ?? (process.env.NO_COLOR === undefined || process.env.NO_COLOR === "");
  return pino({ level, base }, { write: (line: string) => destination.write(readableLine(line, color)) });
}

export const silentLogger: Logger = pino({ level: "silent" });

const LEVELS: Record<number, { name: string; color: string }> = {
  10: { name: "TRACE", color: "\u001b[90m" },
  20: { name: "DEBUG", color: "\u001b[36m" },
  30: { name: "INFO", color: "\u001b[32m" },
  40: { name: "WARN", color: "\u001b[33m" },
  50: { name: "ERROR", color: "\u001b[31m" },
  60: { name: "FATAL", color: "\u001b[41m\u001b[97m" },
};
const RESET = "\u001b[0m";
const FIXED = new Set(["time", "level", "msg", "pid", "hostname", "service"]);

/** One pino JSON line as `HH:MM:SS.mmm LEVEL message key=value…`, with an error's stack below. */
export function readableLine(line: string, color: boolean): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith("\n") ? line : `${line}\n`;
  }
  const time = typeof record.time === "number" ? new Date(record.time).toISOString().slice(11, 23) : "";
  const level = LEVELS[typeof record.level === "number" ? record.level : 30] ?? { name: "LOG", color: "" };
  const label = level.name.padEnd(5);
  const parts = [time, color ? `${level.color}${label}${RESET}` : label, String(record.msg ?? "")];
  let stack: string | undefined;
  for (const [key, value] of Object.entries(record)) {
    if (FIXED.has(key)) continue; // L2: everything else is shown
    if (key === "err" && typeof value === "object" && value !== null) {
      const error = value as { message?: unknown; stack?: unknown };
      parts.push(`err=${JSON.stringify(String(error.message ?? ""))}`);
      if (typeof error.stack === "string") stack = error.stack;
      continue;
    }
    parts.push(`${key}=${typeof value === "string" ? value : JSON.stringify(value)}`);
  }
  const text = parts.filter((part) => part !== "").join(" ");
  return stack === undefined ? `${text}\n` : `${text}\n${stack.replace(/^/gm, "    ")}\n`;
}
