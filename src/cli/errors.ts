/**
 * The two ways a `pledge` command fails (INTERFACES.md): bad usage (exit 2), found
 * before anything is sent, and a refused or failed operation (exit 1), found by
 * talking to a server or starting one. Both carry a one-line reason for stderr.
 */

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** The command line is wrong: a bad flag value, duration, JSON or combination. Exit 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The operation was refused or failed: a 404, a 409, an unreachable server. Exit 1. */
export class OperationError extends Error {
  override name = "OperationError";
}

/** Collapses a message to one line, so stderr always carries exactly one reason. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}
