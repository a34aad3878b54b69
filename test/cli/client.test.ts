/**
 * The `pledge` client commands, black-box: the built CLI as a child process
 * against a server started in this process (memory store). Checks what users and
 * scripts rely on: human output, `--json`, and exit statuses 0 / 1 / 2 with a
 * one-line reason on stderr.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_SERVE_OPTIONS, type RunningServer } from "../../src/node/options.js";
import { startServer } from "../../src/node/serve.js";
import type { PromiseRecord, ScheduleRecord, TaskRecord } from "../../src/protocol/records.js";
import { ensureBuilt, ONE_LINE_REASON, type Outcome, pledge } from "./helpers.js";

let server: RunningServer;
let secured: RunningServer;
const TOKEN = "cli-test-token";

beforeAll(async () => {
  await ensureBuilt();
  server = await startServer({ ...DEFAULT_SERVE_OPTIONS, store: "memory", port: 0, logLevel: "silent" });
  secured = await startServer({
    ...DEFAULT_SERVE_OPTIONS,
    store: "memory",
    port: 0,
    logLevel: "silent",
    authToken: TOKEN,
  });
}, 180_000);

afterAll(async () => {
  await server?.close();
  await secured?.close();
});

/** Runs `pledge` against the test server (PLEDGE_URL), expecting exit 0. */
async function ok(...args: string[]): Promise<string> {
  const outcome = await run(...args);
  expect(outcome.stderr, `pledge ${args.join(" ")}`).toBe("");
  expect(outcome.code, `pledge ${args.join(" ")}: ${outcome.stderr}`).toBe(0);
  return outcome.stdout;
}

async function okJson<T>(...args: string[]): Promise<T> {
  return JSON.parse(await ok(...args, "--json")) as T;
}

function run(...args: string[]): Promise<Outcome> {
  return pledge(args, { env: { PLEDGE_URL: server.url } });
}

function decode(data: string | undefined): unknown {
  return JSON.parse(Buffer.from(data ?? "", "base64").toString("utf8"));
}

/** Ids unique to one test, so tests share the server without seeing each other. */
let sequence = 0;
function uniqueId(stem: string): string {
  sequence += 1;
  return `${stem}-${process.pid}-${sequence}`;
}

describe("pledge promises", () => {
  it("creates, gets and resolves a promise, printing it plainly", async () => {
    const id = uniqueId("order");
    const created = await ok("promises", "create", id, "--timeout", "5m", "--param", '{"amount":42}');
    expect(created).toMatch(new RegExp(`^id +${id}$`, "m"));
    expect(created).toMatch(/^state +pending$/m);
    expect(created).toMatch(/^param +\{"amount":42\}$/m);
    expect(created).toMatch(/^timeout +\d{4}-\d\d-\d\dT[\d:.]+Z \(in (4m 59s|5m)\)$/m);

    const fetched = await ok("promises", "get", id);
    expect(fetched).toBe(created.replace(/\(in [^)]+\)/, fetched.match(/\(in [^)]+\)/)?.[0] ?? ""));

    const resolved = await ok("promises", "resolve", id, "--value", '{"ok":true}');
    expect(resolved).toMatch(/^state +resolved$/m);
    expect(resolved).toMatch(/^value +\{"ok":true\}$/m);
    expect(resolved).toMatch(/^settled +\S+ \(after [^)]+\)$/m);
  });

  it("prints the raw response data with --json, values base64 of JSON as the SDKs encode them", async () => {
    const id = uniqueId("json");
    const data = await okJson<{ promise: PromiseRecord }>(
      "promises",
      "create",
      id,
      "--timeout",
      "1h",
      "--param",
      '["é", 1]',
      "--tag",
      "team=payments",
      "--tag",
      "note=a=b",
      "--external",
    );
    expect(data.promise.id).toBe(id);
    expect(decode(data.promise.param.data)).toEqual(["é", 1]);
    expect(data.promise.tags).toEqual({ team: "payments", note: "a=b", "resonate:external": "true" });
    expect(data.promise.timeoutAt - data.promise.createdAt).toBeGreaterThan(3_500_000);
    expect(data.promise.timeoutAt - data.promise.createdAt).toBeLessThanOrEqual(3_600_000);

    const fetched = await okJson<{ promise: PromiseRecord }>("promises", "get", id);
    expect(fetched).toEqual(data);
  });

  it("targets a worker group by anycast with --target", async () => {
    const id = uniqueId("targeted");
    const data = await okJson<{ promise: PromiseRecord }>(
      "promises",
      "create",
      id,
      "--timeout",
      "1m",
      "--target",
      "billing",
    );
    expect(data.promise.tags["resonate:target"]).toBe("poll://any@billing");
    const task = await okJson<{ task: TaskRecord }>("tasks", "get", id);
    expect(task.task).toMatchObject({ id, state: "pending", version: 0 });
  });

  it("rejects and cancels, showing each state plainly", async () => {
    const rejected = uniqueId("rejected");
    const canceled = uniqueId("canceled");
    await ok("promises", "create", rejected, "--timeout", "1m");
    await ok("promises", "create", canceled, "--timeout", "1m");
    expect(await ok("promises", "reject", rejected, "--value", '"no"')).toMatch(/^state +rejected$/m);
    expect(await ok("promises", "cancel", canceled)).toMatch(/^state +rejected_canceled$/m);
    // Settling again is absorbed: the first settlement stands.
    const again = await okJson<{ promise: PromiseRecord }>("promises", "resolve", rejected, "--value", "1");
    expect(again.promise.state).toBe("rejected");
    expect(decode(again.promise.value.data)).toBe("no");
  });

  it("shows a value that is not base64 JSON raw", async () => {
    const id = uniqueId("raw");
    // Write a raw value with the protocol directly, as a non-SDK client could.
    const response = await fetch(server.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        kind: "promise.create",
        head: { corrId: "raw-1", version: "2026-04-01" },
        data: { id, timeoutAt: Date.now() + 60_000, param: { data: "not base64 json!" } },
      }),
    });
    expect(response.status).toBe(200);
    expect(await ok("promises", "get", id)).toMatch(/^param +not base64 json! \(raw\)$/m);
  });

  it("exits 1 with a one-line reason for a promise that does not exist", async () => {
    const outcome = await run("promises", "get", uniqueId("missing"));
    expect(outcome.code).toBe(1);
    expect(outcome.stdout).toBe("");
    expect(outcome.stderr).toMatch(ONE_LINE_REASON);
    expect(outcome.stderr).toContain("404");
    const settle = await run("promises", "resolve", uniqueId("missing"));
    expect(settle.code).toBe(1);
    expect(settle.stderr).toMatch(ONE_LINE_REASON);
  });

  it("searches by id prefix, state and tag, pages with --cursor and follows every page with --all", async () => {
    const stem = uniqueId("batch");
    for (const n of [1, 2, 3, 4, 5]) {
      await ok(
        "promises",
        "create",
        `${stem}.${n}`,
        "--timeout",
        "10m",
        "--tag",
        `parity=${n % 2 ? "odd" : "even"}`,
      );
    }
    await ok("promises", "resolve", `${stem}.2`);

    const all = await okJson<{ promises: PromiseRecord[]; cursor?: string }>(
      "promises",
      "search",
      "--id",
      `${stem}.*`,
    );
    expect(all.promises.map((p) => p.id)).toEqual([1, 2, 3, 4, 5].map((n) => `${stem}.${n}`));
    expect(all.cursor).toBeUndefined();

    const pending = await okJson<{ promises: PromiseRecord[] }>(
      "promises",
      "search",
      "--id",
      `${stem}.*`,
      "--state",
      "pending",
    );
    expect(pending.promises.map((p) => p.id)).toEqual([1, 3, 4, 5].map((n) => `${stem}.${n}`));

    const odd = await okJson<{ promises: PromiseRecord[] }>(
      "promises",
      "search",
      "--id",
      `${stem}.*`,
      "--tag",
      "parity=odd",
    );
    expect(odd.promises.map((p) => p.id)).toEqual([1, 3, 5].map((n) => `${stem}.${n}`));

    const first = await okJson<{ promises: PromiseRecord[]; cursor?: string }>(
      "promises",
      "search",
      "--id",
      `${stem}.*`,
      "--limit",
      "2",
    );
    expect(first.promises).toHaveLength(2);
    expect(first.cursor).toBeDefined();
    const second = await okJson<{ promises: PromiseRecord[] }>(
      "promises",
      "search",
      "--id",
      `${stem}.*`,
      "--limit",
      "2",
      "--cursor",
      first.cursor ?? "",
    );
    expect(second.promises.map((p) => p.id)).toEqual([`${stem}.3`, `${stem}.4`]);

    const followed = await okJson<{ promises: PromiseRecord[]; cursor?: string }>(
      "promises",
      "search",
      "--id",
      `${stem}.*`,
      "--limit",
      "2",
      "--all",
    );
    expect(followed).toEqual({ promises: all.promises });

    const human = await ok("promises", "search", "--id", `${stem}.*`, "--limit", "2");
    const lines = human.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID +STATE +FUNCTION +CREATED +TIMEOUT +VALUE$/);
    expect(lines[1]).toMatch(new RegExp(`^${stem.replace(/[.]/g, "\\.")}\\.1 +pending +- +\\S+Z +\\S+Z +-$`));
    expect(lines[2]).toMatch(/ resolved /);
    expect(lines[3]).toMatch(/^more promises: --cursor \S+ \(or --all\)$/);
    // Columns line up: every row's STATE starts where the header's does.
    const stateColumn = lines[0]?.indexOf("STATE");
    expect(lines[1]?.indexOf("pending")).toBe(stateColumn);
    expect(lines[2]?.indexOf("resolved")).toBe(stateColumn);
  });

  it("exits 2 with a one-line reason for bad usage, before sending anything", async () => {
    for (const args of [
      ["promises", "create", uniqueId("u"), "--timeout", "5 minutes"],
      ["promises", "create", uniqueId("u"), "--timeout", "5m", "--param", "{oops"],
      ["promises", "create", uniqueId("u")],
      ["promises", "search", "--state", "finished"],
      ["promises", "get"],
      ["promises", "frobnicate", "x"],
      ["tasks", "search", "--limit", "5000"],
    ]) {
      const outcome = await run(...args);
      expect(outcome.code, args.join(" ")).toBe(2);
      expect(outcome.stdout, args.join(" ")).toBe("");
      expect(outcome.stderr, args.join(" ")).toMatch(ONE_LINE_REASON);
    }
  });

  it("exits 1 with a one-line reason when the server cannot be reached", async () => {
    const outcome = await pledge(["promises", "get", "x", "--url", "http://127.0.0.1:9"]);
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toMatch(ONE_LINE_REASON);
    expect(outcome.stderr).toContain("cannot reach http://127.0.0.1:9");
  });
});

describe("authentication", () => {
  it("sends --token or PLEDGE_TOKEN as a bearer token, and says so when it is missing", async () => {
    const id = uniqueId("secure");
    const missing = await pledge(["promises", "create", id, "--timeout", "1m"], {
      env: { PLEDGE_URL: secured.url },
    });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(ONE_LINE_REASON);
    expect(missing.stderr).toContain("401");
    expect(missing.stderr).toContain("--token");

    const withFlag = await pledge([
      "promises",
      "create",
      id,
      "--timeout",
      "1m",
      "--token",
      TOKEN,
      "--url",
      secured.url,
    ]);
    expect(withFlag.code, withFlag.stderr).toBe(0);
    const withEnv = await pledge(["promises", "get", id], {
      env: { PLEDGE_URL: secured.url, PLEDGE_TOKEN: TOKEN },
    });
    expect(withEnv.code, withEnv.stderr).toBe(0);
    expect(withEnv.stdout).toMatch(/^state +pending$/m);
  });
});

describe("pledge invoke, tasks and tree", () => {
  it("invokes a function on a worker group as the SDKs do and prints the promise", async () => {
    const id = uniqueId("invoke");
    const human = await ok(
      "invoke",
      id,
      "--func",
      "checkout",
      "--arg",
      '{"cart":7}',
      "--arg",
      "3",
      "--target",
      "shop",
    );
    expect(human).toMatch(/^function +checkout$/m);
    expect(human).toMatch(/^state +pending$/m);

    const { promise } = await okJson<{ promise: PromiseRecord }>("promises", "get", id);
    expect(decode(promise.param.data)).toEqual({ func: "checkout", args: [{ cart: 7 }, 3], version: 1 });
    expect(promise.tags).toMatchObject({
      "resonate:target": "poll://any@shop",
      "resonate:scope": "global",
      "resonate:origin": id,
      "resonate:branch": id,
      "resonate:parent": id,
    });
    const day = promise.timeoutAt - promise.createdAt;
    expect(day).toBeGreaterThan(24 * 3_600_000 - 60_000);
    expect(day).toBeLessThanOrEqual(24 * 3_600_000);

    const defaults = await okJson<{ promise: PromiseRecord }>(
      "invoke",
      uniqueId("invoke"),
      "--func",
      "f",
      "--timeout",
      "90s",
    );
    expect(defaults.promise.tags["resonate:target"]).toBe("poll://any@default");
    expect(decode(defaults.promise.param.data)).toEqual({ func: "f", args: [], version: 1 });
    expect(defaults.promise.timeoutAt - defaults.promise.createdAt).toBeLessThanOrEqual(90_000);
  });

  it("gets a task and finds it by state", async () => {
    const id = uniqueId("task");
    await ok("invoke", id, "--func", "work");
    const human = await ok("tasks", "get", id);
    expect(human).toMatch(new RegExp(`^id +${id}$`, "m"));
    expect(human).toMatch(/^state +pending$/m);
    expect(human).toMatch(/^version +0$/m);

    const found = await okJson<{ tasks: TaskRecord[] }>("tasks", "search", "--state", "pending", "--all");
    expect(found.tasks.map((task) => task.id)).toContain(id);
    const table = await ok("tasks", "search", "--state", "pending", "--all");
    expect(table.split("\n")[0]).toMatch(/^ID +STATE +VERSION +RESUMES +PID +TTL$/);
    expect(table).toMatch(new RegExp(`^${id} +pending +0 +0 +- +-$`, "m"));

    const missing = await run("tasks", "get", uniqueId("no-task"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(ONE_LINE_REASON);
  });

  it("draws the call graph under a promise by resonate:parent, else by id prefix", async () => {
    const root = uniqueId("tree");
    await ok("invoke", root, "--func", "main");
    const child = (id: string, parent: string, func: string): Promise<string> =>
      ok(
        "promises",
        "create",
        id,
        "--timeout",
        "10m",
        "--param",
        JSON.stringify({ func, args: [], version: 1 }),
        "--tag",
        `resonate:parent=${parent}`,
        "--tag",
        `resonate:origin=${root}`,
      );
    await child(`${root}:1`, root, "charge");
    await child(`${root}:1.1`, `${root}:1`, "audit");
    await child(`${root}:2`, root, "ship");
    await ok("promises", "create", `${root}.9`, "--timeout", "10m"); // no lineage tags: found by id
    await ok("promises", "resolve", `${root}:1.1`, "--value", "1");
    await ok("promises", "resolve", `${root}:1`, "--value", "2");

    const human = await ok("tree", root);
    expect(human).not.toContain("\u001b"); // stdout is a pipe here: plain text, no colour
    const lines = human.trimEnd().split("\n");
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(new RegExp(`^${root} +pending +main +\\S+ so far$`));
    expect(lines[1]).toMatch(new RegExp(`^├─ ${root}:1 +resolved +charge +\\S+$`));
    expect(lines[2]).toMatch(new RegExp(`^│  └─ ${root}:1\\.1 +resolved +audit +\\S+$`));
    expect(lines[3]).toMatch(new RegExp(`^├─ ${root}:2 +pending +ship +`));
    expect(lines[4]).toMatch(new RegExp(`^└─ ${root}\\.9 +pending +- +`));

    interface Node {
      promise: PromiseRecord;
      children: Node[];
    }
    const tree = await okJson<Node>("tree", root);
    const shape = (node: Node): unknown => [node.promise.id, node.children.map(shape)];
    expect(shape(tree)).toEqual([
      root,
      [
        [`${root}:1`, [[`${root}:1.1`, []]]],
        [`${root}:2`, []],
        [`${root}.9`, []],
      ],
    ]);

    const missing = await run("tree", uniqueId("no-tree"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(ONE_LINE_REASON);
  });
});

describe("pledge schedules", () => {
  it("creates, gets, searches and deletes a schedule", async () => {
    const id = uniqueId("nightly");
    const human = await ok(
      "schedules",
      "create",
      id,
      "--cron",
      "0 3 * * *",
      "--promise-id",
      "{{.id}}-{{.timestamp}}",
      "--promise-timeout",
      "1h",
      "--param",
      '{"func":"report","args":[],"version":1}',
      "--tag",
      `suite=${id}`,
      "--target",
      "reports",
    );
    expect(human).toMatch(new RegExp(`^id +${id}$`, "m"));
    expect(human).toMatch(/^cron +0 3 \* \* \*$/m);
    expect(human).toMatch(/^promise timeout +1h$/m);
    expect(human).toMatch(/^next run +\S+T03:00:00\.000Z \(in [^)]+\)$/m);

    const { schedule } = await okJson<{ schedule: ScheduleRecord }>("schedules", "get", id);
    expect(schedule).toMatchObject({
      id,
      cron: "0 3 * * *",
      promiseId: "{{.id}}-{{.timestamp}}",
      promiseTimeout: 3_600_000,
    });
    expect(schedule.promiseTags).toEqual({ suite: id, "resonate:target": "poll://any@reports" });
    expect(decode(schedule.promiseParam.data)).toEqual({ func: "report", args: [], version: 1 });

    const found = await okJson<{ schedules: ScheduleRecord[] }>(
      "schedules",
      "search",
      "--tag",
      `suite=${id}`,
    );
    expect(found.schedules.map((s) => s.id)).toEqual([id]);
    expect(await ok("schedules", "search", "--tag", `suite=${id}`)).toMatch(
      new RegExp(`^${id} +0 3 \\* \\* \\* `, "m"),
    );

    expect(await ok("schedules", "delete", id)).toBe(`deleted schedule ${id}\n`);
    const gone = await run("schedules", "get", id);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(ONE_LINE_REASON);
    expect(gone.stderr).toContain("404");
    expect((await run("schedules", "delete", id)).code).toBe(1);
  });

  it("exits 2 for a bad promise timeout and 1 for a cron the server refuses", async () => {
    const badTimeout = await run(
      "schedules",
      "create",
      uniqueId("s"),
      "--cron",
      "* * * * *",
      "--promise-id",
      "p",
      "--promise-timeout",
      "soon",
    );
    expect(badTimeout.code).toBe(2);
    expect(badTimeout.stderr).toMatch(ONE_LINE_REASON);
    const badCron = await run(
      "schedules",
      "create",
      uniqueId("s"),
      "--cron",
      "every tuesday",
      "--promise-id",
      "p",
      "--promise-timeout",
      "1m",
    );
    expect(badCron.code).toBe(1);
    expect(badCron.stderr).toMatch(ONE_LINE_REASON);
    expect(badCron.stderr).toContain("400");
  });
});
