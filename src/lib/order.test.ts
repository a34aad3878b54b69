import { describe, expect, it } from "vitest";
import { compareCodePoints } from "./order.js";

describe("compareCodePoints", () => {
  it("orders as UTF-8 bytes do, unlike UTF-16 code units", () => {
    const ids = ["b", "a", "\u{1F600}", "\uE000", "\uFFFF", "a\u{10000}", "ab", ""];
    const byBytes = [...ids].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect([...ids].sort(compareCodePoints)).toEqual(byBytes);
    expect(compareCodePoints("\uE000", "\u{1F600}")).toBeLessThan(0);
    expect("\uE000" < "\u{1F600}").toBe(false);
  });

  it("is zero only for equal strings", () => {
    expect(compareCodePoints("abc", "abc")).toBe(0);
    expect(compareCodePoints("abc", "abd")).toBeLessThan(0);
    expect(compareCodePoints("abcd", "abc")).toBeGreaterThan(0);
  });
});
