import { describe, expect, it } from "vitest";
import { DurationError, formatDuration, parseDuration } from "./duration.js";

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["30s", 30_000],
    ["5m", 300_000],
    ["2h", 7_200_000],
    ["7d", 604_800_000],
    ["0s", 0],
    ["1h30m", 5_400_000],
    ["1d2h3m4s5ms", 93_784_005],
    [" 10s ", 10_000],
  ])("reads %s as %d ms", (text, expectedMs) => {
    expect(parseDuration(text)).toBe(expectedMs);
  });

  it.each(["", "5", "5x", "s", "-5s", "1.5s", "5 s", "30m1h", "5s5s", "1w", "10sec"])(
    "refuses %j with a DurationError naming the text",
    (text) => {
      expect(() => parseDuration(text)).toThrow(DurationError);
      expect(() => parseDuration(text)).toThrow(`"${text}"`);
    },
  );

  it("says a bare number lacks a unit", () => {
    expect(() => parseDuration("500")).toThrow(/missing unit/);
  });

  it("refuses a duration beyond a safe integer", () => {
    expect(() => parseDuration("99999999999999999d")).toThrow(/too large/);
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0ms"],
    [450, "450ms"],
    [1000, "1s"],
    [1234, "1.2s"],
    [12_345, "12s"],
    [60_000, "1m"],
    [185_000, "3m 5s"],
    [7_380_000, "2h 3m"],
    [7 * 86_400_000 + 2 * 3_600_000, "7d 2h"],
    [-1500, "-1.5s"],
  ])("renders %d ms as %s", (ms, expected) => {
    expect(formatDuration(ms)).toBe(expected);
  });

  it("renders what parseDuration reads back for whole units", () => {
    for (const text of ["500ms", "30s", "5m", "2h", "7d"]) {
      expect(formatDuration(parseDuration(text))).toBe(text);
    }
  });
});
