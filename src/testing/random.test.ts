import { describe, expect, it } from "vitest";
import { Random } from "./random.js";

const draws = (random: Random, count: number, draw: (r: Random) => number) =>
  Array.from({ length: count }, () => draw(random));

describe("Random", () => {
  it("matches the reference xoshiro128** seeded by splitmix32 (known answers for seed 42)", () => {
    // Computed with the reference C code of xoshiro128** and splitmix32's mixer.
    expect(draws(new Random(42), 6, (r) => r.uint32())).toEqual([
      660444221, 3652823732, 77672526, 910233633, 2297337756, 3786072677,
    ]);
  });

  it("the same seed gives the same sequence from every method (R1)", () => {
    const run = (seed: number) => {
      const random = new Random(seed);
      return [
        ...draws(random, 50, (r) => r.next()),
        ...draws(random, 50, (r) => r.int(-7, 1000)),
        ...draws(random, 20, (r) => (r.bool(0.3) ? 1 : 0)),
        random.pick(["a", "b", "c"]),
        ...random.shuffle([1, 2, 3, 4, 5, 6, 7, 8]),
        random.weighted([
          ["x", 1],
          ["y", 3],
        ]),
        ...draws(random.fork("child"), 10, (r) => r.uint32()),
      ];
    };
    expect(run(7)).toEqual(run(7));
    expect(run(0)).toEqual(run(0));
  });

  it("different seeds, even neighbouring ones, give different sequences", () => {
    const sequences = [0, 1, 2, 3, 2 ** 31, 2 ** 32 - 1].map((seed) =>
      draws(new Random(seed), 8, (r) => r.uint32()).join(","),
    );
    expect(new Set(sequences).size).toBe(sequences.length);
  });

  it("a seed is reduced to 32 bits, and that is the seed it reports", () => {
    expect(new Random(2 ** 32 + 5).seed).toBe(5);
    expect(new Random(-1).seed).toBe(2 ** 32 - 1);
    expect(draws(new Random(2 ** 32 + 5), 4, (r) => r.uint32())).toEqual(
      draws(new Random(5), 4, (r) => r.uint32()),
    );
    expect(() => new Random(1.5)).toThrow(/safe integer/);
  });

  it("next() stays within [0, 1) and int() within its inclusive bounds", () => {
    const random = new Random(3);
    for (let index = 0; index < 10_000; index += 1) {
      const value = random.next();
      expect(value >= 0 && value < 1).toBe(true);
    }
    const ranges: [number, number][] = [
      [0, 0],
      [5, 6],
      [-3, 3],
      [0, 2 ** 32 - 1],
      [0, 2 ** 32],
      [-(2 ** 52), 2 ** 52 - 1],
      [Number.MAX_SAFE_INTEGER - 10, Number.MAX_SAFE_INTEGER],
    ];
    for (const [min, max] of ranges) {
      for (let index = 0; index < 2000; index += 1) {
        const value = random.int(min, max);
        expect(
          Number.isSafeInteger(value) && value >= min && value <= max,
          `${value} in [${min}, ${max}]`,
        ).toBe(true);
      }
    }
    expect(random.int(9, 9)).toBe(9);
    expect(() => random.int(2, 1)).toThrow(/not empty/);
    expect(() => random.int(0, 1.5)).toThrow(/safe integers/);
  });

  it("int() reaches both ends of a small range and is roughly uniform (chi-square)", () => {
    const random = new Random(11);
    const buckets = 10;
    const samples = 100_000;
    const counts = new Array<number>(buckets).fill(0);
    for (let index = 0; index < samples; index += 1) {
      const value = random.int(0, buckets - 1);
      counts[value] = (counts[value] ?? 0) + 1;
    }
    const expected = samples / buckets;
    const chiSquare = counts.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
    // 9 degrees of freedom: P(chi² > 27.88) = 0.001. Deterministic for this seed anyway.
    expect(chiSquare).toBeLessThan(27.88);
    expect(Math.min(...counts)).toBeGreaterThan(0);
  });

  it("next() is roughly uniform and its mean is about one half", () => {
    const random = new Random(12);
    const samples = 100_000;
    const counts = new Array<number>(20).fill(0);
    let sum = 0;
    for (let index = 0; index < samples; index += 1) {
      const value = random.next();
      sum += value;
      const bucket = Math.floor(value * 20);
      counts[bucket] = (counts[bucket] ?? 0) + 1;
    }
    expect(Math.abs(sum / samples - 0.5)).toBeLessThan(0.005);
    const expected = samples / 20;
    const chiSquare = counts.reduce((total, count) => total + (count - expected) ** 2 / expected, 0);
    expect(chiSquare).toBeLessThan(43.82); // 19 degrees of freedom, p = 0.001
  });

  it("int() over a span above 2^32 still fills the upper half", () => {
    const random = new Random(13);
    const max = 2 ** 40;
    const values = draws(random, 2000, (r) => r.int(0, max));
    expect(values.filter((value) => value > max / 2).length).toBeGreaterThan(900);
    expect(values.filter((value) => value > max / 2).length).toBeLessThan(1100);
  });

  it("bool(p) is true about p of the time, never for 0 and always for 1", () => {
    const random = new Random(5);
    const trues = draws(random, 20_000, (r) => (r.bool(0.25) ? 1 : 0)).reduce((a, b) => a + b, 0);
    expect(trues / 20_000).toBeGreaterThan(0.23);
    expect(trues / 20_000).toBeLessThan(0.27);
    expect(draws(random, 1000, (r) => (r.bool(0) ? 1 : 0)).includes(1)).toBe(false);
    expect(draws(random, 1000, (r) => (r.bool(1) ? 1 : 0)).includes(0)).toBe(false);
    expect(() => random.bool(1.5)).toThrow(/within/);
  });

  it("pick() returns every element of the array and refuses an empty one", () => {
    const random = new Random(6);
    const items = ["a", "b", "c", "d"] as const;
    const seen = new Set(draws(random, 200, (r) => items.indexOf(r.pick(items))));
    expect([...seen].sort()).toEqual([0, 1, 2, 3]);
    expect(() => random.pick([])).toThrow(/non-empty/);
  });

  it("weighted() follows the weights and never picks a zero weight", () => {
    const random = new Random(8);
    const counts = { a: 0, b: 0, never: 0 };
    for (let index = 0; index < 10_000; index += 1) {
      const choice = random.weighted<keyof typeof counts>([
        ["a", 1],
        ["never", 0],
        ["b", 3],
      ]);
      counts[choice] += 1;
    }
    expect(counts.never).toBe(0);
    expect(counts.b / counts.a).toBeGreaterThan(2.7);
    expect(counts.b / counts.a).toBeLessThan(3.3);
    expect(() => random.weighted([["x", 0]])).toThrow(/positive/);
  });

  it("shuffle() permutes in place, keeps every element, and reaches every order of three", () => {
    const random = new Random(9);
    const items = Array.from({ length: 50 }, (_, index) => index);
    const shuffled = random.shuffle(items);
    expect(shuffled).toBe(items);
    expect([...items].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, index) => index));
    expect(items).not.toEqual(Array.from({ length: 50 }, (_, index) => index));
    const orders = new Map<string, number>();
    for (let index = 0; index < 6000; index += 1) {
      const order = random.shuffle(["a", "b", "c"]).join("");
      orders.set(order, (orders.get(order) ?? 0) + 1);
    }
    expect(orders.size).toBe(6);
    for (const count of orders.values()) expect(count).toBeGreaterThan(800);
    expect(random.shuffle([])).toEqual([]);
  });

  it("fork() depends only on the seed and the label, not on draws made before (R3)", () => {
    const fresh = new Random(21);
    const used = new Random(21);
    draws(used, 100, (r) => r.uint32());
    const stream = (random: Random) => draws(random, 10, (r) => r.uint32());
    expect(stream(used.fork("network"))).toEqual(stream(fresh.fork("network")));
    // Forking draws nothing from the parent.
    const parent = new Random(21);
    parent.fork("clock");
    expect(stream(parent)).toEqual(stream(new Random(21)));
  });

  it("fork() streams differ by label, from their parent, and by parent seed", () => {
    const parent = new Random(21);
    const streams = [
      parent.fork("network"),
      parent.fork("clock"),
      parent.fork("network").fork("network"),
      new Random(22).fork("network"),
      new Random(21),
    ].map((random) => draws(random, 6, (r) => r.uint32()).join(","));
    expect(new Set(streams).size).toBe(streams.length);
  });
});
