/**
 * Applying a mutant's patches to source text, with the catalogue's rules
 * (M1, M2 in `catalogue.ts`). Pure functions on strings: `sim/mutants.ts`
 * applies them to files in its temporary copies, and
 * `test/sim/mutants.test.ts` holds every anchor to the current sources, so a
 * refactor that moves one fails `npm test` rather than a later mutant run.
 */
import type { Mutant, Patch } from "./catalogue.js";

/** A patch that cannot be applied as written: the catalogue is stale. */
export class StaleAnchor extends Error {
  override name = "StaleAnchor";
}

export function occurrences(text: string, find: string): number {
  return find.length === 0 ? 0 : text.split(find).length - 1;
}

/** Checks M2 and that `find` occurs exactly once in `text` (M1); throws `StaleAnchor`. */
export function checkPatch(mutant: Mutant, patch: Patch, text: string): void {
  const where = `${mutant.name}: ${patch.file}`;
  if (!patch.file.startsWith("src/")) throw new StaleAnchor(`${where}: patches touch only src/ (M2)`);
  if (patch.find === patch.replace) throw new StaleAnchor(`${where}: the patch changes nothing (M2)`);
  const count = occurrences(text, patch.find);
  if (count !== 1)
    throw new StaleAnchor(`${where}: anchor found ${count} times, expected once (M1):\n${patch.find}`);
}

/**
 * Applies `mutant`'s patches to the files `read` returns, in order (a later
 * patch sees the earlier ones), and returns the patched text per file.
 */
export function patchAll(mutant: Mutant, read: (file: string) => string): Map<string, string> {
  if (mutant.patches.length === 0) throw new StaleAnchor(`${mutant.name}: no patches`);
  const patched = new Map<string, string>();
  for (const patch of mutant.patches) {
    const text = patched.get(patch.file) ?? read(patch.file);
    checkPatch(mutant, patch, text);
    // A function replacement, so `$&` and friends in the new text stay literal.
    patched.set(
      patch.file,
      text.replace(patch.find, () => patch.replace),
    );
  }
  return patched;
}
