/**
 * `pledge migrate --store S [--json]` (INTERFACES.md): applies the store's
 * numbered migrations and exits, for operators who migrate separately from
 * `serve` (which migrates at start anyway). The work is `migrateStore`
 * (node/migrate.ts); this file owns the flags, the output and the exit status.
 *
 * I1. The store URL is checked before anything is opened: bad usage (exit 2,
 *     `memory` included) never opens, creates or locks anything.
 * I2. A store that fails (unreachable, owned by a running server, a schema newer
 *     than this build: the store's own message) is a failed operation, exit 1.
 * I3. stdout carries only the result: one line `<store>: schema version A → B`,
 *     or one JSON document `{ store, from, to, applied }` with `--json`.
 */
import type { Command } from "commander";
import { type Environment, fromEnvironment } from "./args.js";
import { OperationError, oneLine, UsageError } from "./errors.js";

export interface MigrateIo {
  stdout(text: string): void;
  env: Environment;
}

interface MigrateFlags {
  store?: string;
  json?: boolean;
}

export function addMigrateCommand(program: Command, io: MigrateIo): void {
  program
    .command("migrate")
    .description(
      "apply the store's migrations and exit (serve also migrates at start); prints the schema version before → after",
    )
    .option("--store <store>", "sqlite:<path> or postgres://… (env PLEDGE_STORE)")
    .option("--json", "print the result as JSON")
    .action(async (flags: MigrateFlags) => migrate(flags, io));
}

async function migrate(flags: MigrateFlags, io: MigrateIo): Promise<void> {
  const store = flags.store ?? fromEnvironment(io.env, "PLEDGE_STORE");
  if (store === undefined || store.trim() === "")
    throw new UsageError("--store: required: the store to migrate, sqlite:<path> or postgres://…");
  const { parseStoreUrl } = await import("../node/open-store.js");
  try {
    parseStoreUrl(store); // I1
  } catch (error) {
    throw new UsageError(`--store: ${(error as Error).message.replace(/^store: /, "")}`);
  }
  const { migrateStore, MigrateUsageError } = await import("../node/migrate.js");
  let result: Awaited<ReturnType<typeof migrateStore>>;
  try {
    result = await migrateStore(store);
  } catch (error) {
    if (error instanceof MigrateUsageError) throw new UsageError(`--store: ${error.message}`);
    const message = error instanceof Error ? error.message : String(error);
    throw new OperationError(oneLine(`migrate: ${message}`)); // I2
  }

  const applied = result.from === null ? null : result.to - result.from;
  if (flags.json) {
    io.stdout(`${JSON.stringify({ ...result, applied })}\n`);
    return;
  }
  const from = result.from === null ? "unknown" : String(result.from);
  const note =
    applied === 0
      ? "already current"
      : applied === null
        ? "migrated"
        : `applied ${applied} migration${applied === 1 ? "" : "s"}`;
  io.stdout(`${result.store}: schema version ${from} → ${result.to} (${note})\n`);
}
