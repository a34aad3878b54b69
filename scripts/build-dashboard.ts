/**
 * Builds the dashboard (`npm run build` runs it after `tsc`): bundles
 * `src/dashboard/main.tsx` and what it imports (preact included) into one
 * minified script with esbuild, and copies the page and its styles, into
 * `dist/dashboard/`. The server reads that folder (`src/node/dashboard-files.ts`);
 * the page then loads nothing from anywhere else.
 *
 * esbuild needs no install script of its own here: its JavaScript API runs the
 * platform binary that npm installs as an optional dependency.
 */
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "src", "dashboard");
const output = join(root, "dist", "dashboard");

rmSync(output, { recursive: true, force: true });
mkdirSync(output, { recursive: true });
await build({
  entryPoints: [join(source, "main.tsx")],
  outfile: join(output, "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  sourcemap: false,
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "eof",
  logLevel: "warning",
});
copyFileSync(join(source, "index.html"), join(output, "index.html"));
copyFileSync(join(source, "app.css"), join(output, "app.css"));
copyFileSync(join(source, "favicon.svg"), join(output, "favicon.svg"));
