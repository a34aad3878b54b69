/**
 * Field checks the request schemas (parse.ts) refine with: plain predicates over
 * one field's value, kept apart so that parse.ts holds the schemas and their order.
 */
import { Cron as CronJob } from "croner";

/** An address the server can deliver to: `http://…`, `https://…` or `poll://…@…`. */
export function isDeliverable(address: string): boolean {
  return (
    address.startsWith("http://") ||
    address.startsWith("https://") ||
    (address.startsWith("poll://") && address.includes("@"))
  );
}

/**
 * `null` when croner parses it (5 fields, or 6/7 with leading seconds, UTC), else
 * why not. Constructed exactly as `core/cron.ts` does, so what passes here the core
 * can evaluate. (Whether a parseable expression still occurs, e.g. `0 0 30 2 *`
 * never does, depends on `now`: the core judges that.)
 */
export function cronProblem(cron: string): string | null {
  try {
    new CronJob(cron, { timezone: "UTC", paused: true, mode: "auto" });
    return null;
  } catch (error) {
    const reason = error instanceof Error ? error.message.replace(/^Cron\w*: /, "") : String(error);
    return `expected a cron expression of 5 fields, or 6/7 with leading seconds (${reason})`;
  }
}
