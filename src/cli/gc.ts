/**
 * `pledge gc --store S --before <time|duration>` (INTERFACES.md): deletes settled
 * promises (with their tasks) settled before a cut-off, on a store it opens
 * directly. The work is `collectGarbage` (node/gc.ts) over the core's choice
 * (core/retention.ts); this file owns the flags, the output and the exit status.
 *
 * An id is idempotent only while its record exists: after gc removes it, a
 * request with the same id starts afresh (a new promise, a new run).
 *
 * I1. Every flag is parsed before the store is opened: bad usage (exit 2) never
 *     opens, migrates or locks anything.
 * I2. `--before` is a duration (the cut-off is now minus it) or an ISO 8601 time;
 *     a date-time must say its zone (`Z` or an offset), a bare date is UTC midnight.
 * I3. stdout carries only the result (one human line, or one JSON document with
 *     `--json`); progress goes to stderr, and only when stderr is a terminal.
 */
import type { Command } from "commander";
import { DurationError, parseDuration } from "../lib/duration.js";
import { type Environment, fromEnvironment } from "./args.js";
import { OperationError, oneLine, UsageError } from "./errors.js";
import { isoTime } from "./format.js";

export interface GcIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Environment;
  now(): number;
  /** Whether stderr is a terminal (progress is shown only then). */
  stderrIsTty?: boolean;
}

interface GcFlags {
  store?: string;
  before?: string;
  json?: boolean;
}

export const IDEMPOTENCE_NOTE =
  "an id is idempotent only while its record exists; after gc removes it, a request with the same id starts afresh";

export function addGcCommand(program: Command, io: GcIo): void {
  program
    .command("gc")
    .description(
      "delete settled promises (and their tasks) settled before a cut-off; opens the store directly " +
        `(a SQLite file only when no process owns it). Note: ${IDEMPOTENCE_NOTE}`,
    )
    .option("--store <store>", "sqlite:<path> or postgres://… (env PLEDGE_STORE)")
    .option(
      "--before <time|duration>",
      "cut-off: a duration ago (30d, 12h) or an ISO 8601 time (2026-04-01T00:00:00Z)",
    )
    .option("--json", "print the result as JSON")
    .action(async (flags: GcFlags) => gc(flags, io));
}

/** `--before`: now minus a duration, or an ISO 8601 instant (I2). */
export function cutOffArgument(text: string, nowMs: number): number {
  const trimmed = text.trim();
  try {
    return nowMs - parseDuration(trimmed);
  } catch (error) {
    if (!(error instanceof DurationError)) throw error;
  }
  const date = /^\d{4}-\d{2}-\d{2}$/.test(trimmed);
  const dateTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/i.test(trimmed);
  const ms = date || dateTime ? Date.parse(trimmed) : Number.NaN;
  if (Number.isNaN(ms)) {
    const zoneless = /^\d{4}-\d{2}-\d{2}T[\d:.]+$/.test(trimmed);
    throw new UsageError(
      zoneless
        ? `--before: "${text}" has no time zone; add Z or an offset, e.g. ${trimmed}Z`
        : `--before: expected a duration (30d, 12h, 90m) or an ISO 8601 time (2026-04-01T00:00:00Z), got "${text}"`,
    );
  }
  return ms;
}

async function gc(flags: GcFlags, io: GcIo): Promise<void> {
  // I1: everything parsed before anything is opened.
  const store = flags.store ?? fromEnvironment(io.env, "PLEDGE_STORE");
  if (store === undefined || store.trim() === "")
    throw new UsageError("--store: required: the store to collect, sqlite:<path> or postgres://…");
  if (flags.before === undefined)
    throw new UsageError("--before: required: a duration ago (30d) or an ISO 8601 time");
  const settledBefore = cutOffArgument(flags.before, io.now());
  const { collectGarbage, GcStoreError } = await import("../node/gc.js");
  const { parseStoreUrl } = await import("../node/open-store.js");
  try {
    parseStoreUrl(store);
  } catch (error) {
    throw new UsageError(`--store: ${(error as Error).message.replace(/^store: /, "")}`);
  }

  let progressShown = false;
  const progress = (promises: number, tasks: number) => {
    if (io.stderrIsTty !== true) return;
    io.stderr(`\rremoved ${promises} promises, ${tasks} tasks…`);
    progressShown = true;
  };
  let totals: Awaited<ReturnType<typeof collectGarbage>>;
  try {
    totals = await collectGarbage({
      store,
      settledBefore,
      onBatch: (sofar) => progress(sofar.promises, sofar.tasks),
    });
  } catch (error) {
    if (error instanceof GcStoreError && error.usage) throw new UsageError(`--store: ${error.message}`);
    const message = error instanceof Error ? error.message : String(error);
    throw new OperationError(oneLine(`gc: ${message}`));
  } finally {
    if (progressShown) io.stderr("\n");
  }

  const before = isoTime(settledBefore);
  if (flags.json) {
    io.stdout(
      `${JSON.stringify({ before, promises: totals.promises, tasks: totals.tasks, kept: totals.kept, batches: totals.batches })}\n`,
    );
    return;
  }
  const kept = totals.kept === 0 ? "" : ` (kept ${totals.kept} still needed by live work or a schedule)`;
  io.stdout(
    `removed ${totals.promises} promises and ${totals.tasks} tasks settled before ${before}${kept}\n`,
  );
}
