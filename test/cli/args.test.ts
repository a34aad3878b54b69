/**
 * Unit tests of the CLI's parsing, formatting and tree walk, in process and
 * without a server: what the `pledge` command makes of its arguments before it
 * sends anything, and what it prints from records it is given.
 */
import { describe, expect, it } from "vitest";
import {
  byteSizeArgument,
  encodeJson,
  limitArgument,
  resolveConnection,
  tagsArgument,
  targetAddress,
} from "../../src/cli/args.js";
import { invocationRequest } from "../../src/cli/commands.js";
import { UsageError } from "../../src/cli/errors.js";
import {
  decodeValue,
  formatPromise,
  functionName,
  table,
  useColor,
  valueText,
} from "../../src/cli/format.js";
import { type CliIo, runCli } from "../../src/cli/program.js";
import { isLoopbackHost, resolveServeOptions } from "../../src/cli/serve.js";
import { buildTree, renderTree, type TreeSource } from "../../src/cli/tree.js";
import { DEFAULT_SERVE_OPTIONS } from "../../src/node/options.js";
import type { PromiseRecord } from "../../src/protocol/records.js";

function promise(id: string, overrides: Partial<PromiseRecord> = {}): PromiseRecord {
  return {
    id,
    state: "pending",
    param: {},
    value: {},
    tags: {},
    timeoutAt: 10_000,
    createdAt: 0,
    ...overrides,
  };
}

describe("serve options", () => {
  it("defaults to DEFAULT_SERVE_OPTIONS when no flag or variable is given", () => {
    const { options } = resolveServeOptions({}, {});
    expect(options).toEqual(DEFAULT_SERVE_OPTIONS);
    expect(options.retainMs).toBeUndefined();
  });

  it("reads every flag into milliseconds and bytes", () => {
    const { options } = resolveServeOptions(
      {
        port: "9001",
        host: "localhost",
        store: "memory",
        authToken: "secret",
        debug: true,
        insecure: true,
        sync: "normal",
        maxBody: "512KiB",
        retryTimeout: "2s",
        unblockTtl: "30m",
        logLevel: "warn",
      },
      {},
    );
    expect(options).toEqual({
      ...DEFAULT_SERVE_OPTIONS,
      port: 9001,
      host: "localhost",
      store: "memory",
      authToken: "secret",
      debug: true,
      insecure: true,
      sync: "normal",
      maxBodyBytes: 512 * 1024,
      retryTimeoutMs: 2000,
      unblockTtlMs: 30 * 60_000,
      logLevel: "warn",
    });
  });

  it("reads --retain (or PLEDGE_RETAIN) into retainMs; absent, settled records are kept forever", () => {
    expect(resolveServeOptions({ retain: "7d" }, {}).options.retainMs).toBe(7 * 24 * 3_600_000);
    expect(resolveServeOptions({}, { PLEDGE_RETAIN: "90m" }).options.retainMs).toBe(90 * 60_000);
    expect(resolveServeOptions({ retain: "1h" }, { PLEDGE_RETAIN: "90m" }).options.retainMs).toBe(3_600_000);
    expect(resolveServeOptions({}, {}).options).not.toHaveProperty("retainMs");
  });

  it("reads PLEDGE_<FLAG> variables, and a flag wins over its variable", () => {
    const env = {
      PLEDGE_PORT: "7000",
      PLEDGE_STORE: "sqlite:/tmp/x.db",
      PLEDGE_AUTH_TOKEN: "from-env",
      PLEDGE_RETRY_TIMEOUT: "10s",
      PLEDGE_MAX_BODY: "1MiB",
      PLEDGE_DEBUG: "true",
      PLEDGE_SYNC: "normal",
      PLEDGE_LOG_LEVEL: "error",
      PLEDGE_UNBLOCK_TTL: "5m",
    };
    const { options } = resolveServeOptions({ port: "7001", authToken: "from-flag" }, env);
    expect(options.port).toBe(7001);
    expect(options.authToken).toBe("from-flag");
    expect(options.store).toBe("sqlite:/tmp/x.db");
    expect(options.retryTimeoutMs).toBe(10_000);
    expect(options.maxBodyBytes).toBe(1024 * 1024);
    expect(options.debug).toBe(true);
    expect(options.sync).toBe("normal");
    expect(options.logLevel).toBe("error");
    expect(options.unblockTtlMs).toBe(300_000);
  });

  it("reads PLEDGE_DEBUG=false as off rather than as a set flag", () => {
    expect(resolveServeOptions({}, { PLEDGE_DEBUG: "false" }).options.debug).toBe(false);
  });

  it.each([
    [{ port: "eighty" }, {}, "--port"],
    [{ port: "70000" }, {}, "--port"],
    [{ retryTimeout: "5" }, {}, "--retry-timeout"],
    [{ retryTimeout: "0s" }, {}, "--retry-timeout"],
    [{ unblockTtl: "soon" }, {}, "--unblock-ttl"],
    [{ retain: "forever" }, {}, "--retain"],
    [{ maxBody: "10 potatoes" }, {}, "--max-body"],
    [{ sync: "sometimes" }, {}, "--sync"],
    [{ logLevel: "loud" }, {}, "--log-level"],
    [{}, { PLEDGE_RETRY_TIMEOUT: "5x" }, "PLEDGE_RETRY_TIMEOUT"],
    [{}, { PLEDGE_INSECURE: "maybe" }, "PLEDGE_INSECURE"],
    [{}, { PLEDGE_RETAIN: "1w" }, "PLEDGE_RETAIN"],
    [{ retain: "0s" }, {}, "--retain"],
  ])("refuses garbage %j %j naming %s", (flags, env, source) => {
    expect(() => resolveServeOptions(flags, env)).toThrow(UsageError);
    expect(() => resolveServeOptions(flags, env)).toThrow(source);
  });

  it("refuses a non-loopback host without a token unless insecure", () => {
    expect(() => resolveServeOptions({ host: "0.0.0.0" }, {})).toThrow(
      /refusing to serve on non-loopback host 0.0.0.0/,
    );
    expect(resolveServeOptions({ host: "0.0.0.0", insecure: true }, {}).options.host).toBe("0.0.0.0");
    expect(resolveServeOptions({ host: "0.0.0.0", authToken: "t" }, {}).options.authToken).toBe("t");
    expect(resolveServeOptions({}, { PLEDGE_HOST: "0.0.0.0", PLEDGE_INSECURE: "1" }).options.insecure).toBe(
      true,
    );
  });

  it.each([
    ["127.0.0.1", true],
    ["127.1.2.3", true],
    ["localhost", true],
    ["::1", true],
    ["[::1]", true],
    ["::ffff:127.0.0.1", true],
    ["0.0.0.0", false],
    ["::", false],
    ["10.0.0.5", false],
    ["example.com", false],
  ])("counts %s as loopback: %s", (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });
});

describe("argument parsing", () => {
  it.each([
    ["10MiB", 10 * 1024 * 1024],
    ["512KiB", 512 * 1024],
    ["1MB", 1_000_000],
    ["2048", 2048],
    ["1gib", 1024 ** 3],
  ])("reads the size %s as %d bytes", (text, bytes) => {
    expect(byteSizeArgument("--max-body", text)).toBe(bytes);
  });

  it.each(["", "0", "ten", "10XB", "-1"])("refuses the size %j", (text) => {
    expect(() => byteSizeArgument("--max-body", text)).toThrow(UsageError);
  });

  it("reads tags as key=value, allowing = in the value", () => {
    expect(tagsArgument("--tag", ["a=1", "b=x=y", "c="])).toEqual({ a: "1", b: "x=y", c: "" });
    expect(() => tagsArgument("--tag", ["novalue"])).toThrow(/expected key=value/);
    expect(() => tagsArgument("--tag", ["=v"])).toThrow(UsageError);
  });

  it("accepts a limit of 1-1000 only", () => {
    expect(limitArgument("1000")).toBe(1000);
    expect(limitArgument(undefined)).toBeUndefined();
    for (const text of ["0", "1001", "ten", "1.5"]) expect(() => limitArgument(text)).toThrow(UsageError);
  });

  it("addresses a target group by anycast and keeps a full address as given", () => {
    expect(targetAddress("payments")).toBe("poll://any@payments");
    expect(targetAddress("http://worker:3000/hook")).toBe("http://worker:3000/hook");
  });

  it("takes --url over PLEDGE_URL over the default, and refuses a non-http URL", () => {
    expect(resolveConnection({}, {})).toEqual({ url: "http://127.0.0.1:8001", token: undefined });
    expect(resolveConnection({}, { PLEDGE_URL: "http://a:1", PLEDGE_TOKEN: "t" })).toEqual({
      url: "http://a:1",
      token: "t",
    });
    expect(resolveConnection({ url: "http://b:2", token: "u" }, { PLEDGE_URL: "http://a:1" }).url).toBe(
      "http://b:2",
    );
    expect(() => resolveConnection({ url: "ftp://x" }, {})).toThrow(UsageError);
    expect(() => resolveConnection({ url: "not a url" }, {})).toThrow(/--url/);
  });
});

describe("values", () => {
  it("encodes JSON as base64 of its text, as the SDKs do, and decodes it back", () => {
    const value = encodeJson({ a: [1, "é"] });
    expect(Buffer.from(value.data ?? "", "base64").toString("utf8")).toBe('{"a":[1,"é"]}');
    expect(decodeValue(value)).toEqual({ kind: "json", value: { a: [1, "é"] } });
  });

  it("shows a value that is not base64 JSON raw, and an empty one as -", () => {
    expect(decodeValue({ data: "hello world" })).toEqual({ kind: "raw", data: "hello world" });
    expect(valueText({ data: "aGVsbG8=" })).toBe("aGVsbG8= (raw)"); // base64 of "hello", not JSON
    expect(valueText({})).toBe("-");
    expect(valueText({ data: "" })).toBe("-");
  });

  it("shows an encoded error as Name: message", () => {
    expect(valueText(encodeJson({ __type: "error", name: "TypeError", message: "boom", stack: "…" }))).toBe(
      "TypeError: boom",
    );
  });

  it("names the function of an invocation and of a timer", () => {
    expect(functionName(promise("a", { param: encodeJson({ func: "charge", args: [], version: 1 }) }))).toBe(
      "charge",
    );
    expect(functionName(promise("t", { tags: { "resonate:timer": "true" } }))).toBe("sleep");
    expect(functionName(promise("x"))).toBeUndefined();
  });

  it("prints a promise with aligned labels and its state plainly", () => {
    const text = formatPromise(
      promise("p1", {
        state: "resolved",
        value: encodeJson(42),
        tags: { b: "2", a: "1" },
        createdAt: 0,
        settledAt: 1500,
      }),
      2000,
    );
    expect(text).toContain("state    resolved\n");
    expect(text).toContain("value    42\n");
    expect(text).toContain("tags     a=1\n         b=2\n");
    expect(text).toContain("settled  1970-01-01T00:00:01.500Z (after 1.5s)\n");
  });

  it("aligns table columns", () => {
    expect(
      table(
        ["ID", "STATE"],
        [
          ["a-long-id", "pending"],
          ["b", "resolved"],
        ],
      ),
    ).toBe("ID         STATE\na-long-id  pending\nb          resolved\n");
  });
});

describe("invoke", () => {
  it("makes a root invocation the way the SDKs do", () => {
    const request = invocationRequest({
      id: "order-1",
      func: "checkout",
      args: [1, { a: 2 }],
      group: "default",
      timeoutAt: 99,
    });
    expect(request.timeoutAt).toBe(99);
    expect(decodeValue(request.param)).toEqual({
      kind: "json",
      value: { func: "checkout", args: [1, { a: 2 }], version: 1 },
    });
    expect(request.tags).toEqual({
      "resonate:target": "poll://any@default",
      "resonate:scope": "global",
      "resonate:origin": "order-1",
      "resonate:branch": "order-1",
      "resonate:parent": "order-1",
      "resonate:prefix": "order-1",
    });
  });
});

describe("tree", () => {
  function source(promises: PromiseRecord[]): TreeSource & { searches: number } {
    const result = {
      searches: 0,
      async getPromise(id: string) {
        const found = promises.find((p) => p.id === id);
        if (found === undefined) throw new Error(`no ${id}`);
        return found;
      },
      async searchPromises(data: Record<string, unknown>) {
        result.searches += 1;
        const tags = (data.tags ?? {}) as Record<string, string>;
        const prefix = typeof data.id === "string" ? data.id.slice(0, -1) : undefined;
        return promises.filter(
          (p) =>
            Object.entries(tags).every(([k, v]) => p.tags[k] === v) &&
            (prefix === undefined || p.id.startsWith(prefix)),
        );
      },
    };
    return result;
  }

  it("finds children by resonate:parent, then untagged ones by id, ordered by creation", async () => {
    const root = promise("r", {
      state: "resolved",
      param: encodeJson({ func: "main", args: [] }),
      tags: { "resonate:parent": "r", "resonate:origin": "r" },
      createdAt: 0,
      settledAt: 1200,
    });
    const second = promise("r:2", {
      tags: { "resonate:parent": "r" },
      createdAt: 20,
      param: encodeJson({ func: "ship" }),
    });
    const first = promise("r:1", {
      state: "resolved",
      tags: { "resonate:parent": "r" },
      createdAt: 10,
      settledAt: 310,
      param: encodeJson({ func: "charge" }),
    });
    const grandchild = promise("r:1.1", {
      state: "resolved",
      tags: { "resonate:parent": "r:1" },
      createdAt: 11,
      settledAt: 21,
    });
    const untagged = promise("r.9", { createdAt: 30 });
    const untaggedDeeper = promise("r.9.1", { createdAt: 31 });
    const elsewhere = promise("r.x", { tags: { "resonate:parent": "other" }, createdAt: 5 });
    const tree = await buildTree(
      "r",
      source([root, second, first, grandchild, untagged, untaggedDeeper, elsewhere]),
    );
    expect(tree.children.map((child) => child.promise.id)).toEqual(["r:1", "r:2", "r.9"]);
    expect(tree.children[0]?.children.map((child) => child.promise.id)).toEqual(["r:1.1"]);
    expect(tree.children[2]?.children.map((child) => child.promise.id)).toEqual(["r.9.1"]);
    expect(renderTree(tree, 1000)).toBe(
      [
        "r            resolved  main    1.2s",
        "├─ r:1       resolved  charge  300ms",
        "│  └─ r:1.1  resolved  -       10ms",
        "├─ r:2       pending   ship    980ms so far",
        "└─ r.9       pending   -       970ms so far",
        "   └─ r.9.1  pending   -       969ms so far",
        "",
      ].join("\n"),
    );
  });

  it("colours states on a terminal without moving a column, and never when NO_COLOR is set or not a TTY", async () => {
    const root = promise("c", { param: encodeJson({ func: "main" }), createdAt: 0 });
    const done = promise("c.1", { state: "resolved", createdAt: 1, settledAt: 5 });
    const failed = promise("c.2", { state: "rejected", createdAt: 2, settledAt: 9 });
    const tree = await buildTree("c", source([root, done, failed]));
    const plain = renderTree(tree, 1000);
    const colored = renderTree(tree, 1000, { color: true });
    expect(plain).not.toContain("\u001b");
    expect(colored).toContain("\u001b[33mpending ");
    expect(colored).toContain("\u001b[32mresolved");
    expect(colored).toContain("\u001b[31mrejected");
    // Stripping the escapes gives back the plain rendering, character for character.
    expect(colored.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g"), "")).toBe(plain);
    expect(useColor({ stdoutIsTty: true, env: {} })).toBe(true);
    expect(useColor({ stdoutIsTty: true, env: { NO_COLOR: "1" } })).toBe(false);
    expect(useColor({ stdoutIsTty: false, env: {} })).toBe(false);
    expect(useColor({ env: {} })).toBe(false);
  });

  it("visits each promise once even when the tags form a cycle", async () => {
    const a = promise("a", { tags: { "resonate:parent": "b" } });
    const b = promise("b", { tags: { "resonate:parent": "a" } });
    const tree = await buildTree("a", source([a, b]));
    expect(tree.children.map((child) => child.promise.id)).toEqual(["b"]);
    expect(tree.children[0]?.children).toEqual([]);
  });
});

describe("runCli without a server", () => {
  function io(env: Record<string, string> = {}): CliIo & { out: string; err: string } {
    const captured = {
      out: "",
      err: "",
      stdout(text: string) {
        captured.out += text;
      },
      stderr(text: string) {
        captured.err += text;
      },
      env,
      now: () => 0,
      waitForStop: () => new Promise<string>(() => {}),
    };
    return captured;
  }

  it.each([
    [["promises", "get"]],
    [["promises", "get", "x", "--bogus"]],
    [["promises", "create", "x"]],
    [["promises", "create", "x", "--timeout", "soon"]],
    [["promises", "create", "x", "--timeout", "5m", "--param", "{not json"]],
    [["promises", "search", "--state", "done"]],
    [["promises", "search", "--limit", "0"]],
    [["tasks", "search", "--state", "resolved"]],
    [["invoke", "x"]],
    [["invoke", "x", "--func", "f", "--arg", "nope"]],
    [["schedules", "create", "s", "--cron", "* * * * *", "--promise-id", "p", "--promise-timeout", "1x"]],
    [["serve", "--host", "0.0.0.0"]],
    [["serve", "--retain", "forever"]],
    [["serve", "--sync", "sometimes"]],
    [["nonsense"]],
  ])("exits 2 with a one-line reason for %j", async (argv) => {
    const captured = io();
    expect(await runCli(argv, captured)).toBe(2);
    expect(captured.out).toBe("");
    expect(captured.err).toMatch(/^pledge: [^\n]+\n$/);
  });

  it("exits 2 on a bad PLEDGE_URL before sending anything", async () => {
    const captured = io({ PLEDGE_URL: "nowhere" });
    expect(await runCli(["promises", "get", "x"], captured)).toBe(2);
    expect(captured.err).toContain("PLEDGE_URL");
  });

  it("exits 0 for --help and --version", async () => {
    const help = io();
    expect(await runCli(["--help"], help)).toBe(0);
    expect(help.out).toContain("promises");
    const version = io();
    expect(await runCli(["--version"], version)).toBe(0);
    expect(version.out).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("exits 1 with a one-line reason when the server cannot be reached", async () => {
    const captured = io();
    expect(await runCli(["promises", "get", "x", "--url", "http://127.0.0.1:9"], captured)).toBe(1);
    expect(captured.err).toMatch(/^pledge: promise\.get: cannot reach http:\/\/127\.0\.0\.1:9[^\n]*\n$/);
  });
});
