/**
 * `npm run bench:sdk`: durable steps per second through the SDK, the figure
 * users feel. The workload (support/sdk-load.ts) is a durable function of ten
 * `ctx.run` steps, kept `--concurrency` executions in flight (default 16).
 * Figures and ratios, never pass/fail on time (STYLE, bench/).
 *
 *  - `--mode embedded`: one `new Pledge({ store })` in this process.
 *  - `--mode remote` (default): `--replicas` `pledge serve` processes (the built
 *    CLI, dist/) on one store, and `--workers` worker processes (default two;
 *    support/sdk-worker.ts); closed loop i (of `--concurrency`) runs in worker
 *    i mod workers. More than one replica needs PostgreSQL. How the workers'
 *    requests reach the replicas (`--balance`):
 *     - `request` (default): each worker has one Pledge client given every
 *       replica's URL, which posts each turn's requests to the next replica in
 *       turn (as a load balancer routing each request would; worker w starts at
 *       replica w mod replicas).
 *     - `loop`: loop i runs against replica i mod replicas, through one Pledge
 *       client per replica in its worker: each turn's requests split into one
 *       POST per replica, so each replica's group commit gets 1/replicas of them.
 *    (Two worker processes by default, whatever the replicas, so that between
 *    `--replicas 1` and `--replicas 3` only the replicas differ. Two rather than
 *    one: the requests of one turn of a worker's event loop share a POST (ADR
 *    0006), so one worker's 16 loops move as one cohort, one POST at a time, and
 *    with request balancing three replicas then only take turns, each going cold
 *    between its turns. Measured on 2 cores, one replica ran as fast with two
 *    workers as with one, and three replicas matched it with two, not with one.)
 *    `--replicas 1,3` measures both, their runs interleaved (1, 3, 1, 3, …), and
 *    reports each against the first as the median of the rounds' ratios: on a
 *    machine whose speed drifts over minutes, medians measured one after the
 *    other compare two different machines.
 *
 * steps/s counts `ctx.run` bodies run inside the measured window (each runs once
 * and is then recorded), so a slow store still shows a figure in a short window.
 * Every run gets a new store (a temporary SQLite file, or a fresh schema of the
 * PostgreSQL database named by --store, dropped afterwards) and new processes;
 * each figure is the median of `--runs` runs (default 3). The warm-up (default 5 s)
 * is long enough for V8 to have optimised the hot code of every process, which
 * takes longer the more processes share the load (three replicas each see a third
 * of it, and compile it three times on the same cores): the window measures the
 * steady state, not the compiler. CPU use is read from
 * /proc over the measured window: the whole machine's busy share, and the cores
 * used by the servers, the workers (or this process) and PostgreSQL's backends.
 * Progress goes to stderr; stdout holds the report and, last, one JSON line.
 *
 * Flags: --store sqlite|sqlite:<new path>|memory|postgres://… (default sqlite) ·
 * --mode remote|embedded · --concurrency n (16) · --replicas n[,n…] (1) · --workers n
 * (2) · --balance request|loop (request) · --sync full|normal (SQLite, remote; embedded is always full) ·
 * --duration s (5) · --warmup s (5) · --runs n (3).
 */
import { type ChildProcess, fork, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Pledge } from "../src/index.js";
import { parseStoreUrl } from "../src/node/open-store.js";
import { type CpuSample, type CpuUse, cpuUse, sampleCpu } from "./support/cpu.js";
import { formatCount, formatDecimal, median, rounded, sleep, table } from "./support/figures.js";
import { positiveFlag, usageFor } from "./support/flags.js";
import { dropSchema } from "./support/postgres.js";
import { type LoadResult, register, runLoad, STEPS } from "./support/sdk-load.js";
import type { WorkerCommand, WorkerMessage } from "./support/sdk-worker.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = path.join(ROOT, "dist/cli/main.js");
const WORKER = fileURLToPath(new URL("./support/sdk-worker.ts", import.meta.url));

type StoreChoice = { kind: "memory" } | { kind: "sqlite"; path?: string } | { kind: "postgres"; url: string };

interface Settings {
  store: StoreChoice;
  mode: "embedded" | "remote";
  concurrency: number;
  /** Replica counts to measure; several: their runs interleaved, each round one of each. */
  replicas: number[];
  workers: number;
  balance: "request" | "loop";
  sync: "full" | "normal";
  durationMs: number;
  warmupMs: number;
  runs: number;
}

const usage: (message: string) => never = usageFor("bench:sdk");
const positive = (name: string, text: string, integer: boolean) => positiveFlag(usage, name, text, integer);

function parseSettings(argv: string[]): Settings {
  const { values } = parseArgs({
    args: argv,
    options: {
      store: { type: "string", default: "sqlite" },
      mode: { type: "string", default: "remote" },
      concurrency: { type: "string", default: "16" },
      replicas: { type: "string", default: "1" },
      workers: { type: "string", default: "2" },
      balance: { type: "string", default: "request" },
      sync: { type: "string", default: "full" },
      duration: { type: "string", default: "5" },
      warmup: { type: "string", default: "5" },
      runs: { type: "string", default: "3" },
    },
    strict: true,
  });
  let store: StoreChoice;
  if (values.store === "sqlite") store = { kind: "sqlite" };
  else {
    let location: ReturnType<typeof parseStoreUrl>;
    try {
      location = parseStoreUrl(values.store);
    } catch (error) {
      usage(`--store: ${(error as Error).message}`);
    }
    store = location.kind === "postgres" ? { kind: "postgres", url: location.url } : location;
    if (location.kind === "sqlite" && fs.existsSync(location.path))
      usage(`--store: ${location.path} exists; name a new file, the benchmark removes it`);
    if (location.kind === "postgres" && new URL(location.url).searchParams.has("schema"))
      usage("--store: leave out ?schema=; every run creates and drops a schema of its own");
  }
  if (values.mode !== "embedded" && values.mode !== "remote")
    usage(`--mode: expected embedded or remote, got ${JSON.stringify(values.mode)}`);
  if (values.balance !== "request" && values.balance !== "loop")
    usage(`--balance: expected request or loop, got ${JSON.stringify(values.balance)}`);
  if (values.sync !== "full" && values.sync !== "normal")
    usage(`--sync: expected full or normal, got ${JSON.stringify(values.sync)}`);
  const replicas = values.replicas.split(",").map((count) => positive("replicas", count.trim(), true));
  const most = Math.max(...replicas);
  if (most > 1 && store.kind !== "postgres")
    usage("--replicas: a memory or SQLite store has one owner process; replicas need PostgreSQL");
  if ((most > 1 || replicas.length > 1) && values.mode === "embedded")
    usage("--replicas: replicas are separate `pledge serve` processes; use --mode remote");
  if (store.kind === "memory" && values.mode === "remote")
    usage("--store: memory with --mode remote would measure nothing durable; use sqlite or postgres");
  return {
    store,
    mode: values.mode,
    concurrency: positive("concurrency", values.concurrency, true),
    replicas,
    workers: positive("workers", values.workers, true),
    balance: values.balance,
    sync: values.sync,
    durationMs: positive("duration", values.duration, false) * 1000,
    warmupMs: Math.max(0, Number(values.warmup)) * 1000,
    runs: positive("runs", values.runs, true),
  };
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

// ---------------------------------------------------------------------------
// Stores and processes.

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function startReplica(store: string, sync: string): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    process.execPath,
    [
      ...profileArgs("server"),
      CLI,
      "serve",
      "--port",
      String(port),
      "--store",
      store,
      "--sync",
      sync,
      "--log-level",
      "warn",
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pledge serve exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/health`)).status === 200) return { child, url };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error("pledge serve did not answer /health within 20 s");
    await sleep(50);
  }
}

/**
 * PLEDGE_BENCH_PROFILE=<dir>: each child writes V8 CPU profiles to <dir>/<role>, under
 * Node's default names, which differ per process and thread (a worker's tsx loader
 * thread writes one too: a fixed name would let it overwrite the main thread's).
 */
function profileArgs(role: string): string[] {
  const dir = process.env.PLEDGE_BENCH_PROFILE;
  return dir === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", path.join(dir, role)];
}

function startWorker(loops: string[][], prefix: string): ChildProcess {
  return fork(WORKER, [JSON.stringify({ loops, prefix })], {
    execArgv: ["--import", "tsx", ...profileArgs("worker")],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

function next(child: ChildProcess, type: WorkerMessage["type"]): Promise<WorkerMessage> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: WorkerMessage) => {
      if (message.type !== type && message.type !== "failed") return;
      cleanup();
      if (message.type === "failed") reject(new Error(`worker: ${message.message}`));
      else resolve(message);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`worker exited with ${code} before answering ${type}`));
    };
    const cleanup = () => {
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------
// One run.

interface RunFigures {
  stepsPerSecond: number;
  executionsPerSecond: number;
  executions: number;
  cpu: CpuUse;
}

/**
 * The replica URLs of each closed loop's client, per worker: loop i in worker i mod
 * workers; with `request` balancing every replica, from replica w for worker w; with
 * `loop` balancing replica i mod replicas alone.
 */
function loopsByWorker(
  concurrency: number,
  workers: number,
  balance: Settings["balance"],
  replicas: readonly { url: string }[],
): string[][][] {
  const urls = replicas.map((replica) => replica.url);
  const byWorker: string[][][] = Array.from({ length: Math.min(workers, concurrency) }, () => []);
  for (let loop = 0; loop < concurrency; loop += 1) {
    const worker = loop % byWorker.length;
    const first = balance === "request" ? worker % urls.length : loop % urls.length;
    const rotated = [...urls.slice(first), ...urls.slice(0, first)];
    byWorker[worker]?.push(balance === "request" ? rotated : rotated.slice(0, 1));
  }
  return byWorker;
}

async function oneRun(
  settings: Settings,
  replicaCount: number,
  run: number,
  scratch: string,
): Promise<RunFigures> {
  const window = { warmupMs: settings.warmupMs, durationMs: settings.durationMs };
  let storeUrl: string;
  let cleanup = async () => {};
  if (settings.store.kind === "postgres") {
    const schema = `pledge_bench_${process.pid}_${run}`;
    const base = settings.store.url;
    const url = new URL(base);
    url.searchParams.set("schema", schema);
    storeUrl = url.toString();
    cleanup = () => dropSchema(base, schema);
  } else if (settings.store.kind === "sqlite") {
    const file = settings.store.path ?? path.join(scratch, `run-${run}.db`);
    storeUrl = `sqlite:${file}`;
    cleanup = async () => {
      for (const suffix of ["", "-wal", "-shm", ".lock"]) fs.rmSync(`${file}${suffix}`, { force: true });
    };
  } else storeUrl = "memory";

  try {
    if (settings.mode === "embedded") {
      const pledge = new Pledge({ store: storeUrl, group: "bench", concurrency: 1024 });
      register(pledge);
      try {
        const loops = Array.from({ length: settings.concurrency }, () => pledge);
        const timed = runLoad(loops, { ...window, prefix: `run${run}` });
        await sleep(settings.warmupMs);
        const start = sampleCpu([]);
        await sleep(settings.durationMs);
        const end = sampleCpu([]);
        const result = await timed;
        return figures([result], start, end, settings, true);
      } finally {
        await pledge.stop();
      }
    }

    const replicas: { child: ChildProcess; url: string }[] = [];
    const workers: ChildProcess[] = [];
    try {
      // Started one after another: the first migrates the new store, the others find it current.
      for (let index = 0; index < replicaCount; index += 1)
        replicas.push(await startReplica(storeUrl, settings.sync));
      const assigned = loopsByWorker(settings.concurrency, settings.workers, settings.balance, replicas);
      for (const [index, loops] of assigned.entries()) {
        const worker = startWorker(loops, `run${run}-w${index}`);
        workers.push(worker);
        await next(worker, "ready");
      }
      const serverPids = replicas.map((replica) => replica.child.pid ?? 0);
      const results = workers.map((worker) => next(worker, "result"));
      for (const worker of workers) worker.send({ type: "run", ...window } satisfies WorkerCommand);
      await sleep(settings.warmupMs);
      const start = sampleCpu(serverPids);
      await sleep(settings.durationMs);
      const end = sampleCpu(serverPids);
      const answers = await Promise.all(results);
      return figures(
        answers.map((answer) => (answer as { result: LoadResult }).result),
        start,
        end,
        settings,
        false,
      );
    } finally {
      await Promise.all(
        workers.map(async (worker) => {
          if (worker.connected) {
            const closed = next(worker, "closed").catch(() => undefined);
            worker.send({ type: "close" } satisfies WorkerCommand);
            await Promise.race([closed, sleep(5000)]);
          }
          await stopProcess(worker);
        }),
      );
      await Promise.all(replicas.map((replica) => stopProcess(replica.child)));
    }
  } finally {
    await cleanup();
  }
}

function figures(
  results: LoadResult[],
  start: CpuSample,
  end: CpuSample,
  settings: Settings,
  embedded: boolean,
): RunFigures {
  const executions = results.reduce((sum, result) => sum + result.executions, 0);
  const steps = results.reduce((sum, result) => sum + result.steps, 0);
  const workerCpu = results.reduce((sum, result) => sum + result.cpuMicros, 0);
  return {
    executions,
    stepsPerSecond: steps / (settings.durationMs / 1000),
    executionsPerSecond: executions / (settings.durationMs / 1000),
    cpu: cpuUse(start, end, workerCpu, embedded),
  };
}

// ---------------------------------------------------------------------------

function describeStore(settings: Settings): string {
  switch (settings.store.kind) {
    case "memory":
      return "memory";
    case "sqlite":
      return `sqlite (${settings.store.path ?? "a temporary file per run"})`;
    case "postgres": {
      const url = new URL(settings.store.url);
      if (url.password !== "") url.password = "***";
      return `${url.toString()} (a fresh schema per run)`;
    }
  }
}

function replicaLabel(count: number): string {
  return `${count} replica${count === 1 ? "" : "s"}`;
}

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2));
  if (settings.mode === "remote" && !fs.existsSync(CLI)) usage(`${CLI} is missing; run npm run build`);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "pledge-bench-sdk-"));
  const cpus = os.cpus();
  const environment = {
    node: process.version,
    cores: cpus.length,
    cpu: cpus[0]?.model.trim() ?? "unknown",
    platform: `${process.platform} ${process.arch}`,
    loadAverage: os.loadavg().map((value) => rounded(value)),
  };
  // One list of runs per replica count, filled round by round (one run of each per round).
  const runs: RunFigures[][] = settings.replicas.map(() => []);
  let sequence = 0;
  try {
    for (let round = 1; round <= settings.runs; round += 1) {
      for (const [index, replicaCount] of settings.replicas.entries()) {
        sequence += 1;
        const figures = await oneRun(settings, replicaCount, sequence, scratch);
        runs[index]?.push(figures);
        progress(
          `  run ${round}${settings.replicas.length > 1 ? `, ${replicaLabel(replicaCount)}` : ""}: ${formatCount(figures.stepsPerSecond)} steps/s (${figures.executions} executions), machine ${formatDecimal(figures.cpu.machineBusy * 100, 0)}% busy`,
        );
      }
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }

  const summaries = runs.map((list) => {
    const pick = (f: (run: RunFigures) => number) => median(list.map(f));
    return {
      stepsPerSecond: pick((run) => run.stepsPerSecond),
      executionsPerSecond: pick((run) => run.executionsPerSecond),
      machineBusy: pick((run) => run.cpu.machineBusy),
      serverCores: pick((run) => run.cpu.servers),
      workerCores: pick((run) => run.cpu.workers),
      postgresCores: pick((run) => run.cpu.postgres),
    };
  });
  // Each further replica count against the first, round by round (the runs of a round are minutes apart at most).
  const first = runs[0] ?? [];
  const ratios = settings.replicas.slice(1).map((replicaCount, offset) => {
    const perRound = (runs[offset + 1] ?? []).map(
      (run, round) => run.stepsPerSecond / (first[round]?.stepsPerSecond ?? Number.NaN),
    );
    return {
      replicas: replicaCount,
      against: settings.replicas[0] as number,
      median: median(perRound),
      perRound,
    };
  });
  const synchronous =
    settings.store.kind !== "sqlite"
      ? "n/a (not SQLite)"
      : settings.mode === "embedded"
        ? "FULL (the SDK's embedded default)"
        : `${settings.sync.toUpperCase()} (pledge serve --sync ${settings.sync})`;
  const remote = settings.mode === "remote";
  const workers = Math.min(settings.workers, settings.concurrency);

  const out: string[] = [];
  out.push("Pledge bench:sdk");
  out.push(
    `node ${environment.node} · ${environment.cores} cores (${environment.cpu}) · ${environment.platform} · load ${environment.loadAverage.join(" ")}`,
  );
  out.push(
    `store ${describeStore(settings)} · SQLite PRAGMA synchronous = ${synchronous} · mode ${settings.mode}${remote ? ` · ${settings.replicas.map(replicaLabel).join(", then ")} (pledge serve processes) · ${workers} worker process${workers === 1 ? "" : "es"}, loop i in worker i mod workers; ${settings.balance === "request" ? "one client per worker, each turn's POST to the next replica (--balance request)" : "loop i on replica i mod replicas, a client per replica (--balance loop)"}` : " (one Pledge instance in this process)"}`,
  );
  out.push(
    `workload: a durable function of ${STEPS} ctx.run steps, ${settings.concurrency} executions in flight; steps/s = step bodies run in the window; CPU ms/step = CPU of servers, workers and PostgreSQL per step; each figure the median of ${settings.runs} runs${settings.replicas.length > 1 ? " (the replica counts' runs interleaved)" : ""}, ${settings.durationMs / 1000} s measured after ${settings.warmupMs / 1000} s warm-up, new store and processes per run`,
  );
  out.push("");
  out.push(
    table(
      [
        "",
        "steps/s",
        "executions/s",
        "CPU ms/step",
        "machine CPU busy",
        remote ? "servers cores" : "—",
        remote ? "workers cores" : "this process cores",
        "postgres cores",
        "runs (steps/s)",
      ],
      summaries.map((result, index) => [
        settings.replicas.length > 1 ? replicaLabel(settings.replicas[index] as number) : "median",
        formatCount(result.stepsPerSecond),
        formatDecimal(result.executionsPerSecond, 1),
        formatDecimal(
          ((result.serverCores + result.workerCores + result.postgresCores) * 1000) / result.stepsPerSecond,
        ),
        `${formatDecimal(result.machineBusy * 100, 0)}% of ${environment.cores}`,
        remote ? formatDecimal(result.serverCores) : "—",
        formatDecimal(result.workerCores),
        formatDecimal(result.postgresCores),
        (runs[index] ?? []).map((run) => formatCount(run.stepsPerSecond)).join(" · "),
      ]),
    ),
  );
  for (const ratio of ratios)
    out.push(
      `${replicaLabel(ratio.replicas)} ÷ ${replicaLabel(ratio.against)}: ${formatDecimal(ratio.median)}× (median of the rounds' ratios: ${ratio.perRound.map((value) => formatDecimal(value)).join(" · ")})`,
    );
  out.push("");
  const roundAll = (record: Record<string, number>) =>
    Object.fromEntries(Object.entries(record).map(([key, value]) => [key, rounded(value)]));
  out.push(
    JSON.stringify({
      benchmark: "sdk",
      environment,
      settings: { ...settings, store: describeStore(settings), synchronous },
      configurations: settings.replicas.map((replicaCount, index) => ({
        replicas: replicaCount,
        median: roundAll(summaries[index] ?? {}),
        runs: (runs[index] ?? []).map((run) => ({
          stepsPerSecond: rounded(run.stepsPerSecond),
          executionsPerSecond: rounded(run.executionsPerSecond),
          executions: run.executions,
          cpu: roundAll({ ...run.cpu }),
        })),
      })),
      ratios: ratios.map((ratio) => ({
        ...ratio,
        median: rounded(ratio.median),
        perRound: ratio.perRound.map(rounded),
      })),
    }),
  );
  process.stdout.write(`${out.join("\n")}\n`);
}

await main();
