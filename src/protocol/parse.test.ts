import { describe, expect, it } from "vitest";
import { AssertionError } from "../lib/assert.js";
import { decodeBody } from "./decode.js";
import { ERROR_CATALOGUE, type ErrorCode, isErrorCode, protocolError } from "./errors.js";
import { FAST_CHECKED, type FastChecked, failureResponse, type ParseFailure, parseRequest } from "./parse.js";
import { PROTOCOL_VERSION } from "./records.js";
import { REQUEST_KINDS, type Request } from "./requests.js";

const encoder = new TextEncoder();
const DEBUG = { debug: true };
const PRODUCTION = { debug: false };

function envelope(kind: string, data: unknown, head: Record<string, unknown> = {}): Record<string, unknown> {
  return { kind, head: { corrId: "c1", version: PROTOCOL_VERSION, ...head }, data };
}

function accept(kind: string, data: unknown, options = DEBUG, head: Record<string, unknown> = {}): Request {
  const result = parseRequest(envelope(kind, data, head), options);
  if (!result.ok) throw new Error(`expected ${kind} to be accepted, got: ${result.failure.message}`);
  return result.request;
}

function reject(json: unknown, options = DEBUG): ParseFailure {
  const result = parseRequest(json, options);
  if (result.ok) throw new Error(`expected a failure, got: ${JSON.stringify(result.request)}`);
  // V1: the message starts with the field at fault.
  expect(result.failure.message.startsWith(`${result.failure.field ?? "body"}: `)).toBe(true);
  return result.failure;
}

function rejectData(kind: string, data: unknown, options = DEBUG): ParseFailure {
  return reject(envelope(kind, data), options);
}

/** V3: no `undefined` anywhere in an accepted request. */
function hasUndefined(value: unknown): boolean {
  if (value === undefined) return true;
  if (typeof value !== "object" || value === null) return false;
  return Object.values(value).some(hasUndefined);
}

const FUTURE = 10_000;

describe("decodeBody", () => {
  it("decodes a UTF-8 JSON body and reads kind, corrId and auth", () => {
    const body = encoder.encode(JSON.stringify(envelope("promise.get", { id: "p" }, { auth: "token" })));
    const result = decodeBody(body);
    expect(result).toEqual({
      ok: true,
      json: envelope("promise.get", { id: "p" }, { auth: "token" }),
      text: JSON.stringify(envelope("promise.get", { id: "p" }, { auth: "token" })),
      kind: "promise.get",
      corrId: "c1",
      auth: "token",
    });
  });

  it("omits auth when head.auth is absent or not a string", () => {
    const absent = decodeBody(encoder.encode(JSON.stringify(envelope("promise.get", {}))));
    expect(absent.ok && "auth" in absent).toBe(false);
    const number = decodeBody(encoder.encode(JSON.stringify(envelope("promise.get", {}, { auth: 7 }))));
    expect(number.ok && "auth" in number).toBe(false);
  });

  it("answers 400 invalid_encoding for a body that is not UTF-8", () => {
    const result = decodeBody(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
    expect(result).toEqual({
      ok: false,
      failure: {
        status: 400,
        kind: "unknown",
        corrId: "0",
        code: "invalid_encoding",
        message: "body: not valid UTF-8",
      },
    });
  });

  it("answers 400 invalid_json for a body that is not JSON, naming the body", () => {
    const result = decodeBody(encoder.encode("{kind: promise.get"));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.failure).toMatchObject({ status: 400, kind: "unknown", corrId: "0", code: "invalid_json" });
    expect(result.failure.message).toMatch(/^body: not valid JSON/);
  });

  it("answers 400 invalid_json for an empty body", () => {
    const result = decodeBody(new Uint8Array());
    expect(result.ok === false && result.failure.code).toBe("invalid_json");
  });

  it("accepts any JSON value, leaving the envelope to parseRequest, with kind unknown and corrId 0", () => {
    expect(decodeBody(encoder.encode("[1,2]"))).toEqual({
      ok: true,
      json: [1, 2],
      text: "[1,2]",
      kind: "unknown",
      corrId: "0",
    });
    expect(decodeBody(encoder.encode("null"))).toEqual({
      ok: true,
      json: null,
      text: "null",
      kind: "unknown",
      corrId: "0",
    });
  });

  it("reads kind and corrId leniently from an otherwise invalid envelope", () => {
    const body = { kind: "promise.get", head: { corrId: "abc", version: "1999" }, data: 5 };
    expect(decodeBody(encoder.encode(JSON.stringify(body)))).toMatchObject({
      ok: true,
      kind: "promise.get",
      corrId: "abc",
    });
    const unreadable = { kind: 5, head: { corrId: 6 } };
    expect(decodeBody(encoder.encode(JSON.stringify(unreadable)))).toMatchObject({
      ok: true,
      kind: "unknown",
      corrId: "0",
    });
  });

  it("decodes multi-byte UTF-8 strings intact", () => {
    const result = decodeBody(encoder.encode(JSON.stringify(envelope("promise.get", { id: "café-☕" }))));
    expect(result.ok && (result.json as { data: { id: string } }).data.id).toBe("café-☕");
  });
});

describe("parseRequest: the envelope", () => {
  it("answers 400 for a top level that is not an object", () => {
    for (const json of [null, [], "x", 5, true]) {
      const failure = reject(json);
      expect(failure).toMatchObject({ status: 400, code: "invalid_envelope", kind: "unknown", corrId: "0" });
      expect(failure.field).toBeUndefined();
      expect(failure.message).toMatch(/^body: expected a JSON object/);
    }
  });

  it("answers 400 naming kind when it is missing, not a string or empty", () => {
    const missing = reject({ head: { corrId: "c", version: PROTOCOL_VERSION }, data: {} });
    expect(missing).toMatchObject({
      status: 400,
      code: "invalid_envelope",
      field: "kind",
      message: "kind: required",
    });
    const number = reject({ kind: 5, head: { corrId: "c", version: PROTOCOL_VERSION }, data: {} });
    expect(number).toMatchObject({ field: "kind", kind: "unknown", corrId: "c" });
    const empty = reject(envelope("", {}));
    expect(empty).toMatchObject({ status: 400, field: "kind", message: "kind: expected a non-empty string" });
  });

  it("answers 400 naming head when it is missing or not an object", () => {
    expect(reject({ kind: "promise.get", data: {} })).toMatchObject({
      field: "head",
      message: "head: required",
    });
    expect(reject({ kind: "promise.get", head: [], data: {} })).toMatchObject({
      field: "head",
      message: "head: expected an object",
    });
  });

  it("answers 400 naming head.corrId when it is missing or not a string", () => {
    const missing = reject({ kind: "promise.get", head: { version: PROTOCOL_VERSION }, data: {} });
    expect(missing).toMatchObject({ field: "head.corrId", message: "head.corrId: required", corrId: "0" });
    const number = reject({ kind: "promise.get", head: { corrId: 1, version: PROTOCOL_VERSION }, data: {} });
    expect(number).toMatchObject({ field: "head.corrId", message: "head.corrId: expected a string" });
  });

  it("accepts an empty corrId and echoes it", () => {
    const result = parseRequest(
      { kind: "promise.get", head: { corrId: "", version: PROTOCOL_VERSION }, data: { id: "p" } },
      PRODUCTION,
    );
    expect(result.ok && result.request.corrId).toBe("");
  });

  it("answers 400 naming head.version and the supported version when it is missing or wrong", () => {
    const missing = reject({ kind: "promise.get", head: { corrId: "c" }, data: { id: "p" } });
    expect(missing).toMatchObject({ status: 400, code: "invalid_envelope", field: "head.version" });
    expect(missing.message).toContain(PROTOCOL_VERSION);
    const wrong = reject(envelope("promise.get", { id: "p" }, { version: "2025-01-01" }));
    expect(wrong).toMatchObject({ status: 400, code: "unsupported_version", field: "head.version" });
    expect(wrong.message).toBe(
      `head.version: unsupported version "2025-01-01"; the supported version is "${PROTOCOL_VERSION}"`,
    );
    const number = reject(envelope("promise.get", { id: "p" }, { version: 2026 }));
    expect(number).toMatchObject({ field: "head.version" });
    expect(number.message).toContain(PROTOCOL_VERSION);
  });

  it("answers 400 naming data when it is missing or not an object", () => {
    const head = { corrId: "c", version: PROTOCOL_VERSION };
    expect(reject({ kind: "promise.get", head })).toMatchObject({ field: "data", message: "data: required" });
    for (const data of [null, [], "x", 1]) {
      expect(reject({ kind: "promise.get", head, data })).toMatchObject({
        status: 400,
        code: "invalid_envelope",
        field: "data",
        message: "data: expected an object",
      });
    }
  });

  it("answers 400 unknown_field for an unknown top-level field, naming it", () => {
    const failure = reject({ ...envelope("promise.get", { id: "p" }), extra: 1 });
    expect(failure).toMatchObject({
      status: 400,
      code: "unknown_field",
      field: "extra",
      message: "extra: unknown envelope field",
    });
  });

  it("accepts unknown head keys such as trace context", () => {
    const request = accept("promise.get", { id: "p" }, PRODUCTION, {
      traceparent: "00-abc-def-01",
      "x-custom": { nested: true },
    });
    expect(request).toEqual({ kind: "promise.get", corrId: "c1", data: { id: "p" } });
  });

  it("accepts head.auth and resonate:origin strings and answers 400 when they are not strings", () => {
    accept("promise.get", { id: "p" }, PRODUCTION, { auth: "t", "resonate:origin": "p" });
    expect(reject(envelope("promise.get", { id: "p" }, { auth: 5 }))).toMatchObject({
      status: 400,
      field: "head.auth",
      message: "head.auth: expected a string",
    });
    expect(reject(envelope("promise.get", { id: "p" }, { "resonate:origin": 5 }))).toMatchObject({
      field: 'head["resonate:origin"]',
      message: 'head["resonate:origin"]: expected a string',
    });
  });

  it("echoes kind and corrId from the body in failures", () => {
    const failure = rejectData("promise.create", { id: "p" });
    expect(failure).toMatchObject({ kind: "promise.create", corrId: "c1" });
  });

  it("checks the envelope and the version before the kind", () => {
    const failure = reject(envelope("no.such", { id: "p" }, { version: "old" }));
    expect(failure.code).toBe("unsupported_version");
  });
});

describe("parseRequest: kinds and debug mode", () => {
  it("answers 400 unknown_kind for a kind outside the protocol, naming it", () => {
    const failure = rejectData("promise.destroy", {});
    expect(failure).toMatchObject({
      status: 400,
      code: "unknown_kind",
      field: "kind",
      kind: "promise.destroy",
      message: 'kind: unknown kind "promise.destroy"',
    });
  });

  it("does not take inherited object properties for kinds", () => {
    expect(rejectData("constructor", {}).code).toBe("unknown_kind");
    expect(rejectData("__proto__", {}).code).toBe("unknown_kind");
  });

  it("answers 403 debug_disabled for every debug kind when debug mode is off", () => {
    for (const kind of ["debug.start", "debug.stop", "debug.reset", "debug.tick", "debug.snap"]) {
      const failure = rejectData(kind, {}, PRODUCTION);
      expect(failure).toMatchObject({ status: 403, code: "debug_disabled", field: "kind", kind });
    }
  });

  it("answers an unknown debug kind 400 rather than 403", () => {
    expect(rejectData("debug.explode", {}, PRODUCTION)).toMatchObject({ status: 400, code: "unknown_kind" });
  });

  it("answers 403 for a debug kind before validating its data", () => {
    expect(rejectData("debug.tick", { time: -1 }, PRODUCTION).status).toBe(403);
  });

  it("accepts every protocol kind with valid data", () => {
    const valid: Record<(typeof REQUEST_KINDS)[number], unknown> = {
      "promise.get": { id: "p" },
      "promise.create": { id: "p", timeoutAt: FUTURE },
      "promise.settle": { id: "p", state: "resolved" },
      "promise.register_callback": { awaited: "a", awaiter: "b" },
      "promise.register_listener": { awaited: "a", address: "poll://uni@g/w" },
      "promise.search": {},
      "task.get": { id: "t" },
      "task.create": {
        pid: "w",
        ttl: 1000,
        action: {
          kind: "promise.create",
          data: { id: "t", timeoutAt: FUTURE, tags: { "resonate:target": "w" } },
        },
      },
      "task.acquire": { id: "t", version: 0, pid: "w", ttl: 1000 },
      "task.fence": {
        id: "t",
        version: 1,
        action: { kind: "promise.settle", data: { id: "c", state: "resolved" } },
      },
      "task.heartbeat": { pid: "w", tasks: [] },
      "task.suspend": {
        id: "t",
        version: 1,
        actions: [{ kind: "promise.register_callback", data: { awaited: "a", awaiter: "t" } }],
      },
      "task.fulfill": {
        id: "t",
        version: 1,
        action: { kind: "promise.settle", data: { id: "t", state: "rejected" } },
      },
      "task.release": { id: "t", version: 1 },
      "task.halt": { id: "t" },
      "task.continue": { id: "t" },
      "task.search": {},
      "schedule.get": { id: "s" },
      "schedule.create": { id: "s", cron: "* * * * *", promiseId: "s.{{.timestamp}}", promiseTimeout: 1000 },
      "schedule.delete": { id: "s" },
      "schedule.search": {},
      "debug.start": {},
      "debug.stop": {},
      "debug.reset": {},
      "debug.tick": { time: 5 },
      "debug.snap": {},
    };
    for (const kind of REQUEST_KINDS) {
      const request = accept(kind, valid[kind]);
      expect(request.kind).toBe(kind);
      expect(request.corrId).toBe("c1");
      expect(hasUndefined(request)).toBe(false);
    }
  });
});

describe("parseRequest: resonate:debug_time", () => {
  it("returns debugTime when debug mode is on and the head carries it", () => {
    const result = parseRequest(envelope("promise.get", { id: "p" }, { "resonate:debug_time": 1234 }), DEBUG);
    expect(result).toEqual({
      ok: true,
      request: { kind: "promise.get", corrId: "c1", data: { id: "p" } },
      debugTime: 1234,
    });
  });

  it("omits debugTime when the head does not carry it", () => {
    const result = parseRequest(envelope("promise.get", { id: "p" }), DEBUG);
    expect(result.ok && "debugTime" in result).toBe(false);
  });

  it("ignores resonate:debug_time entirely when debug mode is off", () => {
    for (const value of [1234, -5, "soon"]) {
      const result = parseRequest(
        envelope("promise.get", { id: "p" }, { "resonate:debug_time": value }),
        PRODUCTION,
      );
      expect(result.ok).toBe(true);
      expect(result.ok && "debugTime" in result).toBe(false);
    }
  });

  it("answers 400 naming the head key when debug_time is not a non-negative integer in debug mode", () => {
    for (const value of [-1, 1.5, "5", null, 2 ** 53]) {
      const failure = reject(envelope("promise.get", { id: "p" }, { "resonate:debug_time": value }));
      expect(failure).toMatchObject({
        status: 400,
        field: 'head["resonate:debug_time"]',
        message: 'head["resonate:debug_time"]: expected a non-negative integer',
      });
    }
  });
});

describe("parseRequest: fields of data", () => {
  it("answers 400 naming a missing required field", () => {
    const failure = rejectData("promise.create", { id: "p" });
    expect(failure).toMatchObject({
      status: 400,
      code: "invalid_field",
      field: "data.timeoutAt",
      message: "data.timeoutAt: required",
    });
  });

  it("answers 400 for an empty id", () => {
    expect(rejectData("promise.get", { id: "" })).toMatchObject({
      field: "data.id",
      message: "data.id: expected a non-empty string",
    });
  });

  it("answers 400 for an id containing NUL", () => {
    expect(rejectData("task.get", { id: "a\u0000b" })).toMatchObject({
      field: "data.id",
      message: "data.id: must not contain NUL (\\u0000)",
    });
  });

  it("answers 400 for an id holding a lone surrogate, and accepts a paired one", () => {
    expect(rejectData("promise.get", { id: "a\uD800b" })).toMatchObject({
      field: "data.id",
      message: "data.id: must be well-formed Unicode (a lone surrogate)",
    });
    expect(rejectData("promise.get", { id: "\uDC00" }).field).toBe("data.id");
    expect(parseRequest(envelope("promise.get", { id: "a\uD83D\uDE00" }), { debug: false }).ok).toBe(true);
  });

  it("finds a lone surrogate or a __proto__ key through the text it came from, and skips the scan without them", () => {
    const text =
      '{"kind":"promise.get","head":{"corrId":"c","version":"2026-04-01"},"data":{"id":"a\\ud800"}}';
    const withText = parseRequest(JSON.parse(text), { debug: false, text });
    expect(withText.ok).toBe(false);
    const plain = '{"kind":"promise.get","head":{"corrId":"c","version":"2026-04-01"},"data":{"id":"abc"}}';
    expect(parseRequest(JSON.parse(plain), { debug: false, text: plain }).ok).toBe(true);
  });

  it("answers 400 for an id that is not a string", () => {
    for (const id of [1, null, {}, []]) {
      expect(rejectData("schedule.get", { id }).message).toBe("data.id: expected a non-empty string");
    }
  });

  it("answers 400 for instants, versions and ttl that are not non-negative safe integers", () => {
    const bad = [-1, 1.5, "10", null, 2 ** 53, true];
    for (const value of bad) {
      expect(rejectData("promise.create", { id: "p", timeoutAt: value }).message).toBe(
        "data.timeoutAt: expected a non-negative integer",
      );
      expect(rejectData("task.release", { id: "t", version: value }).message).toBe(
        "data.version: expected a non-negative integer",
      );
      expect(rejectData("task.acquire", { id: "t", version: 0, pid: "w", ttl: value }).message).toBe(
        "data.ttl: expected a non-negative integer",
      );
    }
  });

  it("accepts zero and the largest safe integer as instants", () => {
    accept("promise.create", { id: "p", timeoutAt: 0 });
    accept("promise.create", { id: "p", timeoutAt: Number.MAX_SAFE_INTEGER });
    accept("task.acquire", { id: "t", version: 0, pid: "w", ttl: 0 });
  });

  it("answers 400 unknown_field naming an unknown field in data", () => {
    expect(rejectData("promise.get", { id: "p", extra: 1 })).toMatchObject({
      status: 400,
      code: "unknown_field",
      field: "data.extra",
      message: "data.extra: unknown field",
    });
  });

  it("names every unknown field in data", () => {
    const failure = rejectData("promise.get", { id: "p", one: 1, "two words": 2 });
    expect(failure.message).toBe('data.one: unknown field (so are data["two words"])');
    expect(failure.field).toBe("data.one");
  });

  it("omits absent optional fields from the request", () => {
    const request = accept("promise.create", { id: "p", timeoutAt: 5 });
    expect(request.data).toEqual({ id: "p", timeoutAt: 5 });
    expect(Object.keys(request.data)).toEqual(["id", "timeoutAt"]);
  });

  it("keeps a full promise.create intact", () => {
    const data = {
      id: "p",
      timeoutAt: 5,
      param: { headers: { a: "b" }, data: "eyJ4IjoxfQ==" },
      tags: { "resonate:scope": "global" },
    };
    expect(accept("promise.create", data)).toEqual({ kind: "promise.create", corrId: "c1", data });
  });
});

describe("parseRequest: values and tags", () => {
  it("accepts empty values and either key of a value", () => {
    accept("promise.create", { id: "p", timeoutAt: 1, param: {} });
    accept("promise.settle", { id: "p", state: "resolved", value: { data: "" } });
    accept("promise.settle", { id: "p", state: "resolved", value: { headers: {} } });
  });

  it("answers 400 for an unknown key inside a value, naming it", () => {
    expect(rejectData("promise.create", { id: "p", timeoutAt: 1, param: { body: "x" } })).toMatchObject({
      code: "unknown_field",
      field: "data.param.body",
    });
  });

  it("answers 400 for value data or header values that are not strings", () => {
    expect(
      rejectData("promise.settle", { id: "p", state: "resolved", value: { data: { x: 1 } } }).message,
    ).toBe("data.value.data: expected a string");
    expect(
      rejectData("promise.create", { id: "p", timeoutAt: 1, param: { headers: { h: 1 } } }).message,
    ).toBe("data.param.headers.h: expected a string");
    expect(rejectData("promise.create", { id: "p", timeoutAt: 1, param: "x" }).message).toBe(
      "data.param: expected an object {headers?, data?}",
    );
  });

  it("answers 400 for tags that are not an object of strings, naming the tag", () => {
    expect(rejectData("promise.create", { id: "p", timeoutAt: 1, tags: ["a"] }).message).toBe(
      "data.tags: expected an object of strings",
    );
    expect(
      rejectData("promise.create", { id: "p", timeoutAt: 1, tags: { "resonate:target": 5 } }).message,
    ).toBe('data.tags["resonate:target"]: expected a string');
  });

  it("accepts an integer resonate:delay and answers 400 for any other", () => {
    accept("promise.create", { id: "p", timeoutAt: 1, tags: { "resonate:delay": "1000" } });
    for (const delay of ["soon", "-1", "1.5", "", " 1", "99999999999999999999"]) {
      const failure = rejectData("promise.create", {
        id: "p",
        timeoutAt: 1,
        tags: { "resonate:delay": delay },
      });
      expect(failure).toMatchObject({
        status: 400,
        code: "invalid_field",
        field: 'data.tags["resonate:delay"]',
      });
    }
  });

  it("accepts a timer that is also targeted (Pledge's interop decision)", () => {
    const tags = { "resonate:timer": "true", "resonate:target": "poll://any@default" };
    accept("promise.create", { id: "p", timeoutAt: 1, tags });
    accept("task.create", {
      pid: "w",
      ttl: 1,
      action: { kind: "promise.create", data: { id: "p", timeoutAt: 1, tags } },
    });
    accept("schedule.create", {
      id: "s",
      cron: "* * * * *",
      promiseId: "p",
      promiseTimeout: 1,
      promiseTags: tags,
    });
    const fence = accept("task.fence", {
      id: "t",
      version: 1,
      action: { kind: "promise.create", data: { id: "p", timeoutAt: 1, tags } },
    });
    expect(fence.kind === "task.fence" && fence.data.action.kind).toBe("promise.create");
  });
});

describe("parseRequest: promise operations", () => {
  it("accepts the three settable states", () => {
    for (const state of ["resolved", "rejected", "rejected_canceled"]) {
      accept("promise.settle", { id: "p", state });
    }
  });

  it("answers 400 for a state that cannot be set, listing the settable ones", () => {
    for (const state of ["pending", "rejected_timedout", "garbage", 1]) {
      expect(rejectData("promise.settle", { id: "p", state })).toMatchObject({
        status: 400,
        field: "data.state",
        message: 'data.state: expected one of "resolved", "rejected", "rejected_canceled"',
      });
    }
  });

  it("answers 400 when a promise awaits itself in register_callback", () => {
    expect(rejectData("promise.register_callback", { awaited: "a", awaiter: "a" })).toMatchObject({
      status: 400,
      field: "data.awaiter",
      message: "data.awaiter: must differ from data.awaited",
    });
  });

  it("accepts deliverable listener addresses", () => {
    for (const address of ["http://host/x", "https://host", "poll://uni@g/w", "poll://any@g"]) {
      accept("promise.register_listener", { awaited: "a", address });
    }
  });

  it("answers 400 for an undeliverable listener address", () => {
    for (const address of ["w1", "", "poll://g/w", "ftp://host", "HTTP://host"]) {
      expect(rejectData("promise.register_listener", { awaited: "a", address })).toMatchObject({
        status: 400,
        field: "data.address",
        message: "data.address: expected a deliverable address: http://…, https://… or poll://…@…",
      });
    }
  });

  it("passes a promise.search id prefix through as given", () => {
    const request = accept("promise.search", {
      id: "order-7*",
      state: "pending",
      tags: { k: "v" },
      limit: 1000,
      cursor: "p9",
    });
    expect(request.data).toEqual({
      id: "order-7*",
      state: "pending",
      tags: { k: "v" },
      limit: 1000,
      cursor: "p9",
    });
  });
});

describe("parseRequest: searches", () => {
  it("answers 400 for a limit outside 1–1000", () => {
    for (const kind of ["promise.search", "task.search", "schedule.search"]) {
      for (const limit of [0, 1001, 1.5, "10", -1]) {
        expect(rejectData(kind, { limit })).toMatchObject({
          status: 400,
          field: "data.limit",
          message: "data.limit: expected an integer from 1 to 1000",
        });
      }
      accept(kind, { limit: 1 });
    }
  });

  it("answers 400 for an unknown promise or task state", () => {
    expect(rejectData("promise.search", { state: "done" }).field).toBe("data.state");
    expect(rejectData("task.search", { state: "resolved" }).message).toBe(
      'data.state: expected one of "pending", "acquired", "suspended", "halted", "fulfilled"',
    );
    accept("task.search", { state: "halted" });
  });

  it("answers 400 for tags that are not an object of strings", () => {
    expect(rejectData("promise.search", { tags: "x" }).message).toBe(
      "data.tags: expected an object of strings",
    );
    expect(rejectData("schedule.search", { tags: { k: 1 } }).message).toBe("data.tags.k: expected a string");
  });

  it("answers 400 for a cursor that is not a string", () => {
    expect(rejectData("task.search", { cursor: 5 }).message).toBe("data.cursor: expected a string");
  });

  it("answers 400 for fields a search does not take", () => {
    expect(rejectData("task.search", { tags: {} }).code).toBe("unknown_field");
    expect(rejectData("schedule.search", { state: "pending" }).code).toBe("unknown_field");
    expect(rejectData("task.search", { id: "t*" }).code).toBe("unknown_field");
  });
});

describe("parseRequest: task.create", () => {
  const data = (overrides: Record<string, unknown> = {}, action: Record<string, unknown> = {}) => ({
    pid: "w",
    ttl: 60_000,
    action: {
      kind: "promise.create",
      head: { corrId: "inner", version: PROTOCOL_VERSION },
      data: { id: "r", timeoutAt: FUTURE, tags: { "resonate:target": "poll://any@default" } },
      ...action,
    },
    ...overrides,
  });

  it("drops the nested head and keeps the action's kind and data", () => {
    const request = accept("task.create", data());
    expect(request).toEqual({
      kind: "task.create",
      corrId: "c1",
      data: {
        pid: "w",
        ttl: 60_000,
        action: {
          kind: "promise.create",
          data: { id: "r", timeoutAt: FUTURE, tags: { "resonate:target": "poll://any@default" } },
        },
      },
    });
  });

  it("ignores any nested head value, or none", () => {
    for (const head of [5, "x", null, []]) accept("task.create", data({}, { head }));
    const { head: _, ...withoutHead } = data().action;
    accept("task.create", data({ action: withoutHead }));
  });

  it("answers 400 when the action's tags lack resonate:target", () => {
    const untagged = data({}, { data: { id: "r", timeoutAt: FUTURE } });
    expect(rejectData("task.create", untagged)).toMatchObject({
      status: 400,
      field: "data.action.data.tags",
      message: 'data.action.data.tags: must contain "resonate:target" (task.create makes a targeted promise)',
    });
    const other = data({}, { data: { id: "r", timeoutAt: FUTURE, tags: { "resonate:timer": "true" } } });
    expect(rejectData("task.create", other).field).toBe("data.action.data.tags");
  });

  it("answers 400 for an action of another kind", () => {
    expect(rejectData("task.create", data({}, { kind: "promise.settle" })).message).toBe(
      'data.action.kind: expected "promise.create"',
    );
  });

  it("answers 400 naming fields inside the action's data", () => {
    const failure = rejectData("task.create", data({}, { data: { id: "r", timeoutAt: -1, tags: {} } }));
    expect(failure.message).toBe("data.action.data.timeoutAt: expected a non-negative integer");
  });

  it("answers 400 for an empty pid and a missing action", () => {
    expect(rejectData("task.create", data({ pid: "" })).field).toBe("data.pid");
    const { action: _, ...rest } = data();
    expect(rejectData("task.create", rest).message).toBe("data.action: required");
  });

  it("answers 400 for an unknown key in the action envelope", () => {
    expect(rejectData("task.create", data({}, { extra: 1 })).field).toBe("data.action.extra");
  });
});

describe("parseRequest: task.heartbeat", () => {
  it("accepts an empty task list", () => {
    expect(accept("task.heartbeat", { pid: "w", tasks: [] }).data).toEqual({ pid: "w", tasks: [] });
  });

  it("keeps the task references", () => {
    const tasks = [
      { id: "a", version: 1 },
      { id: "b", version: 2 },
    ];
    expect(accept("task.heartbeat", { pid: "w", tasks }).data).toEqual({ pid: "w", tasks });
  });

  it("answers 400 naming the bad reference", () => {
    const failure = rejectData("task.heartbeat", { pid: "w", tasks: [{ id: "a", version: 1 }, { id: "b" }] });
    expect(failure.message).toBe("data.tasks[1].version: required");
    expect(rejectData("task.heartbeat", { pid: "w", tasks: {} }).message).toBe(
      "data.tasks: expected an array of {id, version}",
    );
    expect(rejectData("task.heartbeat", { pid: "w" }).message).toBe("data.tasks: required");
  });
});

describe("parseRequest: task.suspend", () => {
  const callback = (awaited: string, awaiter = "t", head: unknown = { corrId: "x" }) => ({
    kind: "promise.register_callback",
    head,
    data: { awaited, awaiter },
  });

  it("keeps the callbacks without their heads", () => {
    const request = accept("task.suspend", { id: "t", version: 1, actions: [callback("a"), callback("b")] });
    expect(request.data).toEqual({
      id: "t",
      version: 1,
      actions: [
        { kind: "promise.register_callback", data: { awaited: "a", awaiter: "t" } },
        { kind: "promise.register_callback", data: { awaited: "b", awaiter: "t" } },
      ],
    });
  });

  it("answers 400 for an empty action list", () => {
    expect(rejectData("task.suspend", { id: "t", version: 1, actions: [] })).toMatchObject({
      status: 400,
      field: "data.actions",
    });
  });

  it("answers 400 when the task awaits its own promise", () => {
    expect(
      rejectData("task.suspend", { id: "t", version: 1, actions: [callback("a"), callback("t")] }),
    ).toMatchObject({
      field: "data.actions[1].data.awaited",
      message: "data.actions[1].data.awaited: must differ from data.id (a task cannot await its own promise)",
    });
  });

  it("answers 400 when the same promise is awaited twice", () => {
    const failure = rejectData("task.suspend", {
      id: "t",
      version: 1,
      actions: [callback("a"), callback("b"), callback("a")],
    });
    expect(failure).toMatchObject({
      field: "data.actions[2].data.awaited",
      message: 'data.actions[2].data.awaited: duplicates data.actions[0].data.awaited ("a")',
    });
  });

  it("answers 400 when the awaiter is not the suspending task", () => {
    expect(
      rejectData("task.suspend", { id: "t", version: 1, actions: [callback("a", "other")] }),
    ).toMatchObject({
      field: "data.actions[0].data.awaiter",
      message: "data.actions[0].data.awaiter: must equal data.id (a task suspends only itself)",
    });
  });

  it("answers 400 for an action of another kind or without data", () => {
    const wrongKind = { ...callback("a"), kind: "promise.create" };
    expect(rejectData("task.suspend", { id: "t", version: 1, actions: [wrongKind] }).message).toBe(
      'data.actions[0].kind: expected "promise.register_callback"',
    );
    expect(
      rejectData("task.suspend", { id: "t", version: 1, actions: [{ kind: "promise.register_callback" }] })
        .message,
    ).toBe("data.actions[0].data: required");
  });
});

describe("parseRequest: task.fulfill", () => {
  const fulfill = (actionData: Record<string, unknown>, kind = "promise.settle") => ({
    id: "t",
    version: 2,
    action: { kind, head: {}, data: actionData },
  });

  it("keeps the settlement without the nested head", () => {
    const request = accept("task.fulfill", fulfill({ id: "t", state: "resolved", value: { data: "e30=" } }));
    expect(request.data).toEqual({
      id: "t",
      version: 2,
      action: { kind: "promise.settle", data: { id: "t", state: "resolved", value: { data: "e30=" } } },
    });
  });

  it("answers 400 when the action settles another promise", () => {
    expect(rejectData("task.fulfill", fulfill({ id: "other", state: "resolved" }))).toMatchObject({
      status: 400,
      field: "data.action.data.id",
      message: "data.action.data.id: must equal data.id (task.fulfill settles the task's own promise)",
    });
  });

  it("answers 400 for a state that cannot be set", () => {
    expect(rejectData("task.fulfill", fulfill({ id: "t", state: "pending" })).field).toBe(
      "data.action.data.state",
    );
  });

  it("answers 400 for an action of another kind", () => {
    expect(rejectData("task.fulfill", fulfill({ id: "t", state: "resolved" }, "promise.create")).field).toBe(
      "data.action.kind",
    );
  });
});

describe("parseRequest: task.fence", () => {
  const fence = (action: unknown) => ({ id: "t", version: 1, action });

  it("keeps a valid inner create or settle without the nested head", () => {
    const create = accept(
      "task.fence",
      fence({ kind: "promise.create", head: 5, data: { id: "t.1", timeoutAt: FUTURE } }),
    );
    expect(create.data).toEqual({
      id: "t",
      version: 1,
      action: { kind: "promise.create", data: { id: "t.1", timeoutAt: FUTURE } },
    });
    const settle = accept(
      "task.fence",
      fence({ kind: "promise.settle", data: { id: "t.1", state: "rejected" } }),
    );
    expect(settle.data).toEqual({
      id: "t",
      version: 1,
      action: { kind: "promise.settle", data: { id: "t.1", state: "rejected" } },
    });
  });

  it("answers outer 400 when the action is missing or not an object", () => {
    expect(rejectData("task.fence", { id: "t", version: 1 })).toMatchObject({
      status: 400,
      field: "data.action",
      message: "data.action: required",
    });
    for (const action of [null, [], "x", 1]) {
      expect(rejectData("task.fence", fence(action)).field).toBe("data.action");
    }
  });

  it("answers outer 400 when the action lacks kind or data", () => {
    expect(rejectData("task.fence", fence({ data: { id: "x" } })).message).toBe("data.action.kind: required");
    expect(rejectData("task.fence", fence({ kind: "promise.settle" })).message).toBe(
      "data.action.data: required",
    );
  });

  it("answers outer 400 for a kind other than promise.create or promise.settle", () => {
    for (const kind of ["promise.get", 5, "task.fulfill"]) {
      expect(rejectData("task.fence", fence({ kind, data: { id: "x" } }))).toMatchObject({
        field: "data.action.kind",
        message: 'data.action.kind: expected "promise.create" or "promise.settle"',
      });
    }
  });

  it("answers outer 400 when the action's data is not an object", () => {
    for (const data of [null, [], "x"]) {
      expect(rejectData("task.fence", fence({ kind: "promise.settle", data })).message).toBe(
        "data.action.data: expected an object",
      );
    }
  });

  it("answers outer 400 when the action acts on the task's own promise", () => {
    for (const kind of ["promise.create", "promise.settle"]) {
      expect(rejectData("task.fence", fence({ kind, data: { id: "t" } }))).toMatchObject({
        status: 400,
        field: "data.action.data.id",
      });
    }
  });

  it("answers outer 400 for the fence's own fields", () => {
    expect(rejectData("task.fence", { id: "t", version: -1, action: {} }).field).toBe("data.version");
    expect(rejectData("task.fence", { ...fence({}), extra: true }).code).toBe("unknown_field");
  });

  it("turns every other fault inside action.data into an invalid inner action", () => {
    const cases: [unknown, "promise.create" | "promise.settle", string][] = [
      [
        { kind: "promise.settle", data: { id: "c", state: "pending" } },
        "promise.settle",
        'data.action.data.state: expected one of "resolved", "rejected", "rejected_canceled"',
      ],
      [{ kind: "promise.settle", data: {} }, "promise.settle", "data.action.data.id: required"],
      [
        { kind: "promise.create", data: { id: "c", timeoutAt: 1.5 } },
        "promise.create",
        "data.action.data.timeoutAt: expected a non-negative integer",
      ],
      [
        { kind: "promise.create", data: { id: "", timeoutAt: 1 } },
        "promise.create",
        "data.action.data.id: expected a non-empty string",
      ],
      [
        { kind: "promise.create", data: { id: "c", timeoutAt: 1, tags: { "resonate:delay": "x" } } },
        "promise.create",
        'data.action.data.tags["resonate:delay"]: expected a string of a non-negative integer (an instant in ms)',
      ],
      [
        { kind: "promise.create", data: { id: "c", timeoutAt: 1, extra: 1 } },
        "promise.create",
        "data.action.data.extra: unknown field",
      ],
    ];
    for (const [action, innerKind, message] of cases) {
      const request = accept("task.fence", fence(action));
      expect(request).toEqual({
        kind: "task.fence",
        corrId: "c1",
        data: { id: "t", version: 1, action: { kind: "invalid", innerKind, message } },
      });
    }
  });
});

describe("parseRequest: schedule.create", () => {
  const schedule = (overrides: Record<string, unknown> = {}) => ({
    id: "s",
    cron: "*/5 * * * *",
    promiseId: "s.{{.timestamp}}",
    promiseTimeout: 60_000,
    ...overrides,
  });

  it("accepts 5-field cron and 6/7-field cron with leading seconds", () => {
    for (const cron of ["0 0 * * *", "30 0 0 * * *", "0 0 0 1 1 * 2099"])
      accept("schedule.create", schedule({ cron }));
  });

  it("keeps optional param and tags", () => {
    const data = schedule({
      promiseParam: { data: "e30=" },
      promiseTags: { "resonate:target": "poll://any@g" },
    });
    expect(accept("schedule.create", data).data).toEqual(data);
  });

  it("answers 400 naming the cron when it does not parse", () => {
    for (const cron of ["bogus", "61 * * * *", "* * *", "", "* * * * * * * *"]) {
      const failure = rejectData("schedule.create", schedule({ cron }));
      expect(failure).toMatchObject({ status: 400, code: "invalid_field", field: "data.cron" });
      expect(failure.message).toMatch(/^data\.cron: expected a cron expression/);
    }
  });

  it("answers 400 for a negative promiseTimeout, a bad promise id and a bad delay tag", () => {
    expect(rejectData("schedule.create", schedule({ promiseTimeout: -1 })).field).toBe("data.promiseTimeout");
    expect(rejectData("schedule.create", schedule({ promiseId: "" })).field).toBe("data.promiseId");
    expect(rejectData("schedule.create", schedule({ promiseTags: { "resonate:delay": "x" } })).field).toBe(
      'data.promiseTags["resonate:delay"]',
    );
  });
});

describe("parseRequest: debug operations", () => {
  it("accepts debug.tick and returns the head's debug time when it equals data.time", () => {
    const result = parseRequest(envelope("debug.tick", { time: 500 }, { "resonate:debug_time": 500 }), DEBUG);
    expect(result).toEqual({
      ok: true,
      request: { kind: "debug.tick", corrId: "c1", data: { time: 500 } },
      debugTime: 500,
    });
  });

  it("answers 400 when debug.tick's time differs from the head's debug time", () => {
    const failure = reject(envelope("debug.tick", { time: 500 }, { "resonate:debug_time": 400 }));
    expect(failure).toMatchObject({ status: 400, field: 'head["resonate:debug_time"]' });
    expect(failure.message).toBe(
      'head["resonate:debug_time"]: must equal data.time (500) when present, got 400',
    );
  });

  it("answers 400 for a missing or non-integer tick time", () => {
    expect(rejectData("debug.tick", {}).message).toBe("data.time: required");
    expect(rejectData("debug.tick", { time: 1.5 }).message).toBe(
      "data.time: expected a non-negative integer",
    );
  });

  it("answers 400 for any field in the data of start, stop, reset and snap", () => {
    for (const kind of ["debug.start", "debug.stop", "debug.reset", "debug.snap"]) {
      expect(accept(kind, {}).data).toEqual({});
      expect(rejectData(kind, { x: 1 })).toMatchObject({
        status: 400,
        code: "unknown_field",
        field: "data.x",
        message: "data.x: unknown field",
      });
    }
  });
});

describe("the error catalogue", () => {
  it("gives every code a status, a retryable flag and a next step", () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOGUE)) {
      expect(isErrorCode(code)).toBe(true);
      expect(entry.status).toBeGreaterThanOrEqual(400);
      expect(typeof entry.retryable).toBe("boolean");
      expect(entry.next.length).toBeGreaterThan(0);
    }
    expect(isErrorCode("toString")).toBe(false);
  });

  it("marks only unavailable-store, capacity and rate-limit errors retryable", () => {
    const retryable = Object.entries(ERROR_CATALOGUE)
      .filter(([, entry]) => entry.retryable)
      .map(([code]) => code)
      .sort();
    expect(retryable).toEqual(["capacity_exhausted", "rate_limited", "store_unavailable"]);
  });

  it("builds the protocol error response with the code and the flag", () => {
    expect(protocolError(404, "not_found", 'data.id: no promise "p"')).toEqual({
      status: 404,
      data: 'data.id: no promise "p"',
      error: { code: "not_found", retryable: false },
    });
    expect(protocolError(503, "store_unavailable", "store: unreachable")).toEqual({
      status: 503,
      data: "store: unreachable",
      error: { code: "store_unavailable", retryable: true },
    });
  });

  it("refuses a code with a status it does not travel with", () => {
    const code = "not_found" as ErrorCode;
    expect(() => protocolError(409 as never, code, "x")).toThrow(AssertionError);
  });

  it("turns a parse failure into its protocol error response", () => {
    const failure = rejectData("promise.get", {});
    expect(failureResponse(failure)).toEqual({
      status: 400,
      data: "data.id: required",
      error: { code: "invalid_field", retryable: false },
    });
    const forbidden = rejectData("debug.snap", {}, PRODUCTION);
    expect(failureResponse(forbidden)).toMatchObject({ status: 403, error: { code: "debug_disabled" } });
  });
});

describe("fast checks (V6)", () => {
  const tags = { "resonate:branch": "b", "resonate:delay": "12", "resonate:scope": "local" };
  const value = { headers: { a: "1" }, data: "ZGF0YQ==" };
  const settle = { id: "p", state: "resolved", value };
  const callback = { awaited: "q", awaiter: "p" };
  const accepted: { [K in keyof typeof FAST_CHECKED]: Record<string, unknown>[] } = {
    promiseCreate: [
      { id: "p", timeoutAt: 5, param: value, tags },
      { tags, param: { data: "x", headers: {} }, timeoutAt: 0, id: "p" },
      { id: "p", timeoutAt: 5 },
      { id: "p", timeoutAt: 5, "pledge:settle": { state: "resolved", value } },
      { "pledge:settle": { state: "rejected" }, id: "p", timeoutAt: 5, tags },
    ],
    promiseSettle: [
      settle,
      { value: { data: "x" }, state: "rejected_canceled", id: "p" },
      { id: "p", state: "rejected" },
    ],
    registerCallback: [callback],
    taskAcquire: [{ id: "t", version: 1, pid: "w", ttl: 1000 }],
    taskCreate: [
      {
        pid: "w",
        ttl: 1000,
        action: { kind: "promise.create", head: {}, data: { id: "p", timeoutAt: 1, tags } },
      },
      { action: { data: { timeoutAt: 1, id: "p" }, kind: "promise.create" }, ttl: 0, pid: "w" },
    ],
    taskFence: [
      { id: "t", version: 1, action: { kind: "promise.create", head: {}, data: { id: "p", timeoutAt: 1 } } },
      { version: 1, id: "t" },
    ],
    taskFulfill: [
      { id: "p", version: 2, action: { kind: "promise.settle", head: { corrId: "c" }, data: settle } },
      { action: { data: settle, kind: "promise.settle" }, version: 2, id: "p" },
    ],
    taskSuspend: [
      {
        id: "p",
        version: 2,
        actions: [
          { kind: "promise.register_callback", data: callback },
          { kind: "promise.register_callback", head: {}, data: { awaiter: "p", awaited: "r" } },
        ],
      },
    ],
  };
  const replacements: unknown[] = [
    undefined,
    null,
    "",
    "x",
    "a\u0000b",
    "\ud800",
    -1,
    0,
    1.5,
    2 ** 53,
    "9007199254740993",
    true,
    {},
    [],
    { extra: "x" },
    "resolved",
    "promise.settle",
  ];

  /** Every input one change away from `input`: each value replaced or removed, an unknown key added. */
  function* mutations(input: unknown): Generator<unknown> {
    if (Array.isArray(input)) {
      yield [];
      for (const [index, item] of input.entries())
        for (const changed of mutations(item))
          yield input.map((other, at) => (at === index ? changed : other));
      return;
    }
    if (typeof input !== "object" || input === null) {
      yield* replacements;
      return;
    }
    yield { ...input, extra: "x" };
    yield JSON.parse(JSON.stringify(input).replace(/^\{/, '{"__proto__":{},').replace(",}", "}"));
    for (const [key, item] of Object.entries(input)) {
      for (const changed of mutations(item)) {
        const copy: Record<string, unknown> = { ...input };
        if (changed === undefined) delete copy[key];
        else copy[key] = changed;
        yield copy;
      }
      // JSON has no undefined: a key is either absent or holds a value.
      for (const replacement of replacements)
        if (replacement !== undefined) yield { ...input, [key]: replacement };
    }
  }

  function agrees(checked: FastChecked<unknown>, input: Record<string, unknown>): boolean {
    const fast = checked.fast(input);
    const schema = checked.schema.safeParse(input);
    if (fast === undefined) return false;
    expect(schema.success).toBe(true);
    // The same keys in the same order: what the store keeps and echoes is byte-identical.
    expect(JSON.stringify(fast)).toBe(JSON.stringify(schema.data));
    expect(fast).toStrictEqual(schema.data);
    return true;
  }

  it("accept the well-formed data of every hot kind, exactly as its schema parses it", () => {
    for (const [name, inputs] of Object.entries(accepted)) {
      const checked = FAST_CHECKED[name as keyof typeof FAST_CHECKED] as FastChecked<unknown>;
      for (const input of inputs)
        expect(agrees(checked, input), `${name} ${JSON.stringify(input)}`).toBe(true);
    }
  });

  it("never accept what the schema refuses, nor parse anything differently, one change away", () => {
    let declined = 0;
    let total = 0;
    for (const [name, inputs] of Object.entries(accepted)) {
      const checked = FAST_CHECKED[name as keyof typeof FAST_CHECKED] as FastChecked<unknown>;
      for (const input of inputs)
        for (const mutated of mutations(input)) {
          if (typeof mutated !== "object" || mutated === null || Array.isArray(mutated)) continue;
          total += 1;
          if (!agrees(checked, mutated as Record<string, unknown>)) declined += 1;
        }
    }
    // Most mutations are faults, which the schema words (V6).
    expect(declined).toBeGreaterThan(total / 2);
  });
});
