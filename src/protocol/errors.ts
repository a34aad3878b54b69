/**
 * The error catalogue (STYLE practice 6, PROTOCOL.md "Pledge's decisions"). Every
 * error Pledge answers has a stable `code` from this table, the one HTTP status
 * that code travels with, a `retryable` flag and a next step for humans. The wire
 * body keeps `data` a message string naming the field at fault (§1.3); the code
 * and the flag travel in `head.error`, which the HTTP layer fills from
 * `Response.error`.
 *
 * This file owns the table and the one constructor of error responses; the edge
 * (`parse.ts`) and the core use it alike, so a code means the same everywhere.
 *
 * Invariants:
 *  E1  A code always travels with its catalogue status (checked by the type of
 *      `protocolError`, asserted at run time for callers holding a plain string).
 *  E2  `retryable` is true only where the same request may succeed unchanged
 *      later and nothing was applied (503, 429).
 */
import { assert } from "../lib/assert.js";
import type { ErrorDetail, Response, Status } from "./requests.js";

export type ErrorStatus = Exclude<Status, 200 | 300>;

export interface ErrorEntry {
  status: ErrorStatus;
  retryable: boolean;
  /** What the caller should do next. */
  next: string;
}

export const ERROR_CATALOGUE = {
  invalid_encoding: { status: 400, retryable: false, next: "Send the request body as UTF-8." },
  invalid_json: { status: 400, retryable: false, next: "Send the request body as one JSON object." },
  invalid_envelope: {
    status: 400,
    retryable: false,
    next: 'Send {"kind", "head": {"corrId", "version"}, "data": {…}} (PROTOCOL.md §1.2).',
  },
  unsupported_version: { status: 400, retryable: false, next: 'Set head.version to "2026-04-01".' },
  unknown_kind: { status: 400, retryable: false, next: "Use one of the operations of PROTOCOL.md §4–§6." },
  invalid_field: { status: 400, retryable: false, next: "Fix the named field and send the request again." },
  unknown_field: {
    status: 400,
    retryable: false,
    next: "Remove the named field; it is not part of this operation.",
  },
  unauthorized: {
    status: 401,
    retryable: false,
    next: "Send a valid token in the Authorization: Bearer header or in head.auth.",
  },
  forbidden: { status: 403, retryable: false, next: "Use a token whose grants cover this resource." },
  debug_disabled: {
    status: 403,
    retryable: false,
    next: "Start the server in debug mode to use the debug.* operations.",
  },
  not_found: { status: 404, retryable: false, next: "Create the object first, or check its id." },
  conflict: {
    status: 409,
    retryable: false,
    next: "Read the object's current state and version, then decide.",
  },
  body_too_large: { status: 413, retryable: false, next: "Send a smaller request body." },
  unsupported_media_type: { status: 415, retryable: false, next: "Send Content-Type: application/json." },
  unprocessable: { status: 422, retryable: false, next: "The request is well formed but not allowed here." },
  rate_limited: { status: 429, retryable: true, next: "Wait, then send the request again." },
  internal: { status: 500, retryable: false, next: "Report it; the server log has the details." },
  store_unavailable: {
    status: 503,
    retryable: true,
    next: "Nothing was applied; send the request again later.",
  },
  capacity_exhausted: { status: 503, retryable: true, next: "Connect again later." },
} as const satisfies Record<string, ErrorEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** The status a code travels with (E1). */
export type StatusOf<C extends ErrorCode> = (typeof ERROR_CATALOGUE)[C]["status"];

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CATALOGUE, code);
}

export function errorDetail(code: ErrorCode): ErrorDetail {
  return { code, retryable: ERROR_CATALOGUE[code].retryable };
}

/**
 * The protocol error response: `data` is the message (naming the field at fault),
 * `error` the machine-readable detail for `head.error`.
 * `protocolError(404, "not_found", "data.id: no promise \"p1\"")`.
 */
export function protocolError<C extends ErrorCode>(status: StatusOf<C>, code: C, message: string): Response {
  const entry: ErrorEntry = ERROR_CATALOGUE[code];
  assert(entry !== undefined, `error code ${code} is in the catalogue`);
  assert(entry.status === status, `error code ${code} travels with status ${entry.status}, not ${status}`);
  return { status, data: message, error: { code, retryable: entry.retryable } };
}
