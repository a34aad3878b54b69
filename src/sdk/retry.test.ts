import { describe, expect, it } from "vitest";
import { DEFAULT_RETRY, retryDelay } from "./retry.js";

describe("retry policies", () => {
  it("the default doubles from 100 ms, caps at 30 s and stops after 10 attempts", () => {
    const delays = Array.from({ length: 10 }, (_, index) => retryDelay(DEFAULT_RETRY, index + 1));
    expect(delays.slice(0, 4)).toEqual([100, 200, 400, 800]);
    expect(delays[8]).toBe(25_600);
    expect(delays[9]).toBeUndefined();
    expect(retryDelay({ kind: "exponential", maxAttempts: 20 }, 15)).toBe(30_000);
  });

  it("constant, linear and never are finite too", () => {
    expect(retryDelay({ kind: "constant", delayMs: 5, maxAttempts: 2 }, 1)).toBe(5);
    expect(retryDelay({ kind: "constant", delayMs: 5, maxAttempts: 2 }, 2)).toBeUndefined();
    expect(retryDelay({ kind: "linear", stepMs: 10 }, 3)).toBe(30);
    expect(retryDelay({ kind: "never" }, 1)).toBeUndefined();
  });
});
