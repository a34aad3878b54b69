import { describe, expect, it } from "vitest";
import type { PromiseRecord } from "../protocol/records.js";
import {
  decodeValue,
  encodeJson,
  fold,
  formatDuration,
  functionName,
  promiseRole,
  shortId,
} from "./values.js";

const base64 = (value: unknown) => Buffer.from(JSON.stringify(value), "utf8").toString("base64");

describe("the dashboard's values", () => {
  it("decodes base64 JSON as the SDKs write it, and encodes its inverse", () => {
    const value = { text: "héllo ✓", list: [1, null, true] };
    expect(decodeValue({ data: base64(value) })).toEqual({ kind: "json", value });
    expect(encodeJson(value)).toEqual({ data: base64(value) });
    expect(decodeValue(encodeJson("x"))).toEqual({ kind: "json", value: "x" });
  });

  it("shows anything else as stored, and never throws", () => {
    expect(decodeValue({})).toEqual({ kind: "empty" });
    expect(decodeValue({ data: "not base64!" })).toEqual({ kind: "raw", data: "not base64!" });
    expect(decodeValue({ data: Buffer.from("{oops").toString("base64") })).toMatchObject({ kind: "raw" });
  });

  it("folds long text to its first lines and says how much there is", () => {
    const long = Array.from({ length: 100 }, (_, index) => `line ${index}`).join("\n");
    const folded = fold(long);
    expect(folded).toMatchObject({ folded: true, lines: 100 });
    expect(folded.head.split("\n")).toHaveLength(24);
    expect(fold("short")).toMatchObject({ folded: false, head: "short" });
  });

  it("names what a promise is and what it runs", () => {
    const record = (tags: Record<string, string>, param = {}): PromiseRecord => ({
      id: "w.1",
      state: "pending",
      param,
      value: {},
      tags,
      timeoutAt: 0,
      createdAt: 0,
    });
    expect(promiseRole(record({ "resonate:timer": "true" }))).toBe("sleep");
    expect(promiseRole(record({ "resonate:external": "true" }))).toBe("external promise");
    expect(promiseRole(record({ "resonate:target": "poll://any@g", "resonate:parent": "w" }))).toBe(
      "remote call",
    );
    expect(promiseRole(record({ "resonate:target": "poll://any@g", "resonate:parent": "w.1" }))).toBe(
      "function",
    );
    expect(functionName(record({}, { data: base64({ func: "charge", args: [] }) }))).toBe("charge");
    expect(shortId("order-1.0.2", "order-1.0")).toBe(".2");
    expect(shortId("other", "order-1")).toBe("other");
    expect(formatDuration(850)).toBe("850ms");
    expect(formatDuration(65_000)).toBe("1m 5s");
  });
});
