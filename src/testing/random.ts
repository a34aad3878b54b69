/**
 * A seeded pseudo-random number generator for simulations and tests (STYLE
 * practices 3 and 4): every random choice a run makes comes from one of these,
 * so the same seed replays the same run. No dependency, no global state, never
 * `Math.random`.
 *
 * The generator is xoshiro128** (Blackman and Vigna): four 32-bit words of
 * state, period 2^128 − 1, good statistical quality, and only 32-bit integer
 * arithmetic (`Math.imul`, shifts), which JavaScript does exactly. The state is
 * filled from the 32-bit seed by splitmix32, so neighbouring seeds (1, 2, 3…)
 * give unrelated streams.
 *
 * What it leaves to others: what to draw (workloads, fault plans) and when. It
 * is not cryptographic; never use it for tokens or ids that must be unguessable.
 *
 * Invariants (the unit tests cite them):
 *  R1  The sequence of every method is a function of the seed and the calls made
 *      before it: same seed, same calls → same results.
 *  R2  The state is never all zero (xoshiro's one fixed point).
 *  R3  `fork(label)` depends only on this generator's seed and `label`, not on how
 *      many values were drawn: adding draws to one stream never moves another.
 *  R4  `int` is unbiased over its whole range (rejection sampling, no modulo skew).
 */
import { assert } from "../lib/assert.js";

const TWO_TO_32 = 0x1_0000_0000;
const TWO_TO_53 = 2 ** 53;
const GOLDEN_GAMMA = 0x9e3779b9;

/** splitmix32's output function: a bijective 32-bit mixer. */
function mix32(value: number): number {
  let z = value | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** FNV-1a over the UTF-16 code units of `text`, then mixed: a label's 32-bit key. */
function hashLabel(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) {
    hash = Math.imul(hash ^ text.charCodeAt(index), 0x01000193);
  }
  return mix32(hash);
}

function rotateLeft(value: number, bits: number): number {
  return (value << bits) | (value >>> (32 - bits));
}

export class Random {
  /** The 32-bit seed this generator started from; print it with any failure. */
  readonly seed: number;
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed`: any safe integer; it is reduced to 32 bits (`seed >>> 0`). */
  constructor(seed: number) {
    assert(Number.isSafeInteger(seed), `seed is a safe integer, got ${seed}`);
    this.seed = seed >>> 0;
    let counter = this.seed;
    const nextSeedWord = () => {
      counter = (counter + GOLDEN_GAMMA) | 0;
      return mix32(counter) | 0;
    };
    this.s0 = nextSeedWord();
    this.s1 = nextSeedWord();
    this.s2 = nextSeedWord();
    this.s3 = nextSeedWord();
    // R2: splitmix32 is a bijection of a counter, so four successive outputs are never all zero;
    // checked anyway because an all-zero state would make every later draw zero.
    assert((this.s0 | this.s1 | this.s2 | this.s3) !== 0, "xoshiro state is not all zero");
  }

  /** A uniform integer in [0, 2^32). */
  uint32(): number {
    const result = Math.imul(rotateLeft(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotateLeft(this.s3, 11);
    return result;
  }

  /** A uniform float in [0, 1) with 53 random bits (every double of the form k / 2^53). */
  next(): number {
    const high = this.uint32() >>> 5; // 27 bits
    const low = this.uint32() >>> 6; // 26 bits
    return (high * 2 ** 26 + low) / TWO_TO_53;
  }

  /** A uniform integer in [min, maxInclusive]; both ends are safe integers and the span at most 2^53. */
  int(min: number, maxInclusive: number): number {
    assert(Number.isSafeInteger(min) && Number.isSafeInteger(maxInclusive), "int bounds are safe integers");
    assert(min <= maxInclusive, `int range is not empty: [${min}, ${maxInclusive}]`);
    const span = maxInclusive - min + 1;
    assert(span <= TWO_TO_53, `int span ${span} is at most 2^53`);
    // R4: draw below the largest multiple of `span` that fits, so each residue is equally likely.
    if (span <= TWO_TO_32) {
      const limit = TWO_TO_32 - (TWO_TO_32 % span);
      for (;;) {
        const draw = this.uint32();
        if (draw < limit) return min + (draw % span);
      }
    }
    const limit = TWO_TO_53 - (TWO_TO_53 % span);
    for (;;) {
      const draw = (this.uint32() >>> 11) * TWO_TO_32 + this.uint32(); // 53 bits
      if (draw < limit) return min + (draw % span);
    }
  }

  /** True with probability `probability` (0 never, 1 always). */
  bool(probability = 0.5): boolean {
    assert(probability >= 0 && probability <= 1, `probability ${probability} is within [0, 1]`);
    return this.next() < probability;
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, "pick from a non-empty array");
    return items[this.int(0, items.length - 1)] as T;
  }

  /** An element chosen with probability proportional to its (non-negative) weight. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, weight] of choices) {
      assert(Number.isFinite(weight) && weight >= 0, `weight ${weight} is finite and non-negative`);
      total += weight;
    }
    assert(total > 0, "weighted choice has a positive total weight");
    let point = this.next() * total;
    for (const [item, weight] of choices) {
      if (point < weight) return item;
      point -= weight;
    }
    // Rounding left `point` at the very top: the last choice with weight owns it.
    const last = choices.findLast(([, weight]) => weight > 0);
    assert(last !== undefined, "weighted choice has a positive weight");
    return last[0];
  }

  /** Shuffles `items` in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let index = items.length - 1; index > 0; index -= 1) {
      const other = this.int(0, index);
      const held = items[index] as T;
      items[index] = items[other] as T;
      items[other] = held;
    }
    return items;
  }

  /**
   * An independent generator for one part of a run (`network`, `clock`, `worker-3`…).
   * R3: it depends only on this generator's seed and `label`, so the same label
   * gives the same stream however many values were drawn here, and draws here never
   * move it.
   */
  fork(label: string): Random {
    return new Random(mix32(hashLabel(label) ^ mix32(this.seed + GOLDEN_GAMMA)));
  }
}
