/**
 * What the dashboard's browser tests need besides the page: Debian's chromium
 * driven by playwright-core (never a downloaded browser), a fresh profile per
 * run, and a dashboard build no older than its sources.
 *
 * Without /usr/bin/chromium the tests are skipped with a loud message, except
 * under CI=true, where they fail (`.ci/run` installs the package).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";

export const ROOT = resolve(import.meta.dirname, "../..");
export const CHROMIUM = "/usr/bin/chromium";
export const ARTIFACTS = join(ROOT, "test-artifacts");

export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export const chromiumAvailable = existsSync(CHROMIUM);
export const requireChromium = process.env.CI === "true";

/** Says loudly, once per file, that the browser tests are skipped and why. */
export function warnSkipped(): void {
  const bar = "!".repeat(78);
  console.warn(
    `\n${bar}\n!! SKIPPED: the dashboard's browser tests need ${CHROMIUM}, which is missing.\n` +
      `!! Install Debian's package: apt-get install -y chromium   (under CI=true they fail instead)\n${bar}\n`,
  );
}

function newestMs(directory: string): number {
  let newest = 0;
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMs(path));
    else if (!entry.name.endsWith(".test.ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function dashboardIsBuilt(): boolean {
  const built = join(ROOT, "dist", "dashboard", "app.js");
  return existsSync(built) && statSync(built).mtimeMs >= newestMs(join(ROOT, "src", "dashboard"));
}

/**
 * Builds dist/dashboard when it is missing or older than src/dashboard (`npm test`
 * has normally just built it). Test files run in parallel: one builds under a
 * lock, the others wait for it.
 */
export async function ensureDashboardBuilt(): Promise<void> {
  const lock = join(tmpdir(), `pledge-dashboard-build-${Buffer.from(ROOT).toString("hex").slice(-32)}.lock`);
  const deadline = Date.now() + 120_000;
  while (!dashboardIsBuilt()) {
    try {
      mkdirSync(lock);
    } catch {
      if (Date.now() > deadline) throw new Error(`waited too long for ${lock}; remove it if no build runs`);
      await new Promise((done) => setTimeout(done, 250));
      continue;
    }
    try {
      if (!dashboardIsBuilt())
        execFileSync("npx", ["tsx", "scripts/build-dashboard.ts"], { cwd: ROOT, stdio: "pipe" });
    } finally {
      rmdirSync(lock);
    }
  }
}

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Headless chromium on a fresh `--user-data-dir` (playwright passes it for a persistent context). */
export async function launchChromium(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "pledge-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1440, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}
