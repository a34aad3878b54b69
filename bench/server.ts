/**
 * `npm run bench:server`: how fast one Pledge server commits, over HTTP and
 * beneath it. Figures and ratios, never pass/fail on time (STYLE, bench/).
 *
 *  1. HTTP: `--concurrency` closed-loop clients (default 16) against
 *     `startServer` (what `pledge serve` runs; port 0, log level silent) on
 *     each store, running the workloads of support/http-load.ts: ops/s,
 *     p50/p99 per request kind, commits per request / mean batch size from the
 *     server's counters, and CPU over the measured window from /proc (the
 *     machine's busy share, the cores of the server processes, of this process
 *     (the clients) and of PostgreSQL's processes, which include any other
 *     load on that database). On PostgreSQL, `--replicas n` servers share the
 *     run's schema and the clients are spread over them round-robin.
 *  2. The HTTP floor: the same clients against a bare node:http server.
 *  3. Beneath HTTP, per selected store: on SQLite the raw better-sqlite3 insert
 *     loop (100-row and one-row transactions), the SQLite store's own share
 *     (read + apply, no step), and the core's `step` + `apply` loop on it, with
 *     the ratio raw ÷ core split into raw ÷ store × store ÷ core; on PostgreSQL
 *     the raw commits/s of BEGIN; INSERT one row; COMMIT from 1 and from 16
 *     concurrent connections (support/postgres-ceiling.ts), with each workload's
 *     server requests/s ÷ those; always the core loop on the memory store.
 *
 * Every figure is the median of `--runs` runs (default 3), each on a new server
 * and a new store: a temporary SQLite file, or a fresh schema of the PostgreSQL
 * database named by --store (`?schema=` in the URL the servers get), dropped
 * afterwards. Progress goes to stderr (on a terminal, a live line counts each
 * measured run's seconds); stdout holds the tables and, last, one JSON line
 * with every figure.
 *
 * Flags: --store memory|sqlite|sqlite:<new path>|postgres://…|both (default
 * both = memory and sqlite; `sqlite` is a temporary file; repeat the flag to
 * add stores, e.g. `--store sqlite --store postgres://…`) · --mode
 * remote|embedded (default remote: the server in a child process, as real
 * clients are) · --replicas n (1; more needs PostgreSQL as the only store and
 * remote mode) · --concurrency n (16) · --sync full|normal (SQLite) ·
 * --duration s (3) · --warmup s (0.5) · --runs n (3).
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseStoreUrl } from "../src/node/open-store.js";
import { type CpuSample, type CpuUse, cpuUse, sampleCpu } from "./support/cpu.js";
import { formatCount, formatDecimal, median, rounded, table } from "./support/figures.js";
import { positiveFlag, usageFor } from "./support/flags.js";
import { FLOOR_WORKLOAD, type RunFigures, runLoad, WORKLOADS, type Workload } from "./support/http-load.js";
import { createSchema, describePostgresUrl, dropSchema, withSchema } from "./support/postgres.js";
import { type PostgresSettings, postgresSettings, rawCommitLoop } from "./support/postgres-ceiling.js";
import {
  coreLoopInMemory,
  coreLoopOnSqlite,
  ROWS_PER_TRANSACTION,
  rawInsertLoop,
  sqliteFiles,
  storeLoopOnSqlite,
} from "./support/sqlite-ceiling.js";
import { startReplicas, startTarget, type TargetStore } from "./support/targets.js";

const TARGET_SQLITE_PAIRS_PER_SECOND = 5000;
const TARGET_RAW_OVER_CORE = 2;
const LOOP_DURATION_MS = 1000;
const JIT_WARMUP_MS = 1500;
/** Connections of the raw PostgreSQL commit loops: one, and as many as the measurement. */
const POSTGRES_CEILING_CLIENTS = [1, 16] as const;

type StoreKind = "memory" | "sqlite" | "postgres";

interface Settings {
  stores: StoreKind[];
  /** A user-chosen SQLite file; otherwise a temporary directory holds them. */
  sqlitePath: string | undefined;
  /** The database named by --store postgres://…; every run creates and drops a schema there. */
  postgresUrl: string | undefined;
  /** Servers per PostgreSQL run, sharing its schema. */
  replicas: number;
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
      store: { type: "string", multiple: true, default: ["both"] },
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
  const stores: StoreKind[] = [];
  let sqlitePath: string | undefined;
  let postgresUrl: string | undefined;
  const add = (kind: StoreKind) => {
    if (stores.includes(kind)) usage(`--store: ${kind} named twice`);
    stores.push(kind);
  };
  for (const value of values.store) {
    if (value === "both") {
      add("memory");
      add("sqlite");
      continue;
    }
    if (value === "sqlite") {
      add("sqlite");
      continue;
    }
    let location: ReturnType<typeof parseStoreUrl>;
    try {
      location = parseStoreUrl(value);
    } catch (error) {
      usage(`--store: ${(error as Error).message}`);
    }
    add(location.kind);
    if (location.kind === "sqlite") {
      sqlitePath = location.path;
      if (sqliteFiles(sqlitePath).some((file) => fs.existsSync(file)))
        usage(
          `--store: ${sqlitePath} (or its -wal/-shm/.lock) exists; name a new file, the benchmark removes it`,
        );
    }
    if (location.kind === "postgres") {
      if (new URL(location.url).searchParams.has("schema"))
        usage("--store: leave out ?schema=; every run creates and drops a schema of its own");
      postgresUrl = location.url;
    }
  }
  if (values.mode !== "embedded" && values.mode !== "remote")
    usage(`--mode: expected embedded or remote, got ${JSON.stringify(values.mode)}`);
  if (values.sync !== "full" && values.sync !== "normal")
    usage(`--sync: expected full or normal, got ${JSON.stringify(values.sync)}`);
  const replicas = positive("replicas", values.replicas, true);
  if (replicas > 1 && (stores.length !== 1 || stores[0] !== "postgres"))
    usage(
      "--replicas: a memory or SQLite store has one owner process; replicas need PostgreSQL as the only --store",
    );
  if (replicas > 1 && values.mode === "embedded")
    usage("--replicas: replicas are separate server processes; use --mode remote");
  const runs = positive("runs", values.runs, true);
  return {
    stores,
    sqlitePath,
    postgresUrl,
    replicas,
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
        urls: [target.url],
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

/** One run's load figures and the CPU its window used. */
type MeasuredRun = RunFigures & { cpu: CpuUse };

interface ScenarioFigures {
  store: StoreKind | "none";
  workload: string;
  runs: MeasuredRun[];
  median: {
    cpu: CpuUse;
    cyclesPerSecond: number;
    requestsPerSecond: number;
    commitsPerRequest: number | null;
    meanBatch: number | null;
    cpuMicrosPerRequest: number;
    retriesPerRequest: number;
    latency: Record<string, { p50Ms: number; p99Ms: number }>;
  };
}

function medianOf(runs: MeasuredRun[], kinds: string[]): ScenarioFigures["median"] {
  const nullable = (pick: (run: RunFigures) => number | null) => {
    const values = runs.map(pick).filter((value): value is number => value !== null);
    return values.length === 0 ? null : median(values);
  };
  return {
    cpu: {
      machineBusy: median(runs.map((run) => run.cpu.machineBusy)),
      servers: median(runs.map((run) => run.cpu.servers)),
      workers: median(runs.map((run) => run.cpu.workers)),
      postgres: median(runs.map((run) => run.cpu.postgres)),
    },
    cyclesPerSecond: median(runs.map((run) => run.cyclesPerSecond)),
    requestsPerSecond: median(runs.map((run) => run.requestsPerSecond)),
    commitsPerRequest: nullable((run) => run.commitsPerRequest),
    meanBatch: nullable((run) => run.meanBatch),
    cpuMicrosPerRequest: median(runs.map((run) => run.cpuMicrosPerRequest)),
    retriesPerRequest: median(runs.map((run) => run.retriesPerRequest)),
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
  let schemaCounter = 0;
  /** Lower-case, as the PostgreSQL store requires; the pid keeps concurrent benchmarks apart. */
  const nextSchema = () => `pledge_bench_server_${process.pid}_${++schemaCounter}`;
  /** Runs `use` on a new schema of the --store database and drops it afterwards, whatever happens. */
  const onFreshSchema = async <T>(use: (schema: string) => Promise<T>): Promise<T> => {
    const base = settings.postgresUrl as string;
    const schema = nextSchema();
    try {
      return await use(schema);
    } finally {
      await dropSchema(base, schema);
    }
  };
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
    const measureRun = async (
      store: TargetStore["kind"],
      workload: Workload,
      run: number,
      schema: string | undefined,
    ): Promise<MeasuredRun> => {
      const file = store === "sqlite" ? nextSqliteFile() : undefined;
      const targetStore: TargetStore =
        file !== undefined
          ? { kind: "sqlite", path: file }
          : schema !== undefined
            ? { kind: "postgres", url: withSchema(settings.postgresUrl as string, schema) }
            : { kind: store as "memory" | "floor" };
      const target = await startReplicas(
        { mode: settings.mode, store: targetStore, sync: settings.sync },
        store === "postgres" ? settings.replicas : 1,
      );
      if (target.synchronous !== undefined) synchronousSeen.add(target.synchronous);
      const clearLine = liveLine(
        `${store} ${workload.name} run ${run}/${settings.runs}`,
        settings.warmupMs + settings.durationMs,
      );
      // runLoad reads the counters at the window's edges; the CPU samples are taken there too.
      const cpuSamples: CpuSample[] = [];
      try {
        const figures = await runLoad({
          urls: target.urls,
          concurrency: settings.concurrency,
          warmupMs: settings.warmupMs,
          durationMs: settings.durationMs,
          workload,
          idPrefix: `${workload.name}-${run}`,
          counters: () => {
            cpuSamples.push(sampleCpu(target.pids));
            return target.counters();
          },
        }).finally(clearLine);
        const [before, after] = cpuSamples as [CpuSample, CpuSample];
        // This process runs the clients (and, embedded, the server): cpuUse's "workers" are them.
        const cpu = cpuUse(before, after, 0, true);
        progress(
          `  ${store} ${workload.name} run ${run}: ${formatCount(figures.cyclesPerSecond)} cycles/s, ${formatCount(figures.requestsPerSecond)} requests/s, machine ${formatDecimal(cpu.machineBusy * 100, 0)}% busy`,
        );
        return { ...figures, cpu };
      } finally {
        await target.close();
        if (file !== undefined) removeSqliteFiles(file);
      }
    };
    const measure = async (store: TargetStore["kind"], workload: Workload): Promise<ScenarioFigures> => {
      const runs: MeasuredRun[] = [];
      for (let run = 1; run <= settings.runs; run += 1)
        runs.push(
          store === "postgres"
            ? await onFreshSchema((schema) => measureRun(store, workload, run, schema))
            : await measureRun(store, workload, run, undefined),
        );
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
    const postgresUrl = settings.postgresUrl;
    const postgresRaw = new Map<number, number>();
    let postgresServer: PostgresSettings | undefined;
    if (postgresUrl !== undefined) {
      postgresServer = await postgresSettings(postgresUrl);
      for (const clients of POSTGRES_CEILING_CLIENTS) {
        const runs = await loopRuns(
          `raw PostgreSQL commits, ${clients} client${clients === 1 ? "" : "s"}`,
          () =>
            onFreshSchema(async (schema) => {
              await createSchema(postgresUrl, schema);
              return rawCommitLoop({ url: postgresUrl, schema, clients, durationMs: LOOP_DURATION_MS });
            }),
        )();
        postgresRaw.set(clients, median(runs.map((run) => run.commitsPerSecond)));
      }
    }
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
    const postgresScenarios = scenarios.filter((scenario) => scenario.store === "postgres");
    /** Server requests/s over the database's raw commits/s with `clients` connections. */
    const overRaw = (scenario: ScenarioFigures, clients: number) =>
      scenario.median.requestsPerSecond / (postgresRaw.get(clients) ?? Number.NaN);
    /** Store transactions/s the server committed: requests/s × commits per request. */
    const storeCommitsPerSecond = (scenario: ScenarioFigures) =>
      scenario.median.requestsPerSecond * (scenario.median.commitsPerRequest ?? Number.NaN);

    // Report.
    const out: string[] = [];
    out.push("Pledge bench:server");
    out.push(
      `node ${environment.node} · ${environment.cores} cores (${environment.cpu}) · ${environment.platform} · load ${environment.loadAverage.join(" ")} · mode ${settings.mode}${settings.mode === "embedded" ? " (clients and server share this process)" : " (server in a child process)"} · concurrency ${settings.concurrency}`,
    );
    if (sqliteSelected)
      out.push(
        `SQLite: PRAGMA synchronous = ${synchronous} · journal_mode WAL · locking_mode EXCLUSIVE · files in ${sqliteDirectory} (${environment.fileSystem})`,
      );
    if (postgresUrl !== undefined && postgresServer !== undefined)
      out.push(
        `PostgreSQL ${postgresServer.version} at ${describePostgresUrl(postgresUrl)} · synchronous_commit ${postgresServer.synchronousCommit} · fsync ${postgresServer.fsync} · wal_sync_method ${postgresServer.walSyncMethod} · a fresh schema per run, dropped afterwards · ${settings.replicas} server process${settings.replicas === 1 ? "" : "es"} per run${settings.replicas === 1 ? "" : " on that schema, clients round-robin over them"}`,
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
      `HTTP, ${settings.concurrency} clients (commits/req and batch from RunningServer.stats in the window; CPU µs/req = the server processes' CPU time per request handled, ${settings.mode === "embedded" ? "clients included, as they share the process" : "clients excluded"}; retries/req = retryable errors (e.g. 503 store_unavailable) the clients answered by sending again, per completed request, latency covering every attempt)`,
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
          "retries/req",
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
          formatDecimal(scenario.median.retriesPerRequest, 3),
          Object.entries(scenario.median.latency)
            .map(([kind, { p50Ms, p99Ms }]) => `${kind} ${formatDecimal(p50Ms)} / ${formatDecimal(p99Ms)}`)
            .join(" · "),
        ]),
      ),
    );
    out.push("");
    out.push(
      `CPU over the measured window (from /proc; cores = CPU seconds per second; postgres = every process named postgres on this machine, other load included)`,
    );
    const remote = settings.mode === "remote";
    out.push(
      table(
        [
          "store",
          "cycle",
          "machine busy",
          "server cores",
          remote ? "clients cores" : "this process cores",
          "postgres cores",
        ],
        [...scenarios, floor].map((scenario) => [
          scenario.store,
          scenario.workload,
          `${formatDecimal(scenario.median.cpu.machineBusy * 100, 0)}% of ${environment.cores}`,
          remote ? formatDecimal(scenario.median.cpu.servers) : "in this process",
          formatDecimal(scenario.median.cpu.workers),
          formatDecimal(scenario.median.cpu.postgres),
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
          ...POSTGRES_CEILING_CLIENTS.filter((clients) => postgresRaw.has(clients)).map((clients) => [
            `raw PostgreSQL commit (BEGIN; INSERT one row; COMMIT), ${clients} connection${clients === 1 ? "" : "s"} (pg Pool)`,
            formatCount(postgresRaw.get(clients) ?? Number.NaN),
            formatCount(postgresRaw.get(clients) ?? Number.NaN),
          ]),
          [
            `core step() + tx.apply() on the memory store, ${ROWS_PER_TRANSACTION} promise.create/tx`,
            formatCount(ceiling.coreMemoryRowsPerSecond),
            formatCount(ceiling.coreMemoryRowsPerSecond / ROWS_PER_TRANSACTION),
          ],
        ],
      ),
    );
    out.push("");
    if (postgresScenarios.length > 0) {
      out.push(
        "PostgreSQL: the server against the database's own commit rate (requests/s ÷ raw commits/s; above 1 when group commit batches requests)",
      );
      out.push(
        table(
          [
            "cycle",
            "requests/s",
            "store commits/s",
            ...POSTGRES_CEILING_CLIENTS.map(
              (clients) => `÷ raw ${clients} connection${clients === 1 ? "" : "s"}`,
            ),
          ],
          postgresScenarios.map((scenario) => [
            scenario.workload,
            formatCount(scenario.median.requestsPerSecond),
            formatCount(storeCommitsPerSecond(scenario)),
            ...POSTGRES_CEILING_CLIENTS.map((clients) => formatDecimal(overRaw(scenario, clients))),
          ]),
        ),
      );
      out.push("");
    }
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
      settings: {
        ...settings,
        sqlitePath: settings.sqlitePath ?? null,
        postgresUrl: postgresUrl === undefined ? null : describePostgresUrl(postgresUrl),
      },
      http: [...scenarios, floor].map((scenario) => ({
        store: scenario.store,
        cycle: scenario.workload,
        cyclesPerSecond: rounded(scenario.median.cyclesPerSecond),
        requestsPerSecond: rounded(scenario.median.requestsPerSecond),
        commitsPerRequest:
          scenario.median.commitsPerRequest === null ? null : rounded(scenario.median.commitsPerRequest),
        meanBatch: scenario.median.meanBatch === null ? null : rounded(scenario.median.meanBatch),
        cpuMicrosPerRequest: rounded(scenario.median.cpuMicrosPerRequest),
        retriesPerRequest: rounded(scenario.median.retriesPerRequest),
        cpu: {
          machineBusy: rounded(scenario.median.cpu.machineBusy),
          serverCores: remote ? rounded(scenario.median.cpu.servers) : null,
          clientCores: rounded(scenario.median.cpu.workers),
          postgresCores: rounded(scenario.median.cpu.postgres),
        },
        ...(scenario.store === "postgres" && {
          storeCommitsPerSecond: rounded(storeCommitsPerSecond(scenario)),
          requestsOverRawCommits: Object.fromEntries(
            POSTGRES_CEILING_CLIENTS.map((clients) => [`${clients}`, rounded(overRaw(scenario, clients))]),
          ),
        }),
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
        postgres:
          postgresServer === undefined
            ? null
            : {
                server: postgresServer,
                rawCommitsPerSecond: Object.fromEntries(
                  [...postgresRaw].map(([clients, perSecond]) => [`${clients}`, rounded(perSecond)]),
                ),
              },
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
