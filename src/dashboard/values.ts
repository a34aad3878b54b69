/**
 * How the dashboard reads and writes values and times. Values follow the SDKs'
 * convention (PROTOCOL.md, Pledge's decisions): `Value.data` is base64 of UTF-8
 * JSON, an invocation's param is `{ func, args, version }`, a thrown error is
 * `{ __type: "error", name, message, stack }`. Anything else is shown as stored.
 *
 * I1. Decoding never throws: what is not base64 of JSON is reported `raw`.
 * I2. `encodeJson` is the inverse of `decodeValue` for every JSON value.
 */
import type { PromiseRecord, Value } from "../protocol/records.js";

export type DecodedValue =
  | { kind: "empty" }
  | { kind: "json"; value: unknown }
  | { kind: "raw"; data: string };

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function decodeValue(value: Value | undefined): DecodedValue {
  const data = value?.data;
  if (data === undefined || data === "") return { kind: "empty" };
  if (BASE64.test(data)) {
    try {
      const binary = atob(data);
      const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
      const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      return { kind: "json", value: JSON.parse(text) as unknown };
    } catch {
      // I1: not UTF-8 JSON; shown as stored.
    }
  }
  return { kind: "raw", data };
}

/** `{ data: base64(JSON) }`, as the SDKs write values (I2). */
export function encodeJson(value: unknown): Value {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return { data: btoa(binary) };
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** An encoded error (`__type: "error"`), if the value is one. */
export function encodedError(value: unknown): { name: string; message: string; stack?: string } | undefined {
  if (!isRecord(value) || value.__type !== "error") return undefined;
  const name = typeof value.name === "string" ? value.name : "Error";
  const message = typeof value.message === "string" ? value.message : "";
  return typeof value.stack === "string" ? { name, message, stack: value.stack } : { name, message };
}

/** What a promise stands for, from its tags and param. */
export function promiseRole(promise: PromiseRecord): string {
  const tags = promise.tags;
  if (tags["resonate:timer"] === "true") return "sleep";
  if (tags["resonate:target"] !== undefined) {
    const parent = tags["resonate:parent"];
    return parent === undefined || parent === promise.id ? "function" : "remote call";
  }
  if (tags["resonate:external"] === "true") return "external promise";
  if (tags["resonate:scope"] === "local") return "local step";
  return "promise";
}

/** The function an invocation promise runs: `func` of its decoded param. */
export function functionName(promise: PromiseRecord): string | undefined {
  const decoded = decodeValue(promise.param);
  if (decoded.kind === "json" && isRecord(decoded.value) && typeof decoded.value.func === "string")
    return decoded.value.func;
  return undefined;
}

/** Why a promise has no task: what runs it instead. */
export function withoutTask(promise: PromiseRecord): string {
  const role = promiseRole(promise);
  if (role === "sleep") return "none (the server resolves it at its deadline)";
  if (role === "external promise") return "none (settled from outside)";
  return "none (it runs inside its caller's task)";
}

/** The id as a tree row shows it: the part after its parent's id, when it extends it. */
export function shortId(id: string, parentId: string | undefined): string {
  return parentId !== undefined && id.startsWith(`${parentId}.`) ? id.slice(parentId.length) : id;
}

/** External promises may be settled from outside: a person, a webhook (human-in-the-loop). */
export function isExternal(promise: PromiseRecord): boolean {
  const tags = promise.tags;
  return (
    tags["resonate:external"] === "true" ||
    tags["resonate:timer"] === "true" ||
    tags["resonate:target"] !== undefined
  );
}

export interface Folded {
  /** The text to show while folded (all of it when not folded). */
  head: string;
  folded: boolean;
  lines: number;
  bytes: number;
}

/** Cuts long text to its first `maxLines` lines and `maxChars` characters. */
export function fold(text: string, maxLines = 24, maxChars = 3000): Folded {
  const lines = text.split("\n");
  const bytes = new TextEncoder().encode(text).byteLength;
  if (lines.length <= maxLines && text.length <= maxChars)
    return { head: text, folded: false, lines: lines.length, bytes };
  const head = lines.slice(0, maxLines).join("\n").slice(0, maxChars);
  return { head, folded: true, lines: lines.length, bytes };
}

/** `850ms`, `12.5s`, `5m 3s`, `2h 5m`, `3d 4h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "-";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const seconds = Math.floor(ms / 1000);
  const [minutes, hours, days] = [
    Math.floor(seconds / 60),
    Math.floor(seconds / 3600),
    Math.floor(seconds / 86400),
  ];
  if (ms < 3_600_000) return `${minutes}m ${seconds % 60}s`;
  if (ms < 86_400_000) return `${hours}h ${minutes % 60}m`;
  return `${days}d ${hours % 24}h`;
}

/** How long a promise took, or has been pending so far. */
export function promiseDuration(promise: PromiseRecord, nowMs: number): string {
  if (promise.settledAt !== undefined) return formatDuration(promise.settledAt - promise.createdAt);
  return `${formatDuration(Math.max(0, nowMs - promise.createdAt))} so far`;
}

/** ISO 8601 with a relative hint: `2026-04-01T10:00:00.000Z (5m ago)`. */
export function formatInstant(ms: number, nowMs: number): string {
  const date = new Date(ms);
  if (Number.isNaN(date.getTime()) || ms >= 8.64e15) return "never";
  const delta = ms - nowMs;
  const relative = delta >= 0 ? `in ${formatDuration(delta)}` : `${formatDuration(-delta)} ago`;
  return `${date.toISOString()} (${relative})`;
}
