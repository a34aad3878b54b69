/**
 * Cron evaluation for schedules (§3.9), in UTC, through `croner`. The contract:
 * `nextOccurrence(cron, t) > t`, and the occurrences in a window are exactly the
 * chain of `nextOccurrence` calls. Parsed expressions are cached.
 */
import { Cron } from "croner";
import { assert } from "../lib/assert.js";

const cache = new Map<string, Cron>();
const CACHE_LIMIT = 1000;

function parsed(expression: string): Cron {
  let cron = cache.get(expression);
  if (cron === undefined) {
    cron = new Cron(expression, { timezone: "UTC", paused: true, mode: "auto" });
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(expression, cron);
  }
  return cron;
}

/**
 * An instant no schedule reaches: the `nextRunAt` of a schedule whose cron has no
 * further occurrence (a 7-field expression whose years have passed).
 */
export const NEVER = Number.MAX_SAFE_INTEGER;

/** Throws when `expression` is not a cron expression this server understands or never occurs after `nowMs`. */
export function validateCron(expression: string, nowMs: number): void {
  if (parsed(expression).nextRun(new Date(nowMs)) === null)
    throw new Error(`cron expression '${expression}' has no occurrence after now`);
}

/** The first occurrence strictly after `afterMs`, in ms, or `NEVER`. */
export function nextOccurrence(expression: string, afterMs: number): number {
  const next = parsed(expression).nextRun(new Date(afterMs));
  if (next === null) return NEVER;
  const at = next.getTime();
  assert(at > afterMs, `cron ${expression}: next occurrence is after ${afterMs}`);
  return at;
}
