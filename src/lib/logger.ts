/** Structured JSON logs (pino). The shell takes a `Logger`; tests pass `silentLogger`. */
import { pino } from "pino";

export type Logger = Pick<pino.Logger, "info" | "warn" | "error" | "debug" | "fatal">;

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: "pledge" } });
}

export const silentLogger: Logger = pino({ level: "silent" });
