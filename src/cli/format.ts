/**
 * Human output of `pledge`: records as aligned label/value blocks, search results
 * as aligned tables, values decoded when they are base64 JSON (the SDKs'
 * convention) and shown raw otherwise. `--json` output does not come through here.
 * Times are ISO 8601 (INTERFACES.md); durations use `formatDuration`.
 * Colour (by state) only when `useColor` says so: stdout is a terminal and
 * `NO_COLOR` is unset (https://no-color.org); otherwise output is plain text.
 */
import { formatDuration } from "../lib/duration.js";
import type { PromiseRecord, ScheduleRecord, TaskRecord, Value } from "../protocol/records.js";
import type { Environment } from "./args.js";

/** Whether to colour: a terminal, and `NO_COLOR` unset or empty. */
export function useColor(io: { stdoutIsTty?: boolean; env: Environment }): boolean {
  const noColor = io.env.NO_COLOR;
  return io.stdoutIsTty === true && (noColor === undefined || noColor === "");
}

const STATE_COLORS: Record<string, string> = {
  pending: "33", // yellow: still running or waiting
  resolved: "32", // green
  rejected: "31", // red
  rejected_canceled: "35", // magenta: stopped by someone
  rejected_timedout: "91", // bright red: ran out of time
  acquired: "36", // cyan (tasks)
  suspended: "34", // blue (tasks)
  halted: "90", // grey (tasks)
  fulfilled: "32", // green (tasks)
};

/** `text` in the colour of `state` (unknown states stay plain). */
export function paintState(state: string, text: string): string {
  const code = STATE_COLORS[state];
  return code === undefined ? text : `\u001b[${code}m${text}\u001b[0m`;
}

/** `text` dimmed (secondary columns). */
export function dim(text: string): string {
  return text === "" ? "" : `\u001b[2m${text}\u001b[0m`;
}

export type DecodedValue =
  | { kind: "empty" }
  | { kind: "json"; value: unknown }
  | { kind: "raw"; data: string; headers?: Record<string, string> };

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes `data` as base64 of UTF-8 JSON when it is exactly that; else reports it raw. */
export function decodeValue(value: Value | undefined): DecodedValue {
  const data = value?.data;
  if (data === undefined || data === "") return { kind: "empty" };
  if (BASE64.test(data)) {
    try {
      const text = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(data, "base64"));
      return { kind: "json", value: JSON.parse(text) as unknown };
    } catch {
      // Not UTF-8 JSON: fall through and show it as stored.
    }
  }
  return { kind: "raw", data };
}

/** A one-line rendering of a value: decoded JSON, an encoded error as `Name: message`, or the raw data. */
export function valueText(value: Value | undefined): string {
  const decoded = decodeValue(value);
  switch (decoded.kind) {
    case "empty":
      return "-";
    case "raw":
      return `${decoded.data} (raw)`;
    case "json": {
      const inner = decoded.value;
      if (isRecord(inner) && inner.__type === "error") {
        const name = typeof inner.name === "string" ? inner.name : "Error";
        const message = typeof inner.message === "string" ? inner.message : "";
        return `${name}: ${message}`;
      }
      return JSON.stringify(inner) ?? "-";
    }
  }
}

/** The function an invocation promise runs: `func` of its decoded param; `sleep` for timers. */
export function functionName(promise: PromiseRecord): string | undefined {
  const decoded = decodeValue(promise.param);
  if (decoded.kind === "json" && isRecord(decoded.value) && typeof decoded.value.func === "string") {
    return decoded.value.func;
  }
  if (promise.tags["resonate:timer"] === "true") return "sleep";
  return undefined;
}

export function isoTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}

/** `2026-04-01T10:00:00.000Z (in 5m)` / `(5m ago)`. */
export function relativeTime(ms: number, nowMs: number): string {
  const delta = ms - nowMs;
  const relative = delta >= 0 ? `in ${formatDuration(delta)}` : `${formatDuration(-delta)} ago`;
  return `${isoTime(ms)} (${relative})`;
}

/** Aligned `label  value` lines; a value with several lines is indented under the first. */
export function labelled(rows: readonly (readonly [string, string | readonly string[]])[]): string {
  const width = Math.max(...rows.map(([label]) => label.length));
  const lines: string[] = [];
  for (const [label, value] of rows) {
    const values = typeof value === "string" ? [value] : value.length === 0 ? ["-"] : value;
    values.forEach((line, index) => {
      lines.push(`${(index === 0 ? label : "").padEnd(width)}  ${line}`);
    });
  }
  return `${lines.join("\n")}\n`;
}

/** An aligned table with an upper-case header; the last column is not padded. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const render = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join("  ")
      .trimEnd();
  return `${[render(headers), ...rows.map(render)].join("\n")}\n`;
}

export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function tagLines(tags: Record<string, string>): string[] {
  return Object.keys(tags)
    .sort()
    .map((key) => `${key}=${tags[key]}`);
}

function headerLines(value: Value): string[] {
  return Object.entries(value.headers ?? {}).map(([key, header]) => `${key}: ${header}`);
}

export function formatPromise(promise: PromiseRecord, nowMs: number): string {
  const rows: [string, string | string[]][] = [
    ["id", promise.id],
    ["state", promise.state],
  ];
  const func = functionName(promise);
  if (func !== undefined) rows.push(["function", func]);
  rows.push(["param", valueText(promise.param)]);
  if (headerLines(promise.param).length > 0) rows.push(["param headers", headerLines(promise.param)]);
  rows.push(["value", valueText(promise.value)]);
  if (headerLines(promise.value).length > 0) rows.push(["value headers", headerLines(promise.value)]);
  rows.push(["tags", tagLines(promise.tags)]);
  rows.push(["created", isoTime(promise.createdAt)]);
  rows.push([
    "timeout",
    promise.state === "pending" ? relativeTime(promise.timeoutAt, nowMs) : isoTime(promise.timeoutAt),
  ]);
  if (promise.settledAt !== undefined) {
    rows.push([
      "settled",
      `${isoTime(promise.settledAt)} (after ${formatDuration(promise.settledAt - promise.createdAt)})`,
    ]);
  }
  return labelled(rows);
}

export function formatPromiseTable(promises: readonly PromiseRecord[]): string {
  if (promises.length === 0) return "no promises\n";
  return table(
    ["ID", "STATE", "FUNCTION", "CREATED", "TIMEOUT", "VALUE"],
    promises.map((promise) => [
      promise.id,
      promise.state,
      functionName(promise) ?? "-",
      isoTime(promise.createdAt),
      isoTime(promise.timeoutAt),
      truncate(valueText(promise.value), 40),
    ]),
  );
}

export function formatTask(task: TaskRecord): string {
  const rows: [string, string][] = [
    ["id", task.id],
    ["state", task.state],
    ["version", String(task.version)],
    ["resumes", String(task.resumes)],
  ];
  if (task.pid !== undefined) rows.push(["pid", task.pid]);
  if (task.ttl !== undefined) rows.push(["ttl", formatDuration(task.ttl)]);
  return labelled(rows);
}

export function formatTaskTable(tasks: readonly TaskRecord[]): string {
  if (tasks.length === 0) return "no tasks\n";
  return table(
    ["ID", "STATE", "VERSION", "RESUMES", "PID", "TTL"],
    tasks.map((task) => [
      task.id,
      task.state,
      String(task.version),
      String(task.resumes),
      task.pid ?? "-",
      task.ttl === undefined ? "-" : formatDuration(task.ttl),
    ]),
  );
}

export function formatSchedule(schedule: ScheduleRecord, nowMs: number): string {
  const rows: [string, string | string[]][] = [
    ["id", schedule.id],
    ["cron", schedule.cron],
    ["promise id", schedule.promiseId],
    ["promise timeout", formatDuration(schedule.promiseTimeout)],
    ["promise param", valueText(schedule.promiseParam)],
    ["promise tags", tagLines(schedule.promiseTags)],
    ["created", isoTime(schedule.createdAt)],
    ["next run", relativeTime(schedule.nextRunAt, nowMs)],
    ["last run", schedule.lastRunAt === undefined ? "-" : isoTime(schedule.lastRunAt)],
  ];
  return labelled(rows);
}

export function formatScheduleTable(schedules: readonly ScheduleRecord[]): string {
  if (schedules.length === 0) return "no schedules\n";
  return table(
    ["ID", "CRON", "PROMISE ID", "PROMISE TIMEOUT", "NEXT RUN"],
    schedules.map((schedule) => [
      schedule.id,
      schedule.cron,
      schedule.promiseId,
      formatDuration(schedule.promiseTimeout),
      isoTime(schedule.nextRunAt),
    ]),
  );
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
