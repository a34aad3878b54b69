/**
 * Step 1 of validation at the edge (parse.ts has the whole story): a `POST /`
 * body's bytes → JSON, reading what every answer echoes (`kind`, `head.corrId`)
 * and the token a body may carry (`head.auth`) leniently, before anything is
 * checked. It fails only on bytes that are not UTF-8 or not JSON.
 */
import type { ErrorCode } from "./errors.js";
import type { ParseFailure } from "./parse.js";

/** What a body or one request of a batch says of itself, read before any check (V2). */
export interface Echo {
  kind: string;
  corrId: string;
  auth?: string;
}

export type DecodeResult =
  | ({ ok: true; json: unknown; text: string } & Echo)
  | { ok: false; failure: ParseFailure };

const UNKNOWN_KIND = "unknown";
const UNKNOWN_CORR_ID = "0";

const UTF8 = new TextDecoder("utf-8", { fatal: true });

export function decodeBody(bytes: Uint8Array): DecodeResult {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    return decodeFailure("invalid_encoding", "body: not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return decodeFailure("invalid_json", `body: not valid JSON (${reason})`);
  }
  return { ok: true, json, text, ...echo(json) };
}

/** `kind`, `head.corrId` and `head.auth` when they are strings; else "unknown" and "0" (V2), and no token. */
export function echo(json: unknown): Echo {
  const head = isObject(json) ? json.head : undefined;
  const auth = isObject(head) && typeof head.auth === "string" ? head.auth : undefined;
  const found = { kind: echoKind(json), corrId: echoCorrId(json) };
  return auth === undefined ? found : { ...found, auth };
}

export function echoKind(json: unknown): string {
  return isObject(json) && typeof json.kind === "string" ? json.kind : UNKNOWN_KIND;
}

export function echoCorrId(json: unknown): string {
  const head = isObject(json) ? json.head : undefined;
  return isObject(head) && typeof head.corrId === "string" ? head.corrId : UNKNOWN_CORR_ID;
}

function decodeFailure(code: ErrorCode, message: string): DecodeResult {
  return { ok: false, failure: { status: 400, kind: UNKNOWN_KIND, corrId: UNKNOWN_CORR_ID, code, message } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
