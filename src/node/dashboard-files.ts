/**
 * Reads the dashboard's built files (`npm run build` bundles `src/dashboard` into
 * `dist/dashboard/`) for the HTTP edge to serve. The folder is found from this
 * module's own place: `../../dist/dashboard` is the same folder whether this runs
 * built (`dist/node/`), from source (`src/node/`, tests) or installed as a package.
 *
 * I1. Only the regular files directly in that folder with a known type are
 *     served, read once when a server starts listening.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { DashboardFile, DashboardFiles } from "../server/http/dashboard.js";

export const DASHBOARD_DIRECTORY = fileURLToPath(new URL("../../dist/dashboard/", import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

/** The built files by name, or undefined when the dashboard has not been built. */
export function loadDashboardFiles(directory: string = DASHBOARD_DIRECTORY): DashboardFiles | undefined {
  let names: string[];
  try {
    names = readdirSync(directory);
  } catch {
    return undefined;
  }
  const files = new Map<string, DashboardFile>();
  for (const name of names) {
    const contentType = CONTENT_TYPES[extname(name)];
    const path = join(directory, name);
    if (contentType === undefined || !statSync(path).isFile()) continue; // I1
    files.set(name, { body: new Uint8Array(readFileSync(path)), contentType });
  }
  return files.has("index.html") ? files : undefined;
}
