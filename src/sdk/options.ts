/**
 * Per-call options, always wrapped (`ctx.options({...})`) and passed last, so a
 * plain object argument is never mistaken for options (INTERFACES.md).
 */
import type { RetryPolicy } from "./retry.js";

export interface CallOptions {
  /** The call's promise id; default the next child id `<parent>.<n>`. */
  id?: string;
  /** Worker group (or full address) that runs a remote call; default this worker's group. */
  target?: string;
  /** Milliseconds from now until the call's promise times out; capped by the caller's own deadline. */
  timeout?: number;
  /** Version of the registered function to call; default the latest. */
  version?: number;
  /** Retry policy of a local step; default exponential (see retry.ts). */
  retry?: RetryPolicy;
  /** Extra tags on the call's promise. */
  tags?: Record<string, string>;
}

export class Options {
  constructor(readonly values: Readonly<CallOptions>) {}
}

export function options(values: CallOptions): Options {
  return new Options(values);
}

/** Splits `[...args, options?]` into the arguments and the options. */
export function splitOptions(args: readonly unknown[]): { args: unknown[]; options: CallOptions } {
  const last = args[args.length - 1];
  if (last instanceof Options) return { args: args.slice(0, -1), options: last.values };
  return { args: [...args], options: {} };
}
