/**
 * Bad input over real HTTP (PROTOCOL.md §1.2–§1.5; Pledge's decisions on error
 * bodies, empty ids, unknown kinds, versions and auth). Every refusal is a JSON
 * envelope whose HTTP status equals `head.status`, whose `data` is a string
 * naming the field at fault and whose `head.error.code` is set; and no refusal
 * changes state (`debug.snap` is identical before and after).
 */
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { RunningServer } from "../../src/node/options.js";
import { call, cleanUp, type Json, ok, serve } from "./helpers.js";

afterEach(cleanUp);

const VERSION = "2026-04-01";
const MAX_BODY = 1024;

interface RawReply {
  status: number;
  contentType: string | null;
  text: string;
  body: Json;
}

async function postRaw(
  url: string,
  body: string | Uint8Array | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
): Promise<RawReply> {
  const init: RequestInit & { duplex?: "half" } = {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: body as BodyInit,
  };
  if (body instanceof ReadableStream) init.duplex = "half";
  const response = await fetch(`${url}/`, init);
  const text = await response.text();
  let parsed: Json;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, contentType: response.headers.get("content-type"), text, body: parsed };
}

const envelope = (kind: unknown, data: unknown, head: Record<string, unknown> = {}): string =>
  JSON.stringify({ kind, head: { corrId: "bad-1", version: VERSION, ...head }, data });

/** A refusal: status everywhere, JSON, `data` a string naming `field`, `head.error.code` = `code`. */
function expectRefusal(reply: RawReply, expected: { status: number; code: string; field: string }): void {
  const context = reply.text;
  expect(reply.status, context).toBe(expected.status);
  expect(reply.contentType, context).toMatch(/^application\/json/);
  expect(reply.body, context).toBeTypeOf("object");
  expect(reply.body.head.status, context).toBe(expected.status);
  expect(reply.body.head.version, context).toBe(VERSION);
  expect(reply.body.head.error, context).toStrictEqual({ code: expected.code, retryable: false });
  expect(reply.body.data, context).toBeTypeOf("string");
  expect(
    reply.body.data.startsWith(`${expected.field}:`),
    `"${reply.body.data}" names ${expected.field}`,
  ).toBe(true);
}

const FAR = 4_000_000_000_000;

interface Case {
  name: string;
  body: string | Uint8Array;
  status: number;
  code: string;
  field: string;
  /** The echoed kind and corrId (§1.4); default "unknown" / "0". */
  echo?: { kind: string; corrId: string };
}

const bytes = (...values: number[]) => Uint8Array.from(values);
const echo = (kind: string) => ({ kind, corrId: "bad-1" });

const CASES: Case[] = [
  {
    name: "malformed JSON",
    body: '{"kind": "promise.get", "head": {',
    status: 400,
    code: "invalid_json",
    field: "body",
  },
  { name: "an empty body", body: "", status: 400, code: "invalid_json", field: "body" },
  {
    name: "bytes that are not UTF-8",
    body: bytes(0x7b, 0x22, 0x6b, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d),
    status: 400,
    code: "invalid_encoding",
    field: "body",
  },
  {
    name: "a lone continuation byte inside an id",
    body: Buffer.concat([
      Buffer.from(`{"kind":"promise.get","head":{"corrId":"c","version":"${VERSION}"},"data":{"id":"a`),
      Buffer.from([0x80]),
      Buffer.from('"}}'),
    ]),
    status: 400,
    code: "invalid_encoding",
    field: "body",
  },
  { name: "a JSON array", body: "[]", status: 400, code: "invalid_envelope", field: "body" },
  {
    name: "a missing kind",
    body: JSON.stringify({ head: { corrId: "bad-1", version: VERSION }, data: {} }),
    status: 400,
    code: "invalid_envelope",
    field: "kind",
    echo: { kind: "unknown", corrId: "bad-1" },
  },
  {
    name: "a kind that is not a string",
    body: envelope(7, {}),
    status: 400,
    code: "invalid_envelope",
    field: "kind",
    echo: { kind: "unknown", corrId: "bad-1" },
  },
  {
    name: "an empty kind",
    body: envelope("", {}),
    status: 400,
    code: "invalid_envelope",
    field: "kind",
    echo: echo(""),
  },
  {
    name: "an unknown kind",
    body: envelope("promise.explode", {}),
    status: 400,
    code: "unknown_kind",
    field: "kind",
    echo: echo("promise.explode"),
  },
  {
    name: "a missing head",
    body: JSON.stringify({ kind: "promise.get", data: { id: "a" } }),
    status: 400,
    code: "invalid_envelope",
    field: "head",
    echo: { kind: "promise.get", corrId: "0" },
  },
  {
    name: "a missing corrId",
    body: JSON.stringify({ kind: "promise.get", head: { version: VERSION }, data: { id: "a" } }),
    status: 400,
    code: "invalid_envelope",
    field: "head.corrId",
    echo: { kind: "promise.get", corrId: "0" },
  },
  {
    name: "a corrId that is a number",
    body: JSON.stringify({ kind: "promise.get", head: { corrId: 5, version: VERSION }, data: { id: "a" } }),
    status: 400,
    code: "invalid_envelope",
    field: "head.corrId",
    echo: { kind: "promise.get", corrId: "0" },
  },
  {
    name: "a missing version",
    body: JSON.stringify({ kind: "promise.get", head: { corrId: "bad-1" }, data: { id: "a" } }),
    status: 400,
    code: "invalid_envelope",
    field: "head.version",
    echo: echo("promise.get"),
  },
  {
    name: "a wrong version",
    body: envelope("promise.get", { id: "a" }, { version: "2025-01-01" }),
    status: 400,
    code: "unsupported_version",
    field: "head.version",
    echo: echo("promise.get"),
  },
  {
    name: "a missing data",
    body: JSON.stringify({ kind: "promise.get", head: { corrId: "bad-1", version: VERSION } }),
    status: 400,
    code: "invalid_envelope",
    field: "data",
    echo: echo("promise.get"),
  },
  {
    name: "a data that is an array",
    body: envelope("promise.get", ["a"]),
    status: 400,
    code: "invalid_envelope",
    field: "data",
    echo: echo("promise.get"),
  },
  {
    name: "an unknown envelope field",
    body: JSON.stringify({
      kind: "promise.get",
      head: { corrId: "bad-1", version: VERSION },
      data: { id: "a" },
      extra: 1,
    }),
    status: 400,
    code: "unknown_field",
    field: "extra",
    echo: echo("promise.get"),
  },
  {
    name: "an unknown data field",
    body: envelope("promise.get", { id: "exists", extra: true }),
    status: 400,
    code: "unknown_field",
    field: "data.extra",
    echo: echo("promise.get"),
  },
  {
    name: "an unknown field in a create",
    body: envelope("promise.create", { id: "new-1", timeoutAt: FAR, color: "red" }),
    status: 400,
    code: "unknown_field",
    field: "data.color",
    echo: echo("promise.create"),
  },
  {
    name: "an unknown field in param",
    body: envelope("promise.create", { id: "new-1", timeoutAt: FAR, param: { body: "x" } }),
    status: 400,
    code: "unknown_field",
    field: "data.param.body",
    echo: echo("promise.create"),
  },
  {
    name: "a missing id",
    body: envelope("promise.get", {}),
    status: 400,
    code: "invalid_field",
    field: "data.id",
    echo: echo("promise.get"),
  },
  {
    name: "an id that is a number",
    body: envelope("promise.get", { id: 7 }),
    status: 400,
    code: "invalid_field",
    field: "data.id",
    echo: echo("promise.get"),
  },
  {
    name: "an empty id",
    body: envelope("promise.create", { id: "", timeoutAt: FAR }),
    status: 400,
    code: "invalid_field",
    field: "data.id",
    echo: echo("promise.create"),
  },
  {
    name: "an id with NUL",
    body: envelope("promise.create", { id: "a\u0000b", timeoutAt: FAR }),
    status: 400,
    code: "invalid_field",
    field: "data.id",
    echo: echo("promise.create"),
  },
  {
    name: "an empty id in a settle",
    body: envelope("promise.settle", { id: "", state: "resolved" }),
    status: 400,
    code: "invalid_field",
    field: "data.id",
    echo: echo("promise.settle"),
  },
  {
    name: "a missing timeoutAt",
    body: envelope("promise.create", { id: "new-1" }),
    status: 400,
    code: "invalid_field",
    field: "data.timeoutAt",
    echo: echo("promise.create"),
  },
  {
    name: "a timeoutAt that is a string",
    body: envelope("promise.create", { id: "new-1", timeoutAt: "soon" }),
    status: 400,
    code: "invalid_field",
    field: "data.timeoutAt",
    echo: echo("promise.create"),
  },
  {
    name: "a negative timeoutAt",
    body: envelope("promise.create", { id: "new-1", timeoutAt: -1 }),
    status: 400,
    code: "invalid_field",
    field: "data.timeoutAt",
    echo: echo("promise.create"),
  },
  {
    name: "a fractional timeoutAt",
    body: envelope("promise.create", { id: "new-1", timeoutAt: 1.5 }),
    status: 400,
    code: "invalid_field",
    field: "data.timeoutAt",
    echo: echo("promise.create"),
  },
  {
    name: "a tag value that is a number",
    body: envelope("promise.create", { id: "new-1", timeoutAt: FAR, tags: { a: 1 } }),
    status: 400,
    code: "invalid_field",
    field: "data.tags.a",
    echo: echo("promise.create"),
  },
  {
    name: "param.data that is an object",
    body: envelope("promise.create", { id: "new-1", timeoutAt: FAR, param: { data: {} } }),
    status: 400,
    code: "invalid_field",
    field: "data.param.data",
    echo: echo("promise.create"),
  },
  {
    name: "a settle to pending on an existing promise",
    body: envelope("promise.settle", { id: "exists", state: "pending" }),
    status: 400,
    code: "invalid_field",
    field: "data.state",
    echo: echo("promise.settle"),
  },
  {
    name: "a settle with garbage state on a missing promise",
    body: envelope("promise.settle", { id: "missing", state: "done" }),
    status: 400,
    code: "invalid_field",
    field: "data.state",
    echo: echo("promise.settle"),
  },
  {
    name: "a listener with an undeliverable address",
    body: envelope("promise.register_listener", { awaited: "exists", address: "w1" }),
    status: 400,
    code: "invalid_field",
    field: "data.address",
    echo: echo("promise.register_listener"),
  },
  {
    name: "an acquire with a string version",
    body: envelope("task.acquire", { id: "job", version: "0", pid: "p", ttl: 1000 }),
    status: 400,
    code: "invalid_field",
    field: "data.version",
    echo: echo("task.acquire"),
  },
  {
    name: "a head.auth that is not a string",
    body: envelope("promise.get", { id: "exists" }, { auth: 5 }),
    status: 400,
    code: "invalid_envelope",
    field: "head.auth",
    echo: echo("promise.get"),
  },
];

describe("refusals name the field and change nothing", () => {
  let server: RunningServer;
  let before: Json;

  beforeEach(async () => {
    server = await serve({ debug: true, maxBodyBytes: MAX_BODY });
    await ok(server.url, "debug.start", {});
    await ok(server.url, "promise.create", {
      id: "exists",
      timeoutAt: FAR,
      tags: { "resonate:external": "true" },
    });
    await ok(server.url, "promise.create", {
      id: "job",
      timeoutAt: FAR,
      tags: { "resonate:target": "poll://any@g" },
    });
    await ok(server.url, "promise.register_listener", { awaited: "exists", address: "poll://uni@g/w1" });
    before = await ok(server.url, "debug.snap", {});
    expect(before.promises).toHaveLength(2);
    expect(before.messages).toHaveLength(1);
  });

  test.each(CASES)("$name answers $status naming $field", async (testCase) => {
    const reply = await postRaw(server.url, testCase.body);
    expectRefusal(reply, testCase);
    const expectedEcho = testCase.echo ?? { kind: "unknown", corrId: "0" };
    expect(reply.body.kind).toBe(expectedEcho.kind);
    expect(reply.body.head.corrId).toBe(expectedEcho.corrId);
    expect(await ok(server.url, "debug.snap", {})).toStrictEqual(before);
  });

  test("a body over --max-body answers 413 naming the body, and changes nothing", async () => {
    const body = envelope("promise.create", {
      id: "big",
      timeoutAt: FAR,
      param: { data: "x".repeat(2 * MAX_BODY) },
    });
    const reply = await postRaw(server.url, body);
    expectRefusal(reply, { status: 413, code: "body_too_large", field: "body" });
    expect(reply.body.data).toContain(String(MAX_BODY));
    expect(await ok(server.url, "debug.snap", {})).toStrictEqual(before);
  });

  test("a chunked body (no Content-Length) over --max-body answers 413 too", async () => {
    const text = envelope("promise.create", {
      id: "big",
      timeoutAt: FAR,
      param: { data: "x".repeat(2 * MAX_BODY) },
    });
    const encoded = new TextEncoder().encode(text);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let offset = 0; offset < encoded.length; offset += 256)
          controller.enqueue(encoded.subarray(offset, offset + 256));
        controller.close();
      },
    });
    const reply = await postRaw(server.url, stream);
    expectRefusal(reply, { status: 413, code: "body_too_large", field: "body" });
    expect(await ok(server.url, "debug.snap", {})).toStrictEqual(before);
  });

  test("a body just under --max-body is accepted", async () => {
    const empty = envelope("promise.create", { id: "fits", timeoutAt: FAR, param: { data: "" } });
    const body = envelope("promise.create", {
      id: "fits",
      timeoutAt: FAR,
      param: { data: "x".repeat(MAX_BODY - Buffer.byteLength(empty)) },
    });
    expect(Buffer.byteLength(body)).toBe(MAX_BODY);
    const reply = await postRaw(server.url, body);
    expect(reply.status, reply.text).toBe(200);
  });

  test("debug.* on a server without debug mode answers 403 naming the kind", async () => {
    const plain = await serve();
    const reply = await postRaw(plain.url, envelope("debug.snap", {}));
    expectRefusal(reply, { status: 403, code: "debug_disabled", field: "kind" });
  });

  test("a wrong version names the supported one", async () => {
    const reply = await postRaw(
      server.url,
      envelope("promise.get", { id: "exists" }, { version: "2025-01-01" }),
    );
    expect(reply.body.data).toContain(VERSION);
    const missing = await postRaw(
      server.url,
      JSON.stringify({ kind: "promise.get", head: { corrId: "c" }, data: { id: "exists" } }),
    );
    expect(missing.body.data).toContain(VERSION);
  });
});

describe("authentication", () => {
  const TOKEN = "s3cret-token";
  let server: RunningServer;

  beforeEach(async () => {
    server = await serve({ debug: true, authToken: TOKEN, maxBodyBytes: MAX_BODY });
    await ok(server.url, "debug.start", {}, { token: TOKEN });
    await ok(
      server.url,
      "promise.create",
      { id: "exists", timeoutAt: FAR, tags: { "resonate:external": "true" } },
      { token: TOKEN },
    );
  });

  const snap = () => ok(server.url, "debug.snap", {}, { token: TOKEN });

  test("a missing or wrong token answers 401 for an existing id and a missing id alike, byte for byte", async () => {
    const before = await snap();
    const variants: { name: string; head: Record<string, unknown>; headers: Record<string, string> }[] = [
      { name: "no token", head: {}, headers: {} },
      { name: "wrong header", head: {}, headers: { authorization: "Bearer nope" } },
      { name: "wrong head.auth", head: { auth: "nope" }, headers: {} },
      { name: "not a bearer", head: {}, headers: { authorization: `Basic ${TOKEN}` } },
      { name: "a prefix of the token", head: {}, headers: { authorization: `Bearer ${TOKEN.slice(0, -1)}` } },
    ];
    for (const variant of variants) {
      const existing = await postRaw(
        server.url,
        envelope("promise.get", { id: "exists" }, variant.head),
        variant.headers,
      );
      const missing = await postRaw(
        server.url,
        envelope("promise.get", { id: "missing" }, variant.head),
        variant.headers,
      );
      expectRefusal(existing, { status: 401, code: "unauthorized", field: "authorization" });
      expect(existing.body.kind, variant.name).toBe("promise.get");
      expect(existing.body.head.corrId, variant.name).toBe("bad-1");
      expect(missing.text, variant.name).toBe(existing.text);

      const settle = await postRaw(
        server.url,
        envelope("promise.settle", { id: "exists", state: "resolved" }, variant.head),
        variant.headers,
      );
      const settleMissing = await postRaw(
        server.url,
        envelope("promise.settle", { id: "missing", state: "resolved" }, variant.head),
        variant.headers,
      );
      expectRefusal(settle, { status: 401, code: "unauthorized", field: "authorization" });
      expect(settleMissing.text, variant.name).toBe(settle.text);
    }
    expect(await snap()).toStrictEqual(before);
  });

  test("without the token, malformed requests answer 401 before any other check", async () => {
    const before = await snap();
    for (const body of [
      "{not json",
      "",
      envelope("promise.explode", {}),
      envelope("promise.get", { id: "" }),
      envelope("promise.get", { id: "exists" }, { version: "1999-01-01" }),
      envelope("debug.reset", {}),
    ]) {
      const reply = await postRaw(server.url, body);
      expectRefusal(reply, { status: 401, code: "unauthorized", field: "authorization" });
    }
    expect(await snap()).toStrictEqual(before);
  });

  test("without the token, a body over --max-body answers 401, not 413", async () => {
    const body = envelope("promise.create", {
      id: "big",
      timeoutAt: FAR,
      param: { data: "x".repeat(2 * MAX_BODY) },
    });
    const reply = await postRaw(server.url, body);
    expectRefusal(reply, { status: 401, code: "unauthorized", field: "authorization" });
  });

  test("with the token in the header, a body over --max-body answers 413", async () => {
    const body = envelope("promise.create", {
      id: "big",
      timeoutAt: FAR,
      param: { data: "x".repeat(2 * MAX_BODY) },
    });
    const reply = await postRaw(server.url, body, { authorization: `Bearer ${TOKEN}` });
    expectRefusal(reply, { status: 413, code: "body_too_large", field: "body" });
  });

  test("the token is accepted in the Authorization header and in head.auth", async () => {
    const viaHeader = await call(server.url, "promise.get", { id: "exists" }, { token: TOKEN });
    expect(viaHeader.httpStatus).toBe(200);
    expect(viaHeader.data.promise.id).toBe("exists");
    const viaHead = await call(server.url, "promise.get", { id: "exists" }, { headAuth: TOKEN });
    expect(viaHead.httpStatus).toBe(200);
    expect(viaHead.data.promise).toStrictEqual(viaHeader.data.promise);
    const lowercase = await postRaw(server.url, envelope("promise.get", { id: "exists" }), {
      authorization: `bearer ${TOKEN}`,
    });
    expect(lowercase.status).toBe(200);
  });

  test("with the token, bad input gets its ordinary refusal and a missing id its 404", async () => {
    const bad = await postRaw(server.url, envelope("promise.get", { id: "" }), {
      authorization: `Bearer ${TOKEN}`,
    });
    expectRefusal(bad, { status: 400, code: "invalid_field", field: "data.id" });
    const missing = await call(server.url, "promise.get", { id: "missing" }, { headAuth: TOKEN });
    expect(missing.httpStatus).toBe(404);
    expect(missing.status).toBe(404);
    expect(missing.head.error.code).toBe("not_found");
  });
});
