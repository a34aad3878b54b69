/**
 * Retry policies for local steps (INTERFACES.md): every default is finite.
 * `exponential` (the default): 100 ms doubling to 30 s, at most 10 attempts;
 * `constant`, `linear`, `never`. A `NonRetryableError` stops at once.
 */
export type RetryPolicy =
  | { kind: "exponential"; initialMs?: number; factor?: number; maxMs?: number; maxAttempts?: number }
  | { kind: "constant"; delayMs?: number; maxAttempts?: number }
  | { kind: "linear"; stepMs?: number; maxAttempts?: number }
  | { kind: "never" };

export const DEFAULT_RETRY: RetryPolicy = {
  kind: "exponential",
  initialMs: 100,
  factor: 2,
  maxMs: 30_000,
  maxAttempts: 10,
};

/** Thrown by user code to fail a step at once, without retries. */
export class NonRetryableError extends Error {
  override name = "NonRetryableError";
}

/**
 * The delay before attempt `attempt + 1` after `attempt` attempts failed, or
 * undefined when the policy allows no more attempts.
 */
export function retryDelay(policy: RetryPolicy, attempt: number): number | undefined {
  switch (policy.kind) {
    case "never":
      return undefined;
    case "constant":
      return attempt < (policy.maxAttempts ?? 10) ? (policy.delayMs ?? 1000) : undefined;
    case "linear":
      return attempt < (policy.maxAttempts ?? 10) ? (policy.stepMs ?? 1000) * attempt : undefined;
    case "exponential": {
      if (attempt >= (policy.maxAttempts ?? 10)) return undefined;
      const delay = (policy.initialMs ?? 100) * (policy.factor ?? 2) ** (attempt - 1);
      return Math.min(delay, policy.maxMs ?? 30_000);
    }
  }
}
