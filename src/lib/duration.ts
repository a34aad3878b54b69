/**
 * Human durations, as users type them (INTERFACES.md: `500ms`, `30s`, `5m`, `2h`,
 * `7d`), and back. Owns only the text format; every caller decides which range it
 * accepts (a retry interval must be positive, a promise timeout may be anything).
 *
 * I1. `parseDuration` returns a non-negative safe integer number of milliseconds,
 *     or throws `DurationError` naming the text at fault; it never guesses a unit.
 * I2. Compound forms (`1h30m`) are the sum of their parts; each unit appears in
 *     descending order at most once, so `30m1h` and `5s5s` are refused.
 */

export class DurationError extends Error {
  override name = "DurationError";
}

const UNIT_MS = {
  ms: 1,
  s: 1000,
  m: 60 * 1000,
  h: 60 * 60 * 1000,
  d: 24 * 60 * 60 * 1000,
} as const;

type Unit = keyof typeof UNIT_MS;

/** Units from largest to smallest: the only order a compound duration may use (I2). */
const UNIT_ORDER: readonly Unit[] = ["d", "h", "m", "s", "ms"];

const PART = /(\d+)(ms|s|m|h|d)/y;

const EXAMPLES = "500ms, 30s, 5m, 2h, 7d or 1h30m";

/** Parses `500ms`, `30s`, `5m`, `2h`, `7d` (or a compound such as `1h30m`) into milliseconds. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (trimmed === "") {
    throw new DurationError(`invalid duration "": expected a number with a unit, e.g. ${EXAMPLES}`);
  }
  if (/^\d+$/.test(trimmed)) {
    throw new DurationError(`invalid duration "${text}": missing unit (ms, s, m, h or d), e.g. ${EXAMPLES}`);
  }
  let totalMs = 0;
  let position = 0;
  let lastUnitIndex = -1;
  while (position < trimmed.length) {
    PART.lastIndex = position;
    const match = PART.exec(trimmed);
    if (match === null) {
      throw new DurationError(`invalid duration "${text}": expected a number with a unit, e.g. ${EXAMPLES}`);
    }
    const amount = Number(match[1]);
    const unit = match[2] as Unit;
    const unitIndex = UNIT_ORDER.indexOf(unit);
    if (unitIndex <= lastUnitIndex) {
      throw new DurationError(
        `invalid duration "${text}": units must go from largest to smallest, once each`,
      );
    }
    lastUnitIndex = unitIndex;
    totalMs += amount * UNIT_MS[unit];
    position = PART.lastIndex;
  }
  if (!Number.isSafeInteger(totalMs)) {
    throw new DurationError(`invalid duration "${text}": too large`);
  }
  return totalMs;
}

/**
 * A short human rendering of a millisecond count: `0ms`, `450ms`, `1.2s`, `3m 5s`,
 * `2h 3m`, `7d 2h`. Lossy on purpose (two units at most); for display only.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const sign = ms < 0 ? "-" : "";
  const abs = Math.abs(Math.round(ms));
  if (abs < UNIT_MS.s) return `${sign}${abs}ms`;
  if (abs < UNIT_MS.m) {
    const seconds = abs / UNIT_MS.s;
    const text = seconds < 10 ? seconds.toFixed(1).replace(/\.0$/, "") : String(Math.floor(seconds));
    return `${sign}${text}s`;
  }
  for (let index = 0; index < UNIT_ORDER.length - 2; index += 1) {
    const unit = UNIT_ORDER[index]!;
    const smaller = UNIT_ORDER[index + 1]!;
    if (abs >= UNIT_MS[unit]) {
      const whole = Math.floor(abs / UNIT_MS[unit]);
      const rest = Math.floor((abs % UNIT_MS[unit]) / UNIT_MS[smaller]);
      return rest === 0 ? `${sign}${whole}${unit}` : `${sign}${whole}${unit} ${rest}${smaller}`;
    }
  }
  // Unreachable for abs >= 1 minute (the loop covers d, h, m); kept total for the type checker.
  return `${sign}${abs}ms`;
}
