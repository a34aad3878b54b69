/**
 * A tiny client for the protocol's single endpoint (PROTOCOL.md §1.2–§1.3): it
 * posts one request envelope and hands back the response's status, data and
 * `head.error`. It owns the envelope, the bearer header and turning transport
 * failures into typed errors; what a status means is the caller's business.
 *
 * I1. Every request carries a fresh `head.corrId` and `head.version` 2026-04-01.
 * I2. A response is accepted only when its `kind` and `head.corrId` echo the
 *     request's (when present); anything else is a `ProtocolResponseError`.
 * I3. `call` never throws for a protocol answer (any `head.status`); it throws
 *     `ProtocolNetworkError` when no answer arrived and `ProtocolResponseError`
 *     when the answer is not a protocol envelope.
 *
 * `lib/` imports nothing, so the version string is repeated here; it must equal
 * `PROTOCOL_VERSION` in `protocol/records.ts`.
 */

export const CLIENT_PROTOCOL_VERSION = "2026-04-01";

export interface ProtocolClientOptions {
  /** Base URL of the server; the envelope is posted to it exactly (usually path `/`). */
  url: string;
  /** Bearer token, sent as `Authorization: Bearer <token>` and `head.auth`. */
  token?: string | undefined;
  /** Gives up on a request after this long. Default 30 s. */
  timeoutMs?: number;
  /** Correlation ids; injected for tests. Default `crypto.randomUUID`. */
  newCorrId?: () => string;
  /** Transport; injected for tests. Default the global `fetch`. */
  fetch?: typeof fetch;
}

export interface ProtocolErrorDetail {
  code: string;
  retryable: boolean;
}

export interface ProtocolResult {
  /** `head.status` (the HTTP status when the body carries none). */
  status: number;
  /** Success data, or the error message string on an error status. */
  data: unknown;
  /** `head.error` when the server sent one. */
  error?: ProtocolErrorDetail;
}

/** No answer arrived: connection refused, DNS failure, reset, timeout. */
export class ProtocolNetworkError extends Error {
  override name = "ProtocolNetworkError";
  readonly url: string;
  constructor(url: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.url = url;
  }
}

/** An answer arrived but it is not a protocol envelope for this request. */
export class ProtocolResponseError extends Error {
  override name = "ProtocolResponseError";
  readonly httpStatus: number;
  constructor(httpStatus: number, message: string) {
    super(message);
    this.httpStatus = httpStatus;
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;

export class ProtocolClient {
  readonly url: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly newCorrId: () => string;
  private readonly fetchFunction: typeof fetch;

  constructor(options: ProtocolClientOptions) {
    this.url = options.url;
    this.token = options.token === "" ? undefined : options.token;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.newCorrId = options.newCorrId ?? (() => globalThis.crypto.randomUUID());
    this.fetchFunction = options.fetch ?? globalThis.fetch;
  }

  async call(kind: string, data: Record<string, unknown>): Promise<ProtocolResult> {
    const corrId = this.newCorrId();
    const head: Record<string, unknown> = { corrId, version: CLIENT_PROTOCOL_VERSION };
    if (this.token !== undefined) head.auth = this.token;
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: "application/json",
    };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;

    let response: Response;
    let text: string;
    try {
      response = await this.fetchFunction(this.url, {
        method: "POST",
        headers,
        body: JSON.stringify({ kind, head, data }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      throw new ProtocolNetworkError(this.url, `cannot reach ${this.url}: ${describeFetchFailure(error)}`, {
        cause: error,
      });
    }
    return parseEnvelope({ kind, corrId, httpStatus: response.status, text });
  }
}

function parseEnvelope(input: {
  kind: string;
  corrId: string;
  httpStatus: number;
  text: string;
}): ProtocolResult {
  const { kind, corrId, httpStatus, text } = input;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ProtocolResponseError(
      httpStatus,
      `HTTP ${httpStatus} without a protocol envelope: ${oneLine(text) || "(empty body)"}`,
    );
  }
  if (!isObject(body) || !isObject(body.head)) {
    throw new ProtocolResponseError(
      httpStatus,
      `HTTP ${httpStatus}: the response is not a protocol envelope`,
    );
  }
  const head = body.head;
  // I2: an echo that is present must match; a 400 for an unreadable body may carry "unknown"/"0".
  const echoesKind = body.kind === kind || body.kind === "unknown";
  const echoesCorrId = head.corrId === corrId || head.corrId === "0";
  if (!echoesKind || !echoesCorrId) {
    throw new ProtocolResponseError(
      httpStatus,
      "the response does not answer this request (kind or corrId differ)",
    );
  }
  const status = typeof head.status === "number" ? head.status : httpStatus;
  const result: ProtocolResult = { status, data: body.data };
  if (
    isObject(head.error) &&
    typeof head.error.code === "string" &&
    typeof head.error.retryable === "boolean"
  ) {
    result.error = { code: head.error.code, retryable: head.error.retryable };
  }
  return result;
}

function describeFetchFailure(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === "TimeoutError") return "timed out";
    // undici wraps the socket error: `TypeError: fetch failed` with `cause.code` ECONNREFUSED etc.
    const cause = (error as { cause?: unknown }).cause;
    if (isObject(cause)) {
      const code = typeof cause.code === "string" ? cause.code : undefined;
      const message = typeof cause.message === "string" ? cause.message : undefined;
      if (code !== undefined) return code === "ECONNREFUSED" ? "connection refused" : code;
      if (message !== undefined && message !== "") return oneLine(message);
    }
    return oneLine(error.message);
  }
  return oneLine(String(error));
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
