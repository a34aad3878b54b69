/**
 * The client commands of `pledge` (INTERFACES.md): `promises`, `tasks`,
 * `schedules`, `invoke` and `tree`, each one or a few protocol requests over HTTP.
 * Every leaf takes `--url`, `--token` and `--json`; human output by default.
 *
 * I1. Arguments are fully parsed before the first request, so bad usage (exit 2)
 *     never leaves half an operation behind.
 * I2. `--json` prints the response `data` exactly as the server sent it (for
 *     `--all` searches: every page's records under one key, without a cursor).
 */
import type { Command } from "commander";
import {
  PROMISE_STATES,
  type PromiseRecord,
  type ScheduleRecord,
  type SettlableState,
  TASK_STATES,
  type Tags,
  type TaskRecord,
} from "../protocol/records.js";
import { readEvents } from "../sdk/network/remote.js";
import {
  type ConnectionFlags,
  collect,
  DEFAULT_GROUP,
  durationArgument,
  type Environment,
  encodeJson,
  jsonArgument,
  limitArgument,
  optionalChoice,
  resolveConnection,
  tagsArgument,
  targetAddress,
  valueArgument,
} from "./args.js";
import { CliClient, promiseField, scheduleField, taskField } from "./client.js";
import { UsageError } from "./errors.js";
import {
  formatPromise,
  formatPromiseTable,
  formatSchedule,
  formatScheduleTable,
  formatTask,
  formatTaskTable,
  useColor,
} from "./format.js";
import { buildTree, renderTree, watchTree } from "./tree.js";

export interface ClientIo {
  stdout(text: string): void;
  env: Environment;
  now(): number;
  /** Whether stdout is a terminal (`tree` colours and redraws in place only then). */
  stdoutIsTty?: boolean;
  /** Resolves when the process is asked to stop (`tree --watch`). */
  waitForStop?(): Promise<string>;
}

interface CommonFlags extends ConnectionFlags {
  json?: boolean;
}

/** An invocation's default deadline (INTERFACES.md `pledge invoke`). */
const DEFAULT_INVOKE_TIMEOUT = "24h";

/** Adds the options every client command takes. */
export function clientOptions(command: Command): Command {
  return command
    .option("--url <url>", "server URL (env PLEDGE_URL, default http://127.0.0.1:8001)")
    .option("--token <token>", "bearer token (env PLEDGE_TOKEN)")
    .option("--json", "print the response data as JSON");
}

function connect(flags: CommonFlags, io: ClientIo): CliClient {
  const connection = resolveConnection(flags, io.env);
  return new CliClient({ url: connection.url, token: connection.token });
}

function printJson(io: ClientIo, data: unknown): void {
  io.stdout(`${JSON.stringify(data, null, 2)}\n`);
}

function cursorHint(noun: string, cursor: string | undefined): string {
  return cursor === undefined ? "" : `more ${noun}: --cursor ${cursor} (or --all)\n`;
}

/** `--timeout 30s` → an absolute `timeoutAt`, after checking the duration is positive. */
function deadline(flag: string, text: string, io: ClientIo): number {
  const ms = durationArgument(flag, text);
  if (ms < 1) throw new UsageError(`${flag}: must be longer than 0, got "${text}"`);
  return io.now() + ms;
}

export function addClientCommands(program: Command, io: ClientIo): void {
  addPromiseCommands(program, io);
  addTaskCommands(program, io);
  addScheduleCommands(program, io);
  addInvokeCommand(program, io);
  addTreeCommand(program, io);
}

function addPromiseCommands(program: Command, io: ClientIo): void {
  const promises = program.command("promises").description("get, create, settle and search promises");

  clientOptions(promises.command("get").description("show a promise").argument("<id>", "promise id")).action(
    async (id: string, flags: CommonFlags) => {
      const client = connect(flags, io);
      const data = await client.request("promise.get", { id });
      if (flags.json) return printJson(io, data);
      io.stdout(formatPromise(promiseField("promise.get", data), io.now()));
    },
  );

  clientOptions(
    promises
      .command("create")
      .description("create a promise (an existing id answers the existing promise)")
      .argument("<id>", "promise id")
      .requiredOption("--timeout <duration>", "deadline from now: 500ms, 30s, 5m, 2h, 7d")
      .option("--param <json>", "input value, a JSON document")
      .option("--tag <key=value>", "a tag; repeat for more", collect)
      .option("--external", "mark it settled from outside (tag resonate:external=true)")
      .option("--target <group>", "run it on a worker group (tag resonate:target=poll://any@<group>)"),
  ).action(
    async (
      id: string,
      flags: CommonFlags & {
        timeout: string;
        param?: string;
        tag?: string[];
        external?: boolean;
        target?: string;
      },
    ) => {
      const timeoutAt = deadline("--timeout", flags.timeout, io);
      const param = valueArgument("--param", flags.param);
      const tags: Tags = tagsArgument("--tag", flags.tag);
      if (flags.external) tags["resonate:external"] = "true";
      if (flags.target !== undefined) tags["resonate:target"] = targetAddress(flags.target);
      const client = connect(flags, io);
      const data = await client.request("promise.create", { id, timeoutAt, param, tags });
      if (flags.json) return printJson(io, data);
      io.stdout(formatPromise(promiseField("promise.create", data), io.now()));
    },
  );

  const settleCommands = {
    resolve: "resolved",
    reject: "rejected",
    cancel: "rejected_canceled",
  } as const satisfies Record<string, SettlableState>;
  for (const [verb, state] of Object.entries(settleCommands)) {
    clientOptions(
      promises
        .command(verb)
        .description(`${verb} a pending promise (a settled one answers as it is)`)
        .argument("<id>", "promise id")
        .option("--value <json>", "result value, a JSON document"),
    ).action(async (id: string, flags: CommonFlags & { value?: string }) => {
      const value = valueArgument("--value", flags.value);
      const client = connect(flags, io);
      const data = await client.request("promise.settle", { id, state, value });
      if (flags.json) return printJson(io, data);
      io.stdout(formatPromise(promiseField("promise.settle", data), io.now()));
    });
  }

  clientOptions(
    promises
      .command("search")
      .description("list promises by id prefix, state and tags")
      .option("--id <prefix*>", "id prefix ending in *, e.g. order-7*")
      .option("--state <state>", `one of ${PROMISE_STATES.join(", ")}`)
      .option("--tag <key=value>", "a tag the promises carry; repeat for more", collect)
      .option("--limit <n>", "results per page, 1-1000")
      .option("--cursor <cursor>", "continue after this cursor")
      .option("--all", "follow cursors to the end"),
  ).action(
    async (
      flags: CommonFlags & {
        id?: string;
        state?: string;
        tag?: string[];
        limit?: string;
        cursor?: string;
        all?: boolean;
      },
    ) => {
      const data: Record<string, unknown> = {};
      if (flags.id !== undefined) data.id = flags.id;
      const state = optionalChoice("--state", flags.state, PROMISE_STATES);
      if (state !== undefined) data.state = state;
      if (flags.tag !== undefined) data.tags = tagsArgument("--tag", flags.tag);
      const limit = limitArgument(flags.limit);
      if (limit !== undefined) data.limit = limit;
      if (flags.cursor !== undefined) data.cursor = flags.cursor;
      const client = connect(flags, io);
      const all = flags.all === true;
      const { records, cursor } = await client.search<PromiseRecord>({
        kind: "promise.search",
        field: "promises",
        data,
        all,
      });
      if (flags.json)
        return printJson(io, cursor === undefined ? { promises: records } : { promises: records, cursor });
      io.stdout(formatPromiseTable(records) + cursorHint("promises", cursor));
    },
  );
}

function addTaskCommands(program: Command, io: ClientIo): void {
  const tasks = program.command("tasks").description("inspect tasks");

  clientOptions(tasks.command("get").description("show a task").argument("<id>", "task id")).action(
    async (id: string, flags: CommonFlags) => {
      const client = connect(flags, io);
      const data = await client.request("task.get", { id });
      if (flags.json) return printJson(io, data);
      io.stdout(formatTask(taskField("task.get", data)));
    },
  );

  clientOptions(
    tasks
      .command("search")
      .description("list tasks by state")
      .option("--state <state>", `one of ${TASK_STATES.join(", ")}`)
      .option("--limit <n>", "results per page, 1-1000")
      .option("--cursor <cursor>", "continue after this cursor")
      .option("--all", "follow cursors to the end"),
  ).action(
    async (flags: CommonFlags & { state?: string; limit?: string; cursor?: string; all?: boolean }) => {
      const data: Record<string, unknown> = {};
      const state = optionalChoice("--state", flags.state, TASK_STATES);
      if (state !== undefined) data.state = state;
      const limit = limitArgument(flags.limit);
      if (limit !== undefined) data.limit = limit;
      if (flags.cursor !== undefined) data.cursor = flags.cursor;
      const client = connect(flags, io);
      const { records, cursor } = await client.search<TaskRecord>({
        kind: "task.search",
        field: "tasks",
        data,
        all: flags.all === true,
      });
      if (flags.json)
        return printJson(io, cursor === undefined ? { tasks: records } : { tasks: records, cursor });
      io.stdout(formatTaskTable(records) + cursorHint("tasks", cursor));
    },
  );
}

function addScheduleCommands(program: Command, io: ClientIo): void {
  const schedules = program.command("schedules").description("create, inspect and delete schedules");

  clientOptions(
    schedules
      .command("create")
      .description("create a schedule that makes a promise on every cron occurrence")
      .argument("<id>", "schedule id")
      .requiredOption("--cron <expr>", "cron expression, UTC, e.g. '*/5 * * * *'")
      .requiredOption("--promise-id <template>", "id of each promise; {{.id}} and {{.timestamp}} expand")
      .requiredOption("--promise-timeout <duration>", "each promise's deadline after its occurrence")
      .option("--param <json>", "param of each promise, a JSON document")
      .option("--tag <key=value>", "a tag of each promise; repeat for more", collect)
      .option("--target <group>", "run each promise on a worker group (tag resonate:target)"),
  ).action(
    async (
      id: string,
      flags: CommonFlags & {
        cron: string;
        promiseId: string;
        promiseTimeout: string;
        param?: string;
        tag?: string[];
        target?: string;
      },
    ) => {
      const promiseTimeout = durationArgument("--promise-timeout", flags.promiseTimeout);
      const promiseParam = valueArgument("--param", flags.param);
      const promiseTags = tagsArgument("--tag", flags.tag);
      if (flags.target !== undefined) promiseTags["resonate:target"] = targetAddress(flags.target);
      const client = connect(flags, io);
      const data = await client.request("schedule.create", {
        id,
        cron: flags.cron,
        promiseId: flags.promiseId,
        promiseTimeout,
        promiseParam,
        promiseTags,
      });
      if (flags.json) return printJson(io, data);
      io.stdout(formatSchedule(scheduleField("schedule.create", data), io.now()));
    },
  );

  clientOptions(
    schedules.command("get").description("show a schedule").argument("<id>", "schedule id"),
  ).action(async (id: string, flags: CommonFlags) => {
    const client = connect(flags, io);
    const data = await client.request("schedule.get", { id });
    if (flags.json) return printJson(io, data);
    io.stdout(formatSchedule(scheduleField("schedule.get", data), io.now()));
  });

  clientOptions(
    schedules
      .command("delete")
      .description("delete a schedule (its promises stay)")
      .argument("<id>", "schedule id"),
  ).action(async (id: string, flags: CommonFlags) => {
    const client = connect(flags, io);
    const data = await client.request("schedule.delete", { id });
    if (flags.json) return printJson(io, data);
    io.stdout(`deleted schedule ${id}\n`);
  });

  clientOptions(
    schedules
      .command("search")
      .description("list schedules by the tags of their promises")
      .option("--tag <key=value>", "a promise tag; repeat for more", collect)
      .option("--limit <n>", "results per page, 1-1000")
      .option("--cursor <cursor>", "continue after this cursor")
      .option("--all", "follow cursors to the end"),
  ).action(
    async (flags: CommonFlags & { tag?: string[]; limit?: string; cursor?: string; all?: boolean }) => {
      const data: Record<string, unknown> = {};
      if (flags.tag !== undefined) data.tags = tagsArgument("--tag", flags.tag);
      const limit = limitArgument(flags.limit);
      if (limit !== undefined) data.limit = limit;
      if (flags.cursor !== undefined) data.cursor = flags.cursor;
      const client = connect(flags, io);
      const { records, cursor } = await client.search<ScheduleRecord>({
        kind: "schedule.search",
        field: "schedules",
        data,
        all: flags.all === true,
      });
      if (flags.json) {
        return printJson(io, cursor === undefined ? { schedules: records } : { schedules: records, cursor });
      }
      io.stdout(formatScheduleTable(records) + cursorHint("schedules", cursor));
    },
  );
}

/**
 * The request `pledge invoke` sends: a root invocation exactly as the SDKs make
 * one (param `{func, args, version}`; a root is its own origin, branch, parent and
 * prefix, §2.5 and §3.9), addressed to the group's workers by anycast.
 */
export function invocationRequest(options: {
  id: string;
  func: string;
  args: unknown[];
  group: string;
  timeoutAt: number;
}): { id: string; timeoutAt: number; param: { data?: string }; tags: Tags } {
  const { id, func, args, group, timeoutAt } = options;
  return {
    id,
    timeoutAt,
    param: encodeJson({ func, args, version: 1 }),
    tags: {
      "resonate:target": targetAddress(group),
      "resonate:scope": "global",
      "resonate:origin": id,
      "resonate:branch": id,
      "resonate:parent": id,
      "resonate:prefix": id,
    },
  };
}

function addInvokeCommand(program: Command, io: ClientIo): void {
  clientOptions(
    program
      .command("invoke")
      .description("start a function on a worker group (an existing id answers the existing promise)")
      .argument("<id>", "id of the invocation's promise")
      .requiredOption("--func <name>", "registered function name")
      .option("--arg <json>", "an argument, a JSON document; repeat in order", collect)
      .option("--target <group>", `worker group (default ${DEFAULT_GROUP})`)
      .option("--timeout <duration>", `deadline from now (default ${DEFAULT_INVOKE_TIMEOUT})`),
  ).action(
    async (
      id: string,
      flags: CommonFlags & { func: string; arg?: string[]; target?: string; timeout?: string },
    ) => {
      if (flags.func === "") throw new UsageError("--func: the function name must not be empty");
      const args = (flags.arg ?? []).map((text) => jsonArgument("--arg", text));
      const timeoutAt = deadline("--timeout", flags.timeout ?? DEFAULT_INVOKE_TIMEOUT, io);
      const request = invocationRequest({
        id,
        func: flags.func,
        args,
        group: flags.target ?? DEFAULT_GROUP,
        timeoutAt,
      });
      const client = connect(flags, io);
      const data = await client.request("promise.create", request);
      if (flags.json) return printJson(io, data);
      io.stdout(formatPromise(promiseField("promise.create", data), io.now()));
    },
  );
}

function addTreeCommand(program: Command, io: ClientIo): void {
  clientOptions(
    program
      .command("tree")
      .description("the call graph under a promise (children by resonate:parent, else by id prefix)")
      .argument("<id>", "root promise id")
      .option("--watch", "redraw as the server reports changes (GET /events), until stopped"),
  ).action(async (id: string, flags: CommonFlags & { watch?: boolean }) => {
    const client = connect(flags, io);
    const build = () =>
      buildTree(id, {
        getPromise: (promiseId) => client.getPromise(promiseId),
        searchPromises: async (data) =>
          (
            await client.search<PromiseRecord>({
              kind: "promise.search",
              field: "promises",
              data,
              all: true,
            })
          ).records,
      });
    const color = useColor(io);
    const tree = await build();
    if (flags.json) return printJson(io, tree);
    io.stdout(renderTree(tree, io.now(), { color }));
    if (flags.watch !== true || io.waitForStop === undefined) return;
    const { url, token } = resolveConnection(flags, io.env);
    const stop = new AbortController();
    void io.waitForStop().then(() => stop.abort());
    const tty = io.stdoutIsTty === true;
    await watchTree(
      {
        eventsUrl: new URL("events", url.endsWith("/") ? url : `${url}/`).toString(),
        token,
        signal: stop.signal,
        tickMs: tty ? 1000 : 0,
        redraw: async () => {
          const text = renderTree(await build(), io.now(), { color });
          io.stdout(tty ? `\u001b[H\u001b[2J${text}` : `\n${text}`);
        },
      },
      readEvents,
    );
  });
}
