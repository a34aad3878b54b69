/**
 * `npm run bench:server`: how fast one Pledge server commits, over HTTP and
 * beneath it. Figures and ratios, never pass/fail on time (STYLE, bench/).
 *
 *  1. HTTP: `--concurrency` closed-loop clients (default 16) against
 *     `startServer` (port 0, log level silent) on each store, running the
 *     workloads of support/http-load.ts: ops/s, p50/p99 per request kind, and
 *     commits per request / mean batch size from the server's counters.
 *  2. The HTTP floor: the same clients against a bare node:http server.
 *  3. Beneath HTTP: the raw better-sqlite3 insert loop (100-row and one-row
 *     transactions), the SQLite store's own share (read + apply, no step), and
 *     the core's `step` + `apply` loop on the SQLite store (and on the memory
 *     store), with the ratio raw ÷ core split into raw ÷ store × store ÷ core.
 *
 * Every figure is the median of `--runs` runs (default 3), each on a new server
 * and a new store. Progress goes to stderr (on a terminal, a live line counts
 * each measured run's seconds); stdout holds the tables and, last, one JSON line
 * with every figure.
 *
 * Flags: --store memory|sqlite|sqlite:<path>|both (default both; `sqlite` is a
 * temporary file) · --mode remote|embedded (default remote: the server in a child process, as real clients are) · --concurrency n · --sync full|normal
 * · --duration s (3) · --warmup s (0.5) · --runs n (3) · --replicas 1.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseStoreUrl } from "../src/node/open-store.js";
import { formatCount, formatDecimal, median, rounded, table } from "./support/figures.js";
import { positiveFlag, usageFor } from "./support/flags.js";
import { FLOOR_WORKLOAD, type RunFigures, runLoad, WORKLOADS, type Workload } from "./support/http-load.js";
import {
  coreLoopInMemory,
  coreLoopOnSqlite,
  ROWS_PER_TRANSACTION,
  rawInsertLoop,
  sqliteFiles,
  storeLoopOnSqlite,
} from "./support/sqlite-ceiling.js";
import { startTarget, type TargetStore } from "./support/targets.js";

const TARGET_SQLITE_PAIRS_PER_SECOND = 5000;
const TARGET_RAW_OVER_CORE = 2;
const LOOP_DURATION_MS = 1000;
const JIT_WARMUP_MS = 1500;

interface Settings {
  stores: ("memory" | "sqlite")[];
  /** A user-chosen SQLite file; otherwise a temporary directory holds them. */
  sqlitePath: string | undefined;
  mode: "embedded" | "remote";
  concurrency: number;
  sync: "full" | "normal";
  durationMs: number;
  warmupMs: number;
  runs: number;
}

const usage: (message: string) => never = usageFor("bench:server");
const positive = (name: string, text: string, integer: boolean) => positiveFlag(usage, name, text, integer);

function parseSettings(argv: string[]): Settings {
  const { values } = parseArgs({
    args: argv,
    options: {
      store: { type: "string", default: "both" },
      mode: { type: "string", default: "remote" },
      concurrency: { type: "string", default: "16" },
      sync: { type: "string", default: "full" },
      duration: { type: "string", default: "3" },
      warmup: { type: "string", default: "0.5" },
      runs: { type: "string", default: "3" },
      replicas: { type: "string", default: "1" },
    },
    strict: true,
  });
  let stores: Settings["stores"];
  let sqlitePath: string | undefined;
  if (values.store === "both") stores = ["memory", "sqlite"];
  else if (values.store === "sqlite") stores = ["sqlite"];
  else {
    let location: ReturnType<typeof parseStoreUrl>;
    try {
      location = parseStoreUrl(values.store);
    } catch (error) {
      usage(`--store: ${(error as Error).message}`);
    }
    if (location.kind === "postgres") usage("--store: PostgreSQL is not available in this build yet");
    stores = [location.kind];
    if (location.kind === "sqlite") {
      sqlitePath = location.path;
      if (sqliteFiles(sqlitePath).some((file) => fs.existsSync(file)))
        usage(
          `--store: ${sqlitePath} (or its -wal/-shm/.lock) exists; name a new file, the benchmark removes it`,
        );
    }
  }
  if (values.mode !== "embedded" && values.mode !== "remote")
    usage(`--mode: expected embedded or remote, got ${JSON.stringify(values.mode)}`);
  if (values.sync !== "full" && values.sync !== "normal")
    usage(`--sync: expected full or normal, got ${JSON.stringify(values.sync)}`);
  if (values.replicas !== "1")
    usage("--replicas: a memory or SQLite store has one owner process; replicas need PostgreSQL");
  const runs = positive("runs", values.runs, true);
  return {
    stores,
    sqlitePath,
    mode: values.mode,
    concurrency: positive("concurrency", values.concurrency, true),
    sync: values.sync,
    durationMs: positive("duration", values.duration, false) * 1000,
    warmupMs: Math.max(0, Number(values.warmup)) * 1000,
    runs,
  };
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

/**
 * On a terminal, one stderr line rewritten in place while a run measures
 * (`label 1.5 s / 3.5 s`); answers a function that clears it. Off a terminal, nothing.
 */
function liveLine(label: string, totalMs: number): () => void {
  if (process.stderr.isTTY !== true) return () => {};
  const startedAt = performance.now();
  const draw = () => {
    const elapsedMs = Math.min(totalMs, performance.now() - startedAt);
    process.stderr.write(
      `\r\u001b[2K  ${label} ${(elapsedMs / 1000).toFixed(1)} s / ${(totalMs / 1000).toFixed(1)} s`,
    );
  };
  draw();
  const timer = setInterval(draw, 250);
  return () => {
    clearInterval(timer);
    process.stderr.write("\r\u001b[2K");
  };
}

function fileSystemOf(directory: string): string {
  // findmnt names ext4 as such; stat -f reports its magic as ext2/ext3.
  for (const [command, args] of [
    ["findmnt", ["-n", "-o", "FSTYPE", "--target", directory]],
    ["stat", ["-f", "-c", "%T", directory]],
  ] as const) {
    try {
      const name = execFileSync(command, args, {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }).trim();
      if (name.length > 0) return name;
    } catch {
      // not installed here; try the next
    }
  }
  return "unknown";
}

function removeSqliteFiles(file: string): void {
  for (const name of sqliteFiles(file)) fs.rmSync(name, { force: true });
}

/** One unreported second of every cycle on a memory server, so the first scenario is not measured cold. */
async function warmUp(settings: Settings): Promise<void> {
  const target = await startTarget({ mode: settings.mode, store: { kind: "memory" }, sync: settings.sync });
  try {
    for (const workload of Object.values(WORKLOADS))
      await runLoad({
        url: target.url,
        concurrency: settings.concurrency,
        warmupMs: 0,
        durationMs: JIT_WARMUP_MS / 3,
        workload,
        idPrefix: `warmup-${workload.name}`,
        counters: () => target.counters(),
      });
  } finally {
    await target.close();
  }
  progress("  warmed up");
}

interface ScenarioFigures {
  store: "memory" | "sqlite" | "none";
  workload: string;
  runs: RunFigures[];
  median: {
    cyclesPerSecond: number;
    requestsPerSecond: number;
    commitsPerRequest: number | null;
    meanBatch: number | null;
    cpuMicrosPerRequest: number;
    latency: Record<string, { p50Ms: number; p99Ms: number }>;
  };
}

function medianOf(runs: RunFigures[], kinds: string[]): ScenarioFigures["median"] {
  const nullable = (pick: (run: RunFigures) => number | null) => {
    const values = runs.map(pick).filter((value): value is number => value !== null);
    return values.length === 0 ? null : median(values);
  };
  return {
    cyclesPerSecond: median(runs.map((run) => run.cyclesPerSecond)),
    requestsPerSecond: median(runs.map((run) => run.requestsPerSecond)),
    commitsPerRequest: nullable((run) => run.commitsPerRequest),
    meanBatch: nullable((run) => run.meanBatch),
    cpuMicrosPerRequest: median(runs.map((run) => run.cpuMicrosPerRequest)),
    latency: Object.fromEntries(
      kinds.map((kind) => [
        kind,
        {
          p50Ms: median(runs.map((run) => run.latency[kind]?.p50Ms ?? Number.NaN)),
          p99Ms: median(runs.map((run) => run.latency[kind]?.p99Ms ?? Number.NaN)),
        },
      ]),
    ),
  };
}

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2));
  const startedAt = performance.now();
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "pledge-bench-"));
  const sqliteDirectory = settings.sqlitePath ? path.dirname(path.resolve(settings.sqlitePath)) : scratch;
  const synchronousSeen = new Set<string>();
  let fileCounter = 0;
  const nextSqliteFile = () => {
    fileCounter += 1;
    return settings.sqlitePath ?? path.join(scratch, `run-${fileCounter}.db`);
  };

  const cpus = os.cpus();
  const environment = {
    node: process.version,
    cores: cpus.length,
    cpu: cpus[0]?.model.trim() ?? "unknown",
    platform: `${process.platform} ${process.arch}`,
    /** Other work on the machine skews every figure; printed so a noisy run shows. */
    loadAverage: os.loadavg().map((value) => rounded(value)),
    sqliteDirectory,
    fileSystem: fileSystemOf(sqliteDirectory),
  };

  try {
    const scenarios: ScenarioFigures[] = [];
    const measure = async (store: TargetStore["kind"], workload: Workload): Promise<ScenarioFigures> => {
      const runs: RunFigures[] = [];
      for (let run = 1; run <= settings.runs; run += 1) {
        const file = store === "sqlite" ? nextSqliteFile() : undefined;
        const targetStore: TargetStore =
          file !== undefined ? { kind: "sqlite", path: file } : { kind: store as "memory" | "floor" };
        const target = await startTarget({ mode: settings.mode, store: targetStore, sync: settings.sync });
        if (target.synchronous !== undefined) synchronousSeen.add(target.synchronous);
        const clearLine = liveLine(
          `${store} ${workload.name} run ${run}/${settings.runs}`,
          settings.warmupMs + settings.durationMs,
        );
        try {
          const figures = await runLoad({
            url: target.url,
            concurrency: settings.concurrency,
            warmupMs: settings.warmupMs,
            durationMs: settings.durationMs,
            workload,
            idPrefix: `${workload.name}-${run}`,
            counters: () => target.counters(),
          }).finally(clearLine);
          runs.push(figures);
          progress(
            `  ${store} ${workload.name} run ${run}: ${formatCount(figures.cyclesPerSecond)} cycles/s, ${formatCount(figures.requestsPerSecond)} requests/s`,
          );
        } finally {
          await target.close();
          if (file !== undefined) removeSqliteFiles(file);
        }
      }
      return {
        store: store === "floor" ? "none" : store,
        workload: workload.name,
        runs,
        median: medianOf(runs, workload.kinds),
      };
    };

    // The first runs of a process would otherwise pay for JIT compilation of the clients and the server.
    await warmUp(settings);
    for (const store of settings.stores)
      for (const workload of Object.values(WORKLOADS)) scenarios.push(await measure(store, workload));
    const floor = await measure("floor", FLOOR_WORKLOAD);

    // Beneath HTTP.
    const loopRuns =
      <T>(name: string, loop: () => T | Promise<T>) =>
      async (): Promise<T[]> => {
        const results: T[] = [];
        for (let run = 1; run <= settings.runs; run += 1) {
          results.push(await loop());
          progress(`  ${name} run ${run}`);
        }
        return results;
      };
    const withFile =
      <T>(loop: (file: string) => T | Promise<T>) =>
      async () => {
        const file = path.join(sqliteDirectory, `pledge-bench-loop-${process.pid}-${++fileCounter}.db`);
        try {
          return await loop(file);
        } finally {
          removeSqliteFiles(file);
        }
      };
    const loopOptions = { sync: settings.sync, durationMs: LOOP_DURATION_MS };
    const sqliteSelected = settings.stores.includes("sqlite");
    const raw100 = sqliteSelected
      ? await loopRuns(
          "raw 100 rows/tx",
          withFile((file) =>
            rawInsertLoop({ ...loopOptions, file, rowsPerTransaction: ROWS_PER_TRANSACTION }),
          ),
        )()
      : [];
    const raw1 = sqliteSelected
      ? await loopRuns(
          "raw 1 row/tx",
          withFile((file) => rawInsertLoop({ ...loopOptions, file, rowsPerTransaction: 1 })),
        )()
      : [];
    const storeSqlite = sqliteSelected
      ? await loopRuns(
          "store on SQLite",
          withFile((file) => storeLoopOnSqlite({ ...loopOptions, file })),
        )()
      : [];
    const coreSqlite = sqliteSelected
      ? await loopRuns(
          "core on SQLite",
          withFile((file) => coreLoopOnSqlite({ ...loopOptions, file })),
        )()
      : [];
    const coreMemory = await loopRuns("core on memory", () => coreLoopInMemory(LOOP_DURATION_MS))();
    for (const run of [...raw100, ...raw1]) synchronousSeen.add(run.synchronous);

    const ceiling = {
      raw100RowsPerSecond: median(raw100.map((run) => run.rowsPerSecond)),
      raw100TransactionsPerSecond: median(raw100.map((run) => run.transactionsPerSecond)),
      raw1TransactionsPerSecond: median(raw1.map((run) => run.transactionsPerSecond)),
      storeSqliteRowsPerSecond: median(storeSqlite.map((run) => run.rowsPerSecond)),
      coreSqliteRowsPerSecond: median(coreSqlite.map((run) => run.rowsPerSecond)),
      coreMemoryRowsPerSecond: median(coreMemory.map((run) => run.rowsPerSecond)),
    };
    const rawOverCore = ceiling.raw100RowsPerSecond / ceiling.coreSqliteRowsPerSecond;
    const rawOverStore = ceiling.raw100RowsPerSecond / ceiling.storeSqliteRowsPerSecond;
    const storeOverCore = ceiling.storeSqliteRowsPerSecond / ceiling.coreSqliteRowsPerSecond;
    const synchronous = [...synchronousSeen].join(",") || "n/a";

    // Report.
    const out: string[] = [];
    out.push("Pledge bench:server");
    out.push(
      `node ${environment.node} · ${environment.cores} cores (${environment.cpu}) · ${environment.platform} · load ${environment.loadAverage.join(" ")} · mode ${settings.mode}${settings.mode === "embedded" ? " (clients and server share this process)" : " (server in a child process)"} · concurrency ${settings.concurrency}`,
    );
    out.push(
      `SQLite: PRAGMA synchronous = ${synchronous} · journal_mode WAL · locking_mode EXCLUSIVE · files in ${sqliteDirectory} (${environment.fileSystem})`,
    );
    out.push(
      `each figure: median of ${settings.runs} runs, ${settings.durationMs / 1000} s measured after ${settings.warmupMs / 1000} s warm-up, a new server and store per run (after ${JIT_WARMUP_MS / 1000} s of unreported load to warm the JIT)`,
    );
    out.push("");
    out.push("cycles:");
    for (const workload of [...Object.values(WORKLOADS), FLOOR_WORKLOAD])
      out.push(`  ${workload.name.padEnd(8)} ${workload.description}`);
    out.push("");
    out.push(
      `HTTP, ${settings.concurrency} clients (commits/req and batch from RunningServer.stats in the window; CPU µs/req = the server process's CPU time per request it handled, ${settings.mode === "embedded" ? "clients included, as they share the process" : "clients excluded"})`,
    );
    out.push(
      table(
        [
          "store",
          "cycle",
          "cycles/s",
          "requests/s",
          "commits/req",
          "batch",
          "CPU µs/req",
          "latency ms p50 / p99 per request",
        ],
        [...scenarios, floor].map((scenario) => [
          scenario.store,
          scenario.workload,
          formatCount(scenario.median.cyclesPerSecond),
          formatCount(scenario.median.requestsPerSecond),
          scenario.median.commitsPerRequest === null
            ? "—"
            : formatDecimal(scenario.median.commitsPerRequest, 3),
          scenario.median.meanBatch === null ? "—" : formatDecimal(scenario.median.meanBatch, 1),
          formatCount(scenario.median.cpuMicrosPerRequest),
          Object.entries(scenario.median.latency)
            .map(([kind, { p50Ms, p99Ms }]) => `${kind} ${formatDecimal(p50Ms)} / ${formatDecimal(p99Ms)}`)
            .join(" · "),
        ]),
      ),
    );
    out.push("");
    out.push(`Beneath HTTP (${LOOP_DURATION_MS / 1000} s loops; rows = promises + tasks written)`);
    out.push(
      table(
        ["loop", "rows/s", "transactions/s"],
        [
          ...(sqliteSelected
            ? [
                [
                  `raw better-sqlite3 insert, ${ROWS_PER_TRANSACTION} rows/tx (table bench(id INTEGER PRIMARY KEY, value TEXT))`,
                  formatCount(ceiling.raw100RowsPerSecond),
                  formatCount(ceiling.raw100TransactionsPerSecond),
                ],
                [
                  "raw better-sqlite3 insert, 1 row/tx",
                  formatCount(ceiling.raw1TransactionsPerSecond),
                  formatCount(ceiling.raw1TransactionsPerSecond),
                ],
                [
                  `SQLite store alone: tx.promise(id) miss + tx.apply(promise row), ${ROWS_PER_TRANSACTION} rows/tx`,
                  formatCount(ceiling.storeSqliteRowsPerSecond),
                  formatCount(ceiling.storeSqliteRowsPerSecond / ROWS_PER_TRANSACTION),
                ],
                [
                  `core step() + tx.apply() on the SQLite store, ${ROWS_PER_TRANSACTION} promise.create/tx`,
                  formatCount(ceiling.coreSqliteRowsPerSecond),
                  formatCount(ceiling.coreSqliteRowsPerSecond / ROWS_PER_TRANSACTION),
                ],
              ]
            : []),
          [
            `core step() + tx.apply() on the memory store, ${ROWS_PER_TRANSACTION} promise.create/tx`,
            formatCount(ceiling.coreMemoryRowsPerSecond),
            formatCount(ceiling.coreMemoryRowsPerSecond / ROWS_PER_TRANSACTION),
          ],
        ],
      ),
    );
    out.push("");
    const sqlitePairs = scenarios.find(
      (scenario) => scenario.store === "sqlite" && scenario.workload === "pairs",
    );
    if (sqlitePairs !== undefined)
      out.push(
        `SQLite pairs over HTTP: ${formatCount(sqlitePairs.median.cyclesPerSecond)}/s (issue's target ≥ ${formatCount(TARGET_SQLITE_PAIRS_PER_SECOND)}/s with synchronous=FULL)`,
      );
    if (sqliteSelected)
      out.push(
        `raw ÷ core rows/s on SQLite: ${formatDecimal(rawOverCore)}× (issue's target ≤ ${TARGET_RAW_OVER_CORE}×) = raw ÷ store ${formatDecimal(rawOverStore)}× (schema, reads, upserts) × store ÷ core ${formatDecimal(storeOverCore)}× (step, Working)`,
      );
    out.push(`total ${formatDecimal((performance.now() - startedAt) / 1000, 1)} s`);
    process.stdout.write(`${out.join("\n")}\n`);

    const json = {
      bench: "server",
      date: new Date().toISOString(),
      environment: { ...environment, synchronous },
      settings: { ...settings, sqlitePath: settings.sqlitePath ?? null },
      http: [...scenarios, floor].map((scenario) => ({
        store: scenario.store,
        cycle: scenario.workload,
        cyclesPerSecond: rounded(scenario.median.cyclesPerSecond),
        requestsPerSecond: rounded(scenario.median.requestsPerSecond),
        commitsPerRequest:
          scenario.median.commitsPerRequest === null ? null : rounded(scenario.median.commitsPerRequest),
        meanBatch: scenario.median.meanBatch === null ? null : rounded(scenario.median.meanBatch),
        cpuMicrosPerRequest: rounded(scenario.median.cpuMicrosPerRequest),
        latencyMs: Object.fromEntries(
          Object.entries(scenario.median.latency).map(([kind, { p50Ms, p99Ms }]) => [
            kind,
            { p50: rounded(p50Ms), p99: rounded(p99Ms) },
          ]),
        ),
        runsCyclesPerSecond: scenario.runs.map((run) => rounded(run.cyclesPerSecond)),
      })),
      beneathHttp: {
        raw100RowsPerSecond: rounded(ceiling.raw100RowsPerSecond),
        raw1TransactionsPerSecond: rounded(ceiling.raw1TransactionsPerSecond),
        storeSqliteRowsPerSecond: rounded(ceiling.storeSqliteRowsPerSecond),
        coreSqliteRowsPerSecond: rounded(ceiling.coreSqliteRowsPerSecond),
        coreMemoryRowsPerSecond: rounded(ceiling.coreMemoryRowsPerSecond),
        rawOverCore: rounded(rawOverCore),
        rawOverStore: rounded(rawOverStore),
        storeOverCore: rounded(storeOverCore),
      },
      totalSeconds: rounded((performance.now() - startedAt) / 1000),
    };
    process.stdout.write(`${JSON.stringify(json)}\n`);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench:server failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
