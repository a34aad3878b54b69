/**
 * Executable invariants. A failed assertion is a programmer error: it throws an
 * `AssertionError` that nothing in Pledge catches, so the process crashes loudly
 * instead of continuing on corrupt state. Assertions stay on in production.
 */
export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(`invariant violated: ${message}`);
}

export function unreachable(value: never, message = "unreachable"): never {
  throw new AssertionError(`invariant violated: ${message}: ${JSON.stringify(value)}`);
}
