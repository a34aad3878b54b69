/**
 * Values on the wire (PROTOCOL.md, Pledge's decisions): `param.data` and
 * `value.data` are base64 of JSON, as the protocol's other SDKs write them, so
 * calls cross SDKs. A thrown error travels as `{ "__type": "error", name,
 * message, stack }` and comes back as an `Error`. `undefined` travels as an
 * absent or empty `data`.
 *
 * A value that JSON cannot carry faithfully (a function, a symbol, a bigint, a
 * cycle, a class instance other than Error/Date) fails at the call site with
 * `SerializationError` naming where it is, never silently.
 */
import type { Value } from "../protocol/records.js";

export class SerializationError extends TypeError {
  override name = "SerializationError";
}

interface EncodedError {
  __type: "error";
  name: string;
  message: string;
  stack?: string;
}

/** The official TypeScript SDK's encoding of an `AggregateError`. */
interface EncodedAggregateError {
  __type: "aggregate_error";
  name: string;
  message: string;
  stack?: string;
  errors: unknown[];
}

function isEncodedAggregateError(value: unknown): value is EncodedAggregateError {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { __type?: unknown }).__type === "aggregate_error" &&
    Array.isArray((value as { errors?: unknown }).errors)
  );
}

function isEncodedError(value: unknown): value is EncodedError {
  return typeof value === "object" && value !== null && (value as { __type?: unknown }).__type === "error";
}

/** Throws `SerializationError` naming `path` when `value` would not survive JSON. */
function check(value: unknown, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case "string":
    case "boolean":
    case "undefined":
      return;
    case "number":
      if (!Number.isFinite(value))
        throw new SerializationError(`${path}: ${value} is not representable in JSON`);
      return;
    case "bigint":
    case "function":
    case "symbol":
      throw new SerializationError(`${path}: a ${typeof value} is not JSON-serializable`);
  }
  if (value === null || value instanceof Date || value instanceof Error) return;
  const object = value as object;
  if (seen.has(object))
    throw new SerializationError(`${path}: a circular reference is not JSON-serializable`);
  seen.add(object);
  if (Array.isArray(object)) {
    for (const [index, item] of object.entries()) check(item, `${path}[${index}]`, seen);
  } else {
    const prototype = Object.getPrototypeOf(object);
    if (prototype !== Object.prototype && prototype !== null)
      throw new SerializationError(
        `${path}: an instance of ${object.constructor?.name ?? "a class"} is not JSON-serializable; pass plain data`,
      );
    for (const [key, item] of Object.entries(object)) check(item, `${path}.${key}`, seen);
  }
  seen.delete(object);
}

/** Checks that `value` survives JSON; `path` names it in the error (`argument 2`, `result of step x.1`). */
export function assertSerializable(value: unknown, path: string): void {
  check(value, path, new Set());
}

function toJson(value: unknown): unknown {
  if (value instanceof Error) {
    const encoded: EncodedError = { __type: "error", name: value.name, message: value.message };
    if (value.stack !== undefined) encoded.stack = value.stack;
    return encoded;
  }
  return value;
}

export function encode(value: unknown, path: string): Value {
  assertSerializable(value, path);
  if (value === undefined) return { headers: {}, data: "" };
  return { headers: {}, data: Buffer.from(JSON.stringify(toJson(value)), "utf8").toString("base64") };
}

/** A decoded error value, rebuilt as an `Error` with the sender's name, message and stack. */
export function toError(value: unknown): Error {
  if (isEncodedAggregateError(value)) {
    const error = new AggregateError(value.errors.map(toError), value.message);
    error.name = value.name;
    if (value.stack !== undefined) error.stack = value.stack;
    return error;
  }
  if (isEncodedError(value)) {
    const error = new Error(value.message);
    error.name = value.name;
    if (value.stack !== undefined) error.stack = value.stack;
    return error;
  }
  if (value instanceof Error) return value;
  return new Error(typeof value === "string" ? value : JSON.stringify(value));
}

export function decode(value: Value | undefined): unknown {
  const data = value?.data;
  if (data === undefined || data === "") return undefined;
  const text = Buffer.from(data, "base64").toString("utf8");
  try {
    return JSON.parse(text);
  } catch {
    // Not base64 of JSON: another SDK's convention or raw text; hand it over as it is.
    return data;
  }
}
