/** Response builders for the core's handlers, over the one error catalogue. */
import { protocolError } from "../protocol/errors.js";
import type { Response } from "../protocol/requests.js";

export function ok(data: unknown): Response {
  return { status: 200, data };
}

/** A protocol-class failure (§1.3): nothing was written, the message says why. */
export function fail(status: 400 | 404 | 409 | 422, message: string): Response {
  switch (status) {
    case 400:
      return protocolError(400, "invalid_field", message);
    case 404:
      return protocolError(404, "not_found", message);
    case 409:
      return protocolError(409, "conflict", message);
    case 422:
      return protocolError(422, "unprocessable", message);
  }
}
