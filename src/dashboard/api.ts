/**
 * The dashboard's only ways to the server: protocol requests on `POST /` and the
 * `GET /events` stream, both relative to the page (so it also works behind a
 * proxy that mounts the server under a path). The token, when the server needs
 * one, rides in `Authorization: Bearer` on requests and in `?token=` on the
 * stream (an `EventSource` cannot set headers).
 *
 * I1. A `401` from either surfaces as `Unauthorized`, so the page forgets the
 *     token and asks again; nothing is shown without a token that works.
 * I2. `request` resolves only with `data` of a `200`; every other answer throws
 *     `RequestError` carrying the server's one-line reason.
 */
import type { ServerEvent } from "../protocol/events.js";

/** Equals `PROTOCOL_VERSION` in `protocol/records.ts` (the dashboard imports only types from there). */
const PROTOCOL_VERSION = "2026-04-01";

export class Unauthorized extends Error {
  override name = "Unauthorized";
}

export class RequestError extends Error {
  override name = "RequestError";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let corrIds = 0;
function nextCorrId(): string {
  corrIds += 1;
  return `dashboard-${Date.now().toString(36)}-${corrIds}`;
}

export type Request = (kind: string, data: Record<string, unknown>) => Promise<Record<string, unknown>>;

/** A protocol client for this page's server, with the token `token()` answers. */
export function requester(token: () => string | undefined): Request {
  return async (kind, data) => {
    const secret = token();
    let response: Response;
    try {
      response = await fetch("./", {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          ...(secret !== undefined && { Authorization: `Bearer ${secret}` }),
        },
        body: JSON.stringify({ kind, head: { corrId: nextCorrId(), version: PROTOCOL_VERSION }, data }),
      });
    } catch (error) {
      throw new RequestError(0, `the server did not answer (${String(error)})`);
    }
    let body: { head?: { status?: unknown }; data?: unknown } | undefined;
    try {
      body = (await response.json()) as typeof body;
    } catch {
      body = undefined;
    }
    const status = typeof body?.head?.status === "number" ? body.head.status : response.status;
    if (status === 401) throw new Unauthorized("the server asks for a token"); // I1
    if (status !== 200) {
      const reason = typeof body?.data === "string" ? body.data : `HTTP ${response.status}`;
      throw new RequestError(status, `${kind}: ${status} ${reason}`); // I2
    }
    if (typeof body?.data !== "object" || body.data === null)
      throw new RequestError(status, `${kind}: an answer without data`);
    return body.data as Record<string, unknown>;
  };
}

/** Every record of a search, following cursors up to `max` records. */
export async function searchAll<T>(
  request: Request,
  kind: "promise.search" | "schedule.search",
  field: "promises" | "schedules",
  data: Record<string, unknown>,
  max = 5000,
): Promise<T[]> {
  const records: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await request(kind, { ...data, limit: 1000, ...(cursor !== undefined && { cursor }) });
    const items = page[field];
    if (Array.isArray(items)) records.push(...(items as T[]));
    cursor = typeof page.cursor === "string" && page.cursor !== "" ? page.cursor : undefined;
  } while (cursor !== undefined && records.length < max);
  return records;
}

export type LiveStatus = "connecting" | "live" | "reconnecting";

export interface LiveHandlers {
  onEvent(event: ServerEvent): void;
  /** The stream (re)opened; after a reconnect, events may have been missed: re-read. */
  onOpen(reconnected: boolean): void;
  onStatus(status: LiveStatus): void;
  /** The server refused the stream (a 401 once the token changed, a 503); it is tried again shortly. */
  onRefused(): void;
}

/**
 * Follows `/events`. The browser reconnects by itself after a lost connection;
 * after an HTTP error (a 401 once the token changed, a 503) it gives up, so this
 * opens a new stream a little later. Answers the function that stops it.
 */
export function followEvents(token: string | undefined, handlers: LiveHandlers): () => void {
  const url = token === undefined ? "./events" : `./events?token=${encodeURIComponent(token)}`;
  let source: EventSource | undefined;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let opened = false;
  const open = (): void => {
    const current = new EventSource(url);
    source = current;
    current.onopen = () => {
      handlers.onStatus("live");
      handlers.onOpen(opened);
      opened = true;
    };
    current.onerror = () => {
      handlers.onStatus("reconnecting");
      if (current.readyState !== EventSource.CLOSED || stopped) return;
      handlers.onRefused();
      retry = setTimeout(open, RETRY_AFTER_HTTP_ERROR_MS);
    };
    current.onmessage = (message: MessageEvent<string>) => {
      let frame: unknown;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (typeof frame !== "object" || frame === null) return;
      if ((frame as { kind?: unknown }).kind === "events.hello") return;
      handlers.onEvent(frame as ServerEvent);
    };
  };
  handlers.onStatus("connecting");
  open();
  return () => {
    stopped = true;
    clearTimeout(retry);
    source?.close();
  };
}

const RETRY_AFTER_HTTP_ERROR_MS = 2000;
