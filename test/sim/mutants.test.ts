/**
 * The mutant catalogue against the current sources (`sim/mutants/catalogue.ts`,
 * M1–M3). Running the mutants is `npm run sim:mutants` (minutes); this only
 * checks, in milliseconds, that every patch still applies exactly once and
 * leaves code that parses, so a refactor that moves an anchor fails here first.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { MUTANTS, SURVIVORS } from "../../sim/mutants/catalogue.js";
import { patchAll, StaleAnchor } from "../../sim/mutants/patch.js";

const root = join(import.meta.dirname, "..", "..");
const read = (file: string) => readFileSync(join(root, file), "utf8");

function syntaxErrors(file: string, text: string): string[] {
  const output = ts.transpileModule(text, {
    fileName: file,
    reportDiagnostics: true,
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext },
  });
  return (output.diagnostics ?? []).map((diagnostic) =>
    ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"),
  );
}

describe("the mutant catalogue", () => {
  it("has at least eight gate mutants and unique kebab-case names", () => {
    expect(MUTANTS.length).toBeGreaterThanOrEqual(8);
    const names = [...MUTANTS, ...SURVIVORS].map((mutant) => mutant.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
  });

  for (const mutant of [...MUTANTS, ...SURVIVORS])
    it(`${mutant.name}: every anchor is found exactly once and the patched code still parses`, () => {
      const patched = patchAll(mutant, read);
      for (const [file, text] of patched) {
        expect(text).not.toBe(read(file));
        expect(syntaxErrors(file, text)).toEqual([]);
      }
    });

  it("refuses an anchor found twice or not at all, a no-op patch, and a file outside src/", () => {
    const text = "a();\nb();\na();\n";
    const mutant = (find: string, replace = "c();", file = "src/x.ts") => ({
      name: "probe",
      breaks: "nothing",
      patches: [{ file, find, replace }],
    });
    expect(patchAll(mutant("b();"), () => text).get("src/x.ts")).toBe("a();\nc();\na();\n");
    expect(() => patchAll(mutant("a();"), () => text)).toThrow(StaleAnchor);
    expect(() => patchAll(mutant("d();"), () => text)).toThrow(StaleAnchor);
    expect(() => patchAll(mutant("b();", "b();"), () => text)).toThrow(StaleAnchor);
    expect(() => patchAll(mutant("b();", "c();", "sim/x.ts"), () => text)).toThrow(StaleAnchor);
    expect(patchAll(mutant("b();", "$&$&"), () => text).get("src/x.ts")).toBe("a();\n$&$&\na();\n");
  });

  it("gives each survivor a reason", () => {
    for (const survivor of SURVIVORS) expect(survivor.why.length).toBeGreaterThan(40);
  });
});
