/**
 * The CLI's view of a server: one request → its success data, or an
 * `OperationError` carrying a one-line reason (exit 1). Also pages through
 * searches. Shapes of success data are checked just enough to print them
 * (an `id` and a `state` on each record); the server is trusted for the rest.
 */
import {
  ProtocolClient,
  type ProtocolClientOptions,
  ProtocolNetworkError,
  ProtocolResponseError,
} from "../lib/http-client.js";
import type { PromiseRecord, ScheduleRecord, TaskRecord } from "../protocol/records.js";
import { OperationError, oneLine } from "./errors.js";
import { isRecord } from "./format.js";

const STATUS_NAMES: Record<number, string> = {
  400: "bad request",
  401: "unauthorized",
  403: "forbidden",
  404: "not found",
  409: "conflict",
  413: "request too large",
  422: "unprocessable",
  429: "rate limited",
  500: "server error",
  501: "not implemented",
  503: "unavailable",
};

export class CliClient {
  private readonly client: ProtocolClient;

  constructor(options: ProtocolClientOptions) {
    this.client = new ProtocolClient(options);
  }

  /** Sends one request; answers its data on `200`, else throws `OperationError`. */
  async request(kind: string, data: Record<string, unknown>): Promise<Record<string, unknown>> {
    let result: Awaited<ReturnType<ProtocolClient["call"]>>;
    try {
      result = await this.client.call(kind, data);
    } catch (error) {
      if (error instanceof ProtocolNetworkError || error instanceof ProtocolResponseError) {
        throw new OperationError(oneLine(`${kind}: ${error.message}`));
      }
      throw error;
    }
    if (result.status !== 200) {
      const name = STATUS_NAMES[result.status] ?? "failed";
      const message = typeof result.data === "string" ? result.data : JSON.stringify(result.data);
      const hint = result.status === 401 ? " (pass --token or set PLEDGE_TOKEN)" : "";
      throw new OperationError(oneLine(`${kind}: ${result.status} ${name}: ${message}${hint}`));
    }
    if (!isRecord(result.data)) {
      throw new OperationError(`${kind}: the server answered 200 without a data object`);
    }
    return result.data;
  }

  async getPromise(id: string): Promise<PromiseRecord> {
    return promiseField("promise.get", await this.request("promise.get", { id }));
  }

  /**
   * Runs a search and, when `all` is set, follows `cursor` until the server
   * stops sending one. Answers every record fetched and the cursor left over.
   */
  async search<T>(options: {
    kind: "promise.search" | "task.search" | "schedule.search";
    field: "promises" | "tasks" | "schedules";
    data: Record<string, unknown>;
    all: boolean;
  }): Promise<{ records: T[]; cursor: string | undefined }> {
    const records: T[] = [];
    let data = options.data;
    const seen = new Set<string>();
    for (;;) {
      const answer = await this.request(options.kind, data);
      const page = answer[options.field];
      if (!Array.isArray(page)) {
        throw new OperationError(`${options.kind}: the answer has no "${options.field}" list`);
      }
      for (const record of page) records.push(checkRecord(options.kind, record) as T);
      const cursor = typeof answer.cursor === "string" && answer.cursor !== "" ? answer.cursor : undefined;
      if (!options.all || cursor === undefined) return { records, cursor };
      // A server that hands back a cursor it already gave would page forever.
      if (seen.has(cursor))
        throw new OperationError(`${options.kind}: the server repeated cursor "${cursor}"`);
      seen.add(cursor);
      data = { ...data, cursor };
    }
  }
}

export function promiseField(kind: string, data: Record<string, unknown>): PromiseRecord {
  return checkRecord(kind, data.promise) as unknown as PromiseRecord;
}

export function taskField(kind: string, data: Record<string, unknown>): TaskRecord {
  return checkRecord(kind, data.task) as unknown as TaskRecord;
}

export function scheduleField(kind: string, data: Record<string, unknown>): ScheduleRecord {
  const record = data.schedule;
  if (!isRecord(record) || typeof record.id !== "string" || typeof record.cron !== "string") {
    throw new OperationError(`${kind}: the answer carries no schedule record`);
  }
  return record as unknown as ScheduleRecord;
}

function checkRecord(kind: string, record: unknown): Record<string, unknown> {
  if (isRecord(record) && typeof record.id === "string" && typeof record.state === "string") return record;
  if (isRecord(record) && typeof record.id === "string" && typeof record.cron === "string") return record;
  throw new OperationError(`${kind}: the answer carries a malformed record`);
}
