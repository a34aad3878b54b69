/**
 * Tidy: the architecture's arrows and the core's purity, checked on the source
 * tree (STYLE practice 13). A failure names the file and the rule it breaks.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
const src = join(root, "src");

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return /\.tsx?$/.test(path) ? [path] : [];
  });
}

const sources = files(src).map((path) => ({
  path: relative(src, path),
  text: readFileSync(path, "utf8"),
}));

/** The folder a source file belongs to, for the import rules. */
function layer(path: string): string {
  const parts = path.split("/");
  if (parts[0] === "store" && parts[1] === "sqlite") return "store/sqlite";
  if (parts[0] === "store" && parts[1] === "postgres") return "store/postgres";
  if (parts[0] === "server" && parts[1] === "http") return "server/http";
  return parts.length > 1 ? (parts[0] as string) : "root";
}

/** Which layers each layer may import (STYLE "The shape of the code"). */
const ALLOWED: Record<string, string[]> = {
  lib: ["lib"],
  protocol: ["protocol", "lib"],
  core: ["core", "protocol", "lib"],
  store: ["store", "core", "protocol", "lib"],
  "store/sqlite": ["store/sqlite", "store", "core", "protocol", "lib"],
  "store/postgres": ["store/postgres", "store", "core", "protocol", "lib"],
  server: ["server", "core", "store", "protocol", "lib"],
  "server/http": ["server/http", "server", "core", "store", "protocol", "lib"],
  sdk: ["sdk", "protocol", "lib"],
  node: [
    "node",
    "server",
    "server/http",
    "core",
    "store",
    "store/sqlite",
    "store/postgres",
    "sdk",
    "protocol",
    "lib",
  ],
  cli: ["cli", "node", "sdk", "protocol", "lib"],
  dashboard: ["dashboard", "protocol"],
  testing: ["testing", "server", "core", "store", "sdk", "protocol", "lib"],
  root: ["root", "node", "sdk", "protocol", "lib", "testing"],
};

function relativeImports(text: string): string[] {
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)].map((match) => match[1] as string);
}

describe("tidy", () => {
  it("every import follows the architecture's arrows", () => {
    const violations: string[] = [];
    for (const { path, text } of sources) {
      const from = layer(path);
      const allowed = ALLOWED[from];
      if (allowed === undefined) {
        violations.push(`${path}: folder ${from} has no import rule in test/tidy`);
        continue;
      }
      for (const target of relativeImports(text)) {
        const resolved = relative(src, join(src, path, "..", target));
        if (resolved.startsWith("..")) {
          violations.push(`${path}: imports ${target} from outside src/`);
          continue;
        }
        const to = layer(resolved);
        if (!allowed.includes(to)) violations.push(`${path}: ${from} may not import ${to} (${target})`);
      }
    }
    expect(violations).toEqual([]);
  });

  it("the dashboard takes only types from protocol (it is bundled for the browser alone)", () => {
    const violations = sources
      .filter(({ path }) => path.startsWith("dashboard/"))
      .flatMap(({ path, text }) =>
        [...text.matchAll(/^import\s+(?!type\s)[^;]*from\s+"(\.\.\/protocol\/[^"]+)"/gm)].map(
          (match) => `${path}: imports values from ${match[1]}; use import type`,
        ),
      );
    expect(violations).toEqual([]);
  });

  it("the core reads no clock, no randomness, no console and does no I/O", () => {
    const forbidden = [
      /Date\.now\(/,
      /new Date\(\)/,
      /Math\.random\(/,
      /console\./,
      /from "node:/,
      /\bawait\b/,
      /\basync\b/,
    ];
    const violations = sources
      .filter(({ path }) => path.startsWith("core/"))
      .flatMap(({ path, text }) =>
        forbidden.filter((pattern) => pattern.test(text)).map((pattern) => `${path}: matches ${pattern}`),
      );
    expect(violations).toEqual([]);
  });

  it("no source file outgrows the size cap", () => {
    const cap = (path: string) => (path.endsWith(".test.ts") ? 1500 : 900);
    const violations = sources
      .filter(({ path, text }) => text.split("\n").length > cap(path))
      .map(({ path, text }) => `${path}: ${text.split("\n").length} lines (cap ${cap(path)})`);
    expect(violations).toEqual([]);
  });

  it("file names are kebab-case", () => {
    const violations = sources.map(({ path }) => path).filter((path) => !/^[a-z0-9/.-]+$/.test(path));
    expect(violations).toEqual([]);
  });
});
