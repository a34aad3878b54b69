/**
 * Parsing of `pledge` arguments that commander leaves as strings: durations, JSON
 * values, `k=v` tags, limits, states, byte sizes, ports, booleans from the
 * environment, and the client connection (`--url`, `--token`). Every failure is a
 * `UsageError` whose message names the flag (or variable) and the text at fault.
 *
 * Values follow the SDKs' convention (PROTOCOL.md, Pledge's decisions): a
 * `Value.data` is base64 of JSON text, so a promise made here reads the same in
 * every SDK.
 */
import { DurationError, parseDuration } from "../lib/duration.js";
import type { Tags, Value } from "../protocol/records.js";
import { UsageError } from "./errors.js";

export const DEFAULT_URL = "http://127.0.0.1:8001";
export const DEFAULT_GROUP = "default";

/** Parses a duration flag (`30s`, `5m`, …) into ms, naming the flag on failure. */
export function durationArgument(flag: string, text: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    if (error instanceof DurationError) throw new UsageError(`${flag}: ${error.message}`);
    throw error;
  }
}

/** Parses a JSON flag (`--param`, `--value`, `--arg`), naming the flag on failure. */
export function jsonArgument(flag: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new UsageError(`${flag}: not valid JSON (${reason}): ${text}`);
  }
}

/** Encodes a JSON value as the SDKs do: `data` = base64 of its JSON text. */
export function encodeJson(value: unknown): Value {
  const text = JSON.stringify(value);
  return { data: Buffer.from(text, "utf8").toString("base64") };
}

/** `--param '<json>'` → a Value, or `{}` when the flag is absent. */
export function valueArgument(flag: string, text: string | undefined): Value {
  if (text === undefined) return {};
  return encodeJson(jsonArgument(flag, text));
}

/** Commander collector for a repeatable `--tag k=v`. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Turns repeated `--tag k=v` into tags; the value may contain `=`, the key may not be empty. */
export function tagsArgument(flag: string, pairs: readonly string[] | undefined): Tags {
  const tags: Tags = {};
  for (const pair of pairs ?? []) {
    const separator = pair.indexOf("=");
    if (separator <= 0) throw new UsageError(`${flag}: expected key=value, got "${pair}"`);
    tags[pair.slice(0, separator)] = pair.slice(separator + 1);
  }
  return tags;
}

/** `--limit n`: an integer 1–1000, as every search accepts (PROTOCOL.md, Pledge's decisions). */
export function limitArgument(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const limit = integerArgument("--limit", text);
  if (limit < 1 || limit > 1000) throw new UsageError(`--limit: must be between 1 and 1000, got ${text}`);
  return limit;
}

export function integerArgument(flag: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`${flag}: expected a whole number, got "${text}"`);
  const value = Number(text.trim());
  if (!Number.isSafeInteger(value)) throw new UsageError(`${flag}: too large: ${text}`);
  return value;
}

/** One of `allowed`, or a `UsageError` listing them. */
export function choiceArgument<T extends string>(flag: string, text: string, allowed: readonly T[]): T {
  const found = allowed.find((choice) => choice === text);
  if (found === undefined)
    throw new UsageError(`${flag}: expected one of ${allowed.join(", ")}, got "${text}"`);
  return found;
}

export function optionalChoice<T extends string>(
  flag: string,
  text: string | undefined,
  allowed: readonly T[],
): T | undefined {
  return text === undefined ? undefined : choiceArgument(flag, text, allowed);
}

const BYTE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** `10MiB`, `512KiB`, `1MB`, `1048576` → bytes (a positive integer). */
export function byteSizeArgument(flag: string, text: string): number {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match?.[2]?.toLowerCase();
  const multiplier = unit === undefined ? undefined : BYTE_UNITS[unit];
  if (match === null || multiplier === undefined) {
    throw new UsageError(
      `${flag}: expected a size such as 10MiB, 512KiB or a number of bytes, got "${text}"`,
    );
  }
  const bytes = Number(match[1]) * multiplier;
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new UsageError(`${flag}: out of range: "${text}"`);
  return bytes;
}

/** A TCP port, 0 (any free port) to 65535. */
export function portArgument(flag: string, text: string): number {
  const port = integerArgument(flag, text);
  if (port > 65535) throw new UsageError(`${flag}: a port is at most 65535, got ${text}`);
  return port;
}

/** A boolean from the environment: 1/true/yes/on or 0/false/no/off. */
export function booleanArgument(source: string, text: string): boolean {
  const normal = text.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(normal)) return true;
  if (["0", "false", "no", "off"].includes(normal)) return false;
  throw new UsageError(`${source}: expected true or false, got "${text}"`);
}

/**
 * The address `--target <group>` names: `poll://any@<group>` (anycast to the
 * group's workers, as the SDKs address a user-named target). A full address
 * (`poll://…`, `http://…`) is used as given.
 */
export function targetAddress(group: string): string {
  if (group === "") throw new UsageError("--target: the group must not be empty");
  return group.includes("://") ? group : `poll://any@${group}`;
}

export type Environment = Readonly<Record<string, string | undefined>>;

/** An environment variable, treating an empty value as unset. */
export function fromEnvironment(env: Environment, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === "" ? undefined : value;
}

export interface ConnectionFlags {
  url?: string;
  token?: string;
}

export interface Connection {
  url: string;
  token: string | undefined;
}

/** `--url` over `PLEDGE_URL` over the default; `--token` over `PLEDGE_TOKEN`. */
export function resolveConnection(flags: ConnectionFlags, env: Environment): Connection {
  const url = flags.url ?? fromEnvironment(env, "PLEDGE_URL") ?? DEFAULT_URL;
  const source = flags.url !== undefined ? "--url" : "PLEDGE_URL";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${source}: not a URL: "${url}"`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UsageError(`${source}: expected an http:// or https:// URL, got "${url}"`);
  }
  const token = flags.token ?? fromEnvironment(env, "PLEDGE_TOKEN");
  return { url, token };
}
