/** Flag checking shared by the benchmarks: a bad flag prints what was wrong and exits 2. */

/** Returns a `usage` for one benchmark: prints `<bench>: <message>` and exits 2. */
export function usageFor(bench: string): (message: string) => never {
  return (message) => {
    process.stderr.write(`${bench}: ${message}\n`);
    process.exit(2);
  };
}

/** Parses `--name`'s text as a positive number (an integer when asked), or stops with `usage`. */
export function positiveFlag(
  usage: (message: string) => never,
  name: string,
  text: string,
  integer: boolean,
): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value)))
    usage(`--${name}: expected a positive ${integer ? "integer" : "number"}, got ${JSON.stringify(text)}`);
  return value;
}
