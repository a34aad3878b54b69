/**
 * `pledge tail` and `pledge dashboard` (INTERFACES.md): the two commands that
 * look at a running server rather than change it. `tail` follows `GET /events`
 * (docs/events.md) and prints one human line per event, or each frame as the
 * server sent it with `--json` (one JSON document per line); `dashboard` checks
 * that the server answers and prints the dashboard's URL.
 *
 * I1. `tail` fails (exit 1) only when its first connection fails or is refused;
 *     once it has followed a stream it reconnects after a loss, saying so on
 *     stderr, and tells of events it may have missed (a gap in `seq`).
 * I2. A stop signal ends `tail` with exit 0, at any point.
 * I3. stdout carries only what was asked for: event lines (and one header line
 *     in human mode), or JSON; notes about the connection go to stderr.
 */
import type { Command } from "commander";
import { formatDuration } from "../lib/duration.js";
import type { EventsHello, ServerEvent } from "../protocol/events.js";
import { readEvents } from "../sdk/network/remote.js";
import { type Environment, resolveConnection } from "./args.js";
import { clientOptions } from "./commands.js";
import { OperationError, oneLine } from "./errors.js";
import { isoTime } from "./format.js";

export interface LiveIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Environment;
  /** Resolves when the process is asked to stop. */
  waitForStop(): Promise<string>;
}

interface LiveFlags {
  url?: string;
  token?: string;
  json?: boolean;
  id?: string;
}

const RECONNECT_MS = 1000;

/** The server's base URL with one trailing slash, so paths resolve under it. */
function baseUrl(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

export function addLiveCommands(program: Command, io: LiveIo): void {
  clientOptions(
    program
      .command("tail")
      .description(
        "follow what the server does, live: promises created and settled, tasks, timers, schedules",
      )
      .option("--id <prefix>", "only events about ids starting with this"),
  ).action(async (flags: LiveFlags) => tail(flags, io));

  clientOptions(
    program
      .command("dashboard")
      .description("print the dashboard URL of a running server (open it in a browser)"),
  ).action(async (flags: LiveFlags) => dashboard(flags, io));
}

/** The id an event is about. */
function subject(event: ServerEvent): string | undefined {
  if ("promise" in event) return event.promise.id;
  if ("task" in event) return event.task.id;
  if ("schedule" in event) return event.schedule.id;
  return undefined;
}

/** One human line: `<time>  <kind>  <id>  <what happened>  (<cause>)`. */
export function eventLine(event: ServerEvent): string {
  const detail = ((): string => {
    switch (event.kind) {
      case "promise.created": {
        const tags = event.promise.tags;
        const target = tags["resonate:target"];
        const what =
          tags["resonate:timer"] === "true"
            ? "timer"
            : target !== undefined
              ? `for ${target}`
              : tags["resonate:external"] === "true"
                ? "external"
                : (tags["resonate:scope"] ?? "");
        return `${what} timeout ${isoTime(event.promise.timeoutAt)}`.trim();
      }
      case "promise.settled": {
        const { state, settledAt, createdAt } = event.promise;
        return settledAt === undefined ? state : `${state} after ${formatDuration(settledAt - createdAt)}`;
      }
      case "schedule.created":
      case "schedule.fired":
        return "cron" in event.schedule
          ? `${event.schedule.cron}, next ${isoTime(event.schedule.nextRunAt)}`
          : "";
      case "schedule.deleted":
      case "server.reset":
        return "";
      default: {
        const { task } = event;
        const holder = task.pid === undefined ? "" : ` by ${task.pid}`;
        const lease = task.ttl === undefined ? "" : ` (lease ${formatDuration(task.ttl)})`;
        return `v${task.version}${holder}${lease}${event.from === undefined ? "" : `, was ${event.from}`}`;
      }
    }
  })();
  const parts = [isoTime(event.at), event.kind.padEnd(16), subject(event) ?? "-"];
  if (detail !== "") parts.push(detail);
  parts.push(`(${event.cause})`);
  return `${parts.join("  ")}\n`;
}

async function tail(flags: LiveFlags, io: LiveIo): Promise<void> {
  const { url, token } = resolveConnection(flags, io.env);
  const eventsUrl = new URL("events", baseUrl(url)).toString();
  const stop = new AbortController();
  void io.waitForStop().then(() => stop.abort()); // I2
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      stop.signal.addEventListener(
        "abort",
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
  let followed = false;
  let lastSeq: number | undefined;
  const onFrame = (data: string): void => {
    let frame: unknown;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof frame !== "object" || frame === null) return;
    if ((frame as { kind?: unknown }).kind === "events.hello") {
      const { seq } = frame as EventsHello;
      if (lastSeq !== undefined && seq > lastSeq)
        io.stderr(`pledge: missed ${seq - lastSeq} event(s) while away\n`);
      if (lastSeq !== undefined && seq < lastSeq)
        io.stderr("pledge: the server restarted; numbering starts over\n");
      lastSeq = seq;
      if (flags.json) io.stdout(`${data}\n`);
      return;
    }
    const event = frame as ServerEvent;
    lastSeq = event.seq;
    if (flags.id !== undefined && !(subject(event) ?? "").startsWith(flags.id)) return;
    io.stdout(flags.json ? `${data}\n` : eventLine(event));
  };

  while (!stop.signal.aborted) {
    let response: Response;
    try {
      response = await fetch(eventsUrl, {
        headers: {
          Accept: "text/event-stream",
          ...(token !== undefined && { Authorization: `Bearer ${token}` }),
        },
        signal: stop.signal,
      });
    } catch (error) {
      if (stop.signal.aborted) return;
      const reason = oneLine(
        error instanceof Error ? ((error.cause as Error)?.message ?? error.message) : String(error),
      );
      if (!followed) throw new OperationError(`GET ${eventsUrl}: cannot reach the server (${reason})`); // I1
      io.stderr(`pledge: lost ${url} (${reason}); reconnecting\n`);
      await pause(RECONNECT_MS);
      continue;
    }
    if (response.status === 401) {
      await response.body?.cancel();
      throw new OperationError(`GET ${eventsUrl}: 401 unauthorized (pass --token or set PLEDGE_TOKEN)`);
    }
    const type = response.headers.get("content-type") ?? "";
    if (!response.ok || !type.includes("text/event-stream") || response.body === null) {
      await response.body?.cancel();
      const message = `GET ${eventsUrl}: ${response.status}, not an event stream (is this a Pledge server?)`;
      if (!followed) throw new OperationError(message);
      io.stderr(`pledge: ${message}; reconnecting\n`);
      await pause(RECONNECT_MS);
      continue;
    }
    if (!followed && !flags.json) io.stdout(`following ${eventsUrl} (Ctrl-C stops)\n`);
    followed = true;
    try {
      await readEvents(response.body, onFrame);
    } catch {
      // A reset or an abort: the loop decides.
    }
    if (stop.signal.aborted) return;
    io.stderr(`pledge: the event stream from ${url} ended; reconnecting\n`);
    await pause(RECONNECT_MS);
  }
}

async function dashboard(flags: LiveFlags, io: LiveIo): Promise<void> {
  const { url, token } = resolveConnection(flags, io.env);
  const page = baseUrl(url);
  let response: Response;
  try {
    response = await fetch(page, { signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    const reason = oneLine(
      error instanceof Error ? ((error.cause as Error)?.message ?? error.message) : String(error),
    );
    throw new OperationError(`no server answers at ${page} (${reason}); start one with pledge serve`);
  }
  const body = await response.text();
  if (response.status === 503 && body.includes("not built"))
    throw new OperationError(`${page}: the dashboard is not built; run npm run build and restart the server`);
  if (!response.ok || !(response.headers.get("content-type") ?? "").includes("text/html"))
    throw new OperationError(
      `${page}: answered ${response.status}, not the dashboard (is this a Pledge server?)`,
    );
  // Does the server ask for a token, and is the one given right? `/events` answers 401 at once if not.
  const opens = async (secret: string | undefined): Promise<boolean> => {
    const probe = await fetch(new URL("events", page), {
      headers: secret === undefined ? {} : { Authorization: `Bearer ${secret}` },
    });
    await probe.body?.cancel();
    return probe.status !== 401;
  };
  const tokenRequired = !(await opens(undefined));
  if (tokenRequired && token !== undefined && !(await opens(token)))
    throw new OperationError(`${page}: the server refused that token (check --token or PLEDGE_TOKEN)`);
  if (flags.json) {
    io.stdout(`${JSON.stringify({ url: page, tokenRequired })}\n`);
    return;
  }
  io.stdout(`${page}\n`);
  if (tokenRequired && token === undefined)
    io.stderr("pledge: the server asks for a token; the page will ask for it too\n");
}
