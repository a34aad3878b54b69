import { describe, expect, it } from "vitest";
import { decode, encode, SerializationError, toError } from "./codec.js";

describe("codec", () => {
  it("round-trips JSON values through base64 of JSON", () => {
    for (const value of [1, "two", [3, { four: 4 }], { nested: { list: [true, null] } }, null]) {
      const encoded = encode(value, "value");
      expect(JSON.parse(Buffer.from(encoded.data ?? "", "base64").toString("utf8"))).toEqual(value);
      expect(decode(encoded)).toEqual(value);
    }
  });

  it("encodes undefined as empty data and decodes absent data as undefined", () => {
    expect(encode(undefined, "value")).toEqual({ headers: {}, data: "" });
    expect(decode({})).toBeUndefined();
    expect(decode(undefined)).toBeUndefined();
  });

  it("carries an error as name, message and stack, and rebuilds an Error", () => {
    const error = new RangeError("too far");
    const decoded = decode(encode(error, "error"));
    expect(decoded).toMatchObject({ __type: "error", name: "RangeError", message: "too far" });
    const rebuilt = toError(decoded);
    expect(rebuilt).toBeInstanceOf(Error);
    expect(rebuilt.name).toBe("RangeError");
    expect(rebuilt.message).toBe("too far");
  });

  it("fails at the call site naming where a non-serializable value is", () => {
    expect(() => encode({ a: [1, () => 2] }, "argument 1")).toThrow(SerializationError);
    expect(() => encode({ a: [1, () => 2] }, "argument 1")).toThrow("argument 1.a[1]: a function");
    expect(() => encode(10n, "result")).toThrow("result: a bigint");
    expect(() => encode(Number.NaN, "x")).toThrow("x: NaN");
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => encode(cycle, "argument 2")).toThrow("argument 2.self: a circular reference");
    expect(() => encode(new Map(), "argument 3")).toThrow("an instance of Map");
  });

  it("rebuilds the official SDK's aggregate errors as an AggregateError", () => {
    const error = toError({
      __type: "aggregate_error",
      name: "AggregateError",
      message: "two failed",
      errors: [{ __type: "error", name: "Error", message: "one" }, "two"],
    });
    expect(error).toBeInstanceOf(AggregateError);
    expect(error.message).toBe("two failed");
    expect((error as AggregateError).errors.map((e: Error) => e.message)).toEqual(["one", "two"]);
  });

  it("hands over data that is not base64 of JSON as the raw string", () => {
    expect(decode({ data: "not base64 json!" })).toBe("not base64 json!");
  });
});
