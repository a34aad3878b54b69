import { describe, expect, it } from "vitest";
import { compareCodePoints } from "../../lib/order.js";
import { decodeText, encodeText } from "./text.js";

const samples = [
  "",
  "a",
  "\u0000",
  "\u0001",
  "\u0002",
  "a\u0000b",
  "a\u0001b",
  "\u0000\u0001\u0000",
  "🙂\u0000",
  "\uE000",
  "ab",
  "a\u0000",
  "a\u0001",
  "\u0001\u0001",
];
const sign = (value: number) => Math.sign(value);

describe("text encoding for PostgreSQL", () => {
  it("T1 round-trips every string and leaves no NUL", () => {
    for (const sample of samples) {
      expect(decodeText(encodeText(sample))).toBe(sample);
      expect(encodeText(sample).includes("\u0000")).toBe(false);
    }
  });

  it("T2 keeps code-point order", () => {
    for (const a of samples)
      for (const b of samples)
        expect(
          sign(compareCodePoints(encodeText(a), encodeText(b))),
          `${JSON.stringify(a)} vs ${JSON.stringify(b)}`,
        ).toBe(sign(compareCodePoints(a, b)));
  });

  it("T3 keeps prefixes", () => {
    for (const text of samples)
      for (const prefix of samples)
        expect(
          encodeText(text).startsWith(encodeText(prefix)),
          `${JSON.stringify(text)} / ${JSON.stringify(prefix)}`,
        ).toBe(text.startsWith(prefix));
  });

  it("strings without NUL or U+0001 are stored unchanged", () => {
    expect(encodeText("poll://any@g/w1")).toBe("poll://any@g/w1");
  });
});
