/**
 * The `pledge` command tree and its exit statuses (INTERFACES.md): 0 success,
 * 1 refused or failed operation, 2 bad usage, each failure with a one-line
 * reason on stderr. Everything the process provides (streams, environment,
 * clock, stop signals) comes in through `CliIo`, so the whole CLI runs in a test.
 *
 * I1. `runCli` never calls `process.exit`; it answers the exit status.
 * I2. Commander's own errors (unknown option, missing argument) are usage: 2.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import type { Environment } from "./args.js";
import { addClientCommands } from "./commands.js";
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, OperationError, oneLine, UsageError } from "./errors.js";
import { addGcCommand, IDEMPOTENCE_NOTE } from "./gc.js";
import { addMigrateCommand } from "./migrate.js";
import { LOG_LEVELS, resolveServeOptions, runServe, type ServeFlags } from "./serve.js";
import { addLiveCommands } from "./tail.js";

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Environment;
  now(): number;
  /** Resolves when the process is asked to stop; `serve` and `tail` wait on it. */
  waitForStop(): Promise<string>;
  /** Whether stderr is a terminal (`gc` shows progress only then). */
  stderrIsTty?: boolean;
  /** Whether stdout is a terminal (`tree` colours only then). */
  stdoutIsTty?: boolean;
}

function packageVersion(): string {
  try {
    const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
    const version = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === "string" ? version : "unknown";
  } catch {
    return "unknown";
  }
}

export function createProgram(io: CliIo, setExitCode: (code: number) => void): Command {
  const program = new Command("pledge")
    .description("Durable execution on durable promises: the server and its command-line client.")
    .version(packageVersion(), "-V, --version")
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (text) => io.stdout(text),
      writeErr: (text) => io.stderr(text),
      // I2: one line, in the same voice as every other failure.
      outputError: (text, write) => write(`pledge: ${oneLine(text.replace(/^error: /, ""))}\n`),
    });

  const env = (name: string, defaultText: string): string => `(env PLEDGE_${name}, default ${defaultText})`;
  program
    .command("serve")
    .description("run the server; migrates its store at start")
    .option("--port <port>", `port to listen on, 0 for any ${env("PORT", "8001")}`)
    .option("--host <host>", `host to bind ${env("HOST", "127.0.0.1")}`)
    .option("--store <store>", `memory, sqlite:<path> or postgres://… ${env("STORE", "sqlite:./pledge.db")}`)
    .option("--auth-token <token>", "token every request must carry (env PLEDGE_AUTH_TOKEN)")
    .option("--debug", "enable debug.* requests and head resonate:debug_time (env PLEDGE_DEBUG)")
    .option("--insecure", "allow a non-loopback host without a token (env PLEDGE_INSECURE)")
    .addOption(
      new Option("--sync <mode>", `SQLite synchronous mode ${env("SYNC", "full")}`).choices([
        "full",
        "normal",
      ]),
    )
    .option("--max-body <size>", `largest request body, e.g. 10MiB, 512KiB ${env("MAX_BODY", "10MiB")}`)
    .option("--retry-timeout <duration>", `interval between task dispatches ${env("RETRY_TIMEOUT", "5s")}`)
    .option("--unblock-ttl <duration>", `how long an undelivered unblock waits ${env("UNBLOCK_TTL", "1h")}`)
    .option(
      "--retain <duration>",
      `delete settled promises and their tasks this long after they settle, checked in the background ${env("RETAIN", "keep forever")}; ${IDEMPOTENCE_NOTE}`,
    )
    .addOption(
      new Option("--log-level <level>", `log level ${env("LOG_LEVEL", "info")}`).choices([...LOG_LEVELS]),
    )
    .action(async (flags: ServeFlags) => {
      const resolved = resolveServeOptions(flags, io.env);
      setExitCode(await runServe(resolved, io));
    });

  addClientCommands(program, io);
  addLiveCommands(program, io);
  addGcCommand(program, io);
  addMigrateCommand(program, io);
  return program;
}

/** Runs `pledge` with `argv` (the arguments after the program name); answers the exit status. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = EXIT_OK;
  const program = createProgram(io, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync([...argv], { from: "user" });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version") return EXIT_OK;
      return EXIT_USAGE; // I2: commander has already written its one line (or the help).
    }
    if (error instanceof UsageError) {
      io.stderr(`pledge: ${oneLine(error.message)}\n`);
      return EXIT_USAGE;
    }
    if (error instanceof OperationError) {
      io.stderr(`pledge: ${oneLine(error.message)}\n`);
      return EXIT_FAILED;
    }
    // A programmer error: say so loudly, with the stack, and fail.
    io.stderr(
      `pledge: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return EXIT_FAILED;
  }
}
