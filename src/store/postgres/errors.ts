/**
 * How the PostgreSQL store sorts what the driver throws: a serialization
 * conflict or deadlock (run the transaction again), a connection-kind failure
 * (`StoreUnavailableError`, answered 503), or anything else (passed through).
 */
import { AssertionError } from "../../lib/assert.js";
import { StoreSchemaError, StoreUnavailableError } from "../store.js";

/** SQLSTATEs that mean "run the whole transaction again". */
const RETRYABLE_CONFLICTS = new Set(["40001", "40P01"]);

function sqlState(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export function isConflict(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined && RETRYABLE_CONFLICTS.has(code);
}

/**
 * Errors that mean the database cannot be reached right now: connection classes
 * (08), resources (53), operator intervention (57), system (58), and errors of the
 * driver or the socket (no SQLSTATE): refused, reset, terminated, timed out.
 */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error instanceof AssertionError || error instanceof StoreUnavailableError) return false;
  const code = sqlState(error);
  if (code !== undefined) return ["08", "53", "57", "58"].includes(code.slice(0, 2));
  const errno = (error as NodeJS.ErrnoException).code;
  if (typeof errno === "string" && /^E[A-Z]+$/.test(errno)) return true;
  return /connect|connection|terminated|timeout|Client was closed|pool/i.test(error.message);
}

/** P2: connection-kind errors become `StoreUnavailableError`; anything else passes through. */
export function translateError(error: unknown, description: string, always = false): unknown {
  if (error instanceof StoreUnavailableError || error instanceof StoreSchemaError) return error;
  if (!isConnectionError(error) && !(always && error instanceof Error && !(error instanceof AssertionError)))
    return error;
  const message = error instanceof Error ? error.message : String(error);
  return new StoreUnavailableError(`${description} cannot be reached: ${message}`, { cause: error });
}
