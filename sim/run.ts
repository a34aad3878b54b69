/**
 * One simulated run from one seed: build the world (the real server shell over
 * the memory store or SQLite in memory, worker processes on both SDK engines, a
 * starter, an external settler, a misbehaving client), run it under the seed's
 * faults for `steps` events, calm it, and judge it.
 *
 * The invariants of checkers.ts are checked on every write and answer; this
 * file adds the ones that need more context:
 *  a  interruption transparency: every root and detached execution resolves to
 *     what the same program returns run as plain code (`runPlain`), never
 *     compared with the engines themselves;
 *  e  liveness: once calm, everything completes within `CALM_LIMIT_MS` of
 *     simulated time;
 *  f  idempotence as a property of traces: an acknowledged request replayed
 *     later, however the state moved, changes nothing and answers equivalently.
 */
import { type CoreConfig, snapshot, step, sweep } from "../src/core/step.js";
import { parseRequest } from "../src/protocol/parse.js";
import type { PromiseRecord } from "../src/protocol/records.js";
import type { Request, Response, Snapshot } from "../src/protocol/requests.js";
import { decode, toError } from "../src/sdk/codec.js";
import type { NetworkRequest } from "../src/sdk/network/network.js";
import { toEnvelope } from "../src/sdk/network/remote.js";
import type { ShellConfig } from "../src/server/shell.js";
import { MemoryStore } from "../src/store/memory-store.js";
import { openSqliteStore } from "../src/store/sqlite/sqlite-store.js";
import type { Store, StoreTransaction } from "../src/store/store.js";
import { Kernel, SimNode, type SimulationFailure } from "../src/testing/kernel.js";
import type { FaultCounters } from "../src/testing/network.js";
import { runPlain } from "../src/testing/plain.js";
import { drawFaults, observeStore, type SimProcess, World } from "../src/testing/world.js";
import { Checker } from "./checkers.js";
import {
  generateRoots,
  LATENT_TAG,
  type Program,
  programFunctions,
  type Root,
  VALUE_TAG,
} from "./workload.js";

export interface RunOptions {
  seed: number;
  /** Events run under faults before the world is calmed. */
  steps: number;
  /** Default: drawn from the seed. */
  store?: "memory" | "sqlite";
  onTrace?: (line: string) => void;
}

export interface RunReport {
  seed: number;
  store: "memory" | "sqlite";
  failure: SimulationFailure | undefined;
  steps: number;
  simulatedMs: number;
  counters: FaultCounters;
  roots: number;
  effects: number;
  replays: number;
}

/** Once calm, everything must be done within this much simulated time (e). */
const CALM_LIMIT_MS = 15 * 60 * 1000;
const TTL_MS = 10_000;
const SCHEDULE = "every-minute";
const GROUPS = ["g1", "g2"];
const ALL = Number.MAX_SAFE_INTEGER;
/** Requests whose replay may legitimately differ: an acquire is exclusive, a heartbeat extends a lease. */
const NOT_REPLAYED = new Set(["task.acquire", "task.heartbeat"]);

export async function runSeed(options: RunOptions): Promise<RunReport> {
  const kernel = new Kernel({ seed: options.seed, ...(options.onTrace && { onTrace: options.onTrace }) });
  const random = kernel.random.fork("workload");
  const storeKind = options.store ?? random.pick(["memory", "sqlite"] as const);
  const disk: Store = storeKind === "memory" ? new MemoryStore() : openSqliteStore({ path: ":memory:" });
  const groups = new Map<string, string>();
  const checker = new Checker(
    kernel,
    (work) => readNow(disk, work),
    (pid) => groups.get(pid),
  );
  const store = observeStore(disk, checker);
  const shell: ShellConfig = { debug: false, retryTimeoutMs: 5_000, unblockTtlMs: 60 * 60 * 1000 };
  const faults = drawFaults(kernel.random.fork("plan"));
  kernel.trace(`seed ${options.seed} store ${storeKind} faults ${JSON.stringify(faults)}`);
  const world = new World({ kernel, store, shell, faults, ttlMs: TTL_MS, observer: checker });
  checker.counters = world.counters;
  // Whatever the SDK or the server leaves unhandled is a bug of theirs.
  const onUnhandled = (reason: unknown) =>
    kernel.fail(
      "no unhandled rejections",
      reason instanceof Error ? (reason.stack ?? reason.message) : String(reason),
    );
  process.on("unhandledRejection", onUnhandled);
  try {
    return await simulate();
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }

  async function simulate(): Promise<RunReport> {
    const { roots, detached } = generateRoots(random, {
      groups: GROUPS,
      roots: random.int(2, 6),
      maxDepth: 3,
      maxOps: 5,
    });
    // A schedule runs a flat program every minute until the world calms down.
    const scheduled = generateRoots(random, { groups: GROUPS, roots: 1, maxDepth: 0, maxOps: 4 })
      .roots[0] as Root;
    const fixed = [...roots, ...detached];
    const expected = async (): Promise<Root[]> => [
      ...fixed,
      ...(await disk.transaction((tx) =>
        tx
          .searchPromises({ idPrefix: `${SCHEDULE}.`, limit: ALL })
          .filter((promise) => /^[^.]+\.\d+$/.test(promise.id))
          .map((promise) => ({ ...scheduled, id: promise.id })),
      )),
    ];

    for (const group of GROUPS) {
      const workers = random.int(1, 3);
      for (let index = 0; index < workers; index++)
        world.spawn(`${group}w${index}`, group, (process) => {
          groups.set(process.pid, group);
          // Each incarnation draws its engine: a restarted process may run the other one.
          setUpWorker(process, checker, random.bool());
        });
    }
    const client = (script: (process: SimProcess) => void) => (process: SimProcess) => {
      groups.set(process.pid, "clients");
      script(process);
    };
    const starter = world.spawn(
      "starter",
      "clients",
      client((process) => startRoots(process, roots, scheduled)),
    );
    world.spawn("settler", "clients", client(settleLatent));
    // Misbehaviour and audits are part of the chaos: they stop once the world is calm.
    const calmed = () => world.calmed;
    world.spawn(
      "mallory",
      "clients",
      client((process) => misbehave(process, calmed)),
    );
    world.spawn(
      "auditor",
      "clients",
      client((process) => audit(process, calmed)),
    );

    let replays = 0;
    const replayer = new SimNode("replayer");
    const scheduleReplay = () =>
      kernel.schedule(replayer, random.int(200, 3_000), () => {
        if (!world.calmed && replay(kernel, store, checker, shell, random)) replays += 1;
        scheduleReplay();
      });
    scheduleReplay();

    const done = async () => allSettled(disk, await expected());
    let finished = false;
    let checkedAt = 0;
    await kernel.runWhile(() => kernel.steps < options.steps);
    world.calm();
    let deleteScheduleAt = kernel.now;
    const calmUntil = kernel.now + CALM_LIMIT_MS;
    while (!kernel.failed && kernel.now <= calmUntil) {
      if (kernel.steps - checkedAt >= 50 || !kernel.pending) {
        checkedAt = kernel.steps;
        if (await done()) {
          finished = true;
          break;
        }
      }
      // Deleted again a while later: a create held back in the network may land after a delete.
      if (kernel.now >= deleteScheduleAt && starter.alive) {
        deleteScheduleAt = kernel.now + 30_000;
        void starter.network.send({ kind: "schedule.delete", data: { id: SCHEDULE } });
      }
      if (!(await kernel.step())) break;
    }
    if (!kernel.failed && !finished && !(await done()))
      kernel.fail(
        "e liveness",
        `not everything completed within ${CALM_LIMIT_MS / 60_000} min of calm: ${await pendingIds(disk, await expected())}`,
      );
    if (!kernel.failed) await disk.transaction((tx) => checker.checkSuspendedAreWakeable(tx));
    if (!kernel.failed) await checkTransparency(kernel, disk, await expected());
    const executions = (await expected()).length;
    await disk.close();
    return {
      seed: options.seed,
      store: storeKind,
      failure: kernel.failed,
      steps: kernel.steps,
      simulatedMs: kernel.now - kernel.startMs,
      counters: world.counters,
      roots: executions,
      effects: checker.effects,
      replays,
    };
  }
}

/** A read of a simulated store, which runs its transaction synchronously. */
function readNow<T>(disk: Store, work: (tx: StoreTransaction) => T): T {
  let result: { value: T } | undefined;
  void disk.transaction((tx) => {
    result = { value: work(tx) };
  });
  if (result === undefined) throw new Error("a simulated store must run a transaction synchronously");
  return result.value;
}

function setUpWorker(process: SimProcess, checker: Checker, generator: boolean): void {
  const functions = programFunctions({
    effect: (id, args) => checker.effect(id, args),
    crashPoint: () => process.crashPoint(),
  });
  process.client.register("step", functions.step);
  process.client.register("node", generator ? functions.nodeGenerator : functions.node);
  process.client.register("sleeper", generator ? functions.sleeperGenerator : functions.sleeper);
}

/** Starts every root and the schedule (again after each restart: creating is idempotent by id). */
function startRoots(process: SimProcess, roots: Root[], scheduled: Root): void {
  const { client } = process;
  void (async () => {
    for (const root of roots) {
      await client.beginRpc(root.id, "node", root.program, client.options({ target: root.group }));
    }
    await client.schedule(
      SCHEDULE,
      "* * * * *",
      "node",
      scheduled.program,
      client.options({ target: scheduled.group }),
    );
  })();
}

/** The outside world: resolves each latent promise with its program's value; sometimes settles again, late and wrong. */
function settleLatent(process: SimProcess): void {
  const { client, network } = process;
  const loop = async () => {
    const response = await network.send({
      kind: "promise.search",
      data: { tags: { [LATENT_TAG]: "true" }, limit: 100 },
    });
    const found = response.status === 200 ? (response.data as { promises: PromiseRecord[] }).promises : [];
    for (const promise of found) {
      const value = Number(promise.tags[VALUE_TAG]);
      if (promise.state === "pending") await client.promises.resolve(promise.id, value);
      else await client.promises.resolve(promise.id, value + 1_000_000); // late: must be absorbed (b)
    }
  };
  const again = () => {
    process.schedule(300, () => void loop().finally(again));
  };
  again();
}

/** An operator watching: reads every promise often (each answer is held to the projection rule). */
function audit(process: SimProcess, calmed: () => boolean): void {
  const again = () => {
    if (calmed()) return;
    process.schedule(process.random.int(200, 800), () => {
      void process.network.send({ kind: "promise.search", data: { limit: 1_000 } }).finally(again);
    });
  };
  again();
}

/** A misbehaving client: stale versions, ids that do not exist, late settles of settled promises, wide reads. */
function misbehave(process: SimProcess, calmed: () => boolean): void {
  const { network } = process;
  const random = process.random;
  const loop = async () => {
    const target = `root-${random.int(0, 5)}${random.bool() ? "" : `.${random.int(1, 4)}`}`;
    switch (random.int(0, 4)) {
      case 0:
        await network.send({ kind: "promise.get", data: { id: `missing-${random.int(0, 9)}` } });
        break;
      case 4:
        // A look at everything (the checkers hold every record in the answer to the projection rule).
        await network.send({ kind: "promise.search", data: { limit: 500 } });
        break;
      case 1: {
        const response = await network.send({ kind: "task.get", data: { id: target } });
        if (response.status !== 200) break;
        const task = (response.data as { task: { version: number } }).task;
        if (task.version === 0) break;
        await network.send({
          kind: "task.fulfill",
          data: {
            id: target,
            version: task.version - 1,
            action: {
              kind: "promise.settle",
              data: { id: target, state: "resolved", value: { headers: {}, data: "" } },
            },
          },
        });
        break;
      }
      case 2: {
        const response = await network.send({ kind: "promise.get", data: { id: target } });
        const promise =
          response.status === 200 ? (response.data as { promise: PromiseRecord }).promise : undefined;
        if (promise === undefined || promise.state === "pending") break;
        await network.send({
          kind: "promise.settle",
          data: { id: target, state: "rejected", value: { headers: {}, data: "" } },
        });
        break;
      }
      default:
        await network.send({
          kind: "task.acquire",
          data: { id: target, version: 0, pid: process.pid, ttl: TTL_MS },
        });
    }
  };
  const again = () => {
    if (calmed()) return;
    process.schedule(random.int(100, 2_000), () => void loop().finally(again));
  };
  again();
}

/**
 * f: replays one acknowledged request against the store now, after firing what
 * is due, and holds the state and the answer to the first application.
 */
function replay(
  kernel: Kernel,
  disk: Store,
  checker: Checker,
  config: CoreConfig,
  random: import("../src/testing/random.js").Random,
): boolean {
  const candidates = checker.log.filter((entry) => !NOT_REPLAYED.has(entry.request.kind));
  if (candidates.length === 0) return false;
  const original = random.pick(candidates);
  const request = toCoreRequest(original.request);
  const now = kernel.now;
  void disk.transaction((tx) => {
    for (;;) {
      const fired = sweep(tx, now, config);
      tx.apply(fired.changes);
      if (!fired.more) break;
    }
    const before = snapshot(tx);
    const result = step(tx, request as Parameters<typeof step>[1], now, config);
    tx.apply(result.changes);
    const after = snapshot(tx);
    if (
      JSON.stringify(before) !== JSON.stringify(after) &&
      !suspendClearedResumes(original.request, before, after)
    )
      kernel.fail(
        "f replays change nothing",
        `${describeRequest(original.request)} from ${original.from} changed the state: ${snapshotDiff(before, after)}`,
      );
    const difference = differentAnswer(
      original.request,
      original.response,
      result.response,
      tx.task.bind(tx),
    );
    if (difference !== undefined)
      kernel.fail("f replays answer the same", `${describeRequest(original.request)}: ${difference}`);
  });
  kernel.trace(() => `replays ${describeRequest(original.request)}`);
  return true;
}

/**
 * The one change a replay may make, because PROTOCOL.md §5.6 step 4 says so: a
 * `task.suspend` replayed at the holder's current version, with an awaited promise
 * settled, clears the task's resume list again (entries added since the first
 * application). The list is informational — a suspend answers 300 whenever an
 * awaited promise is settled — so this is left as the protocol has it.
 */
function suspendClearedResumes(request: NetworkRequest, before: Snapshot, after: Snapshot): boolean {
  if (request.kind !== "task.suspend") return false;
  const id = request.data.id;
  const others = (snapshot: Snapshot) =>
    JSON.stringify({ ...snapshot, tasks: snapshot.tasks.filter((task) => task.id !== id) });
  if (others(before) !== others(after)) return false;
  const was = before.tasks.find((task) => task.id === id);
  const now = after.tasks.find((task) => task.id === id);
  return (
    was !== undefined &&
    now !== undefined &&
    now.resumes === 0 &&
    JSON.stringify({ ...was, resumes: 0 }) === JSON.stringify(now)
  );
}

/** The entries one snapshot has and the other lacks, per section (for the failure message). */
function snapshotDiff(before: object, after: object): string {
  const parts: string[] = [];
  for (const [section, entries] of Object.entries(after) as [string, unknown[]][]) {
    const was = new Set(
      ((before as Record<string, unknown[]>)[section] ?? []).map((entry) => JSON.stringify(entry)),
    );
    const now = new Set(entries.map((entry) => JSON.stringify(entry)));
    const gone = [...was].filter((entry) => !now.has(entry));
    const added = [...now].filter((entry) => !was.has(entry));
    if (gone.length + added.length > 0) parts.push(`${section}: -${gone.join(" -")} +${added.join(" +")}`);
  }
  return parts.join("; ");
}

function toCoreRequest(request: NetworkRequest): Request {
  const text = JSON.stringify(toEnvelope(request, "replay"));
  const parsed = parseRequest(JSON.parse(text), { debug: false, text });
  if (!parsed.ok) throw new Error(`a recorded request no longer parses: ${parsed.failure.message}`);
  return parsed.request;
}

/** Reads answer with the state as it is now; only their lack of effect is checked. */
const READS = new Set([
  "promise.get",
  "promise.search",
  "task.get",
  "task.search",
  "schedule.get",
  "schedule.search",
]);

/** Why `replayed` is not an equivalent answer to `first`, or undefined. */
function differentAnswer(
  request: NetworkRequest,
  first: Response,
  replayed: Response,
  task: (id: string) => { version: number; state: string } | undefined,
): string | undefined {
  if (READS.has(request.kind)) return undefined;
  if (first.status !== replayed.status) {
    // A fenced write whose task has moved on since is refused: the claim it used is gone.
    const { id, version } = request.data as { id?: string; version?: unknown };
    if (typeof version === "number" && id !== undefined && replayed.status === 409) {
      const current = task(id);
      if (current === undefined || current.version !== version || current.state !== "acquired")
        return undefined;
    }
    return `status ${first.status}, then ${replayed.status}`;
  }
  const a = promiseIn(first);
  const b = promiseIn(replayed);
  if (a === undefined || b === undefined) return undefined;
  if (
    a.id !== b.id ||
    a.createdAt !== b.createdAt ||
    a.timeoutAt !== b.timeoutAt ||
    JSON.stringify(a.param) !== JSON.stringify(b.param)
  )
    return `promise ${a.id} answered as ${JSON.stringify(a)}, then ${JSON.stringify(b)}`;
  if (
    a.state !== "pending" &&
    (a.state !== b.state ||
      JSON.stringify(a.value) !== JSON.stringify(b.value) ||
      a.settledAt !== b.settledAt)
  )
    return `settled promise ${a.id} answered as ${a.state}, then ${b.state}`;
  return undefined;
}

function promiseIn(response: Response): PromiseRecord | undefined {
  const data = response.data as
    | { promise?: PromiseRecord; action?: { data?: { promise?: PromiseRecord } } }
    | undefined;
  return data?.promise ?? data?.action?.data?.promise;
}

function describeRequest(request: NetworkRequest): string {
  const data = request.data as { id?: string; awaited?: string };
  return `${request.kind} ${data.id ?? data.awaited ?? ""}`;
}

async function allSettled(disk: Store, expected: Root[]): Promise<boolean> {
  return disk.transaction((tx) =>
    expected.every(
      (root) => tx.promise(root.id)?.state !== undefined && tx.promise(root.id)?.state !== "pending",
    ),
  );
}

async function pendingIds(disk: Store, expected: Root[]): Promise<string> {
  return disk.transaction((tx) => {
    const open = expected
      .filter((root) => tx.promise(root.id)?.state !== "resolved")
      .map((root) => `${root.id} (${tx.promise(root.id)?.state ?? "missing"})`);
    const tasks = tx
      .searchTasks({ limit: ALL })
      .filter((task) => task.state !== "fulfilled")
      .map((task) => `${task.id}:${task.state}`);
    return `${open.join(", ")}; unfinished tasks: ${tasks.slice(0, 20).join(", ")}`;
  });
}

/** a: every execution's value equals the plain run of its program. */
async function checkTransparency(kernel: Kernel, disk: Store, expected: Root[]): Promise<void> {
  const reference = programFunctions();
  const records = await disk.transaction((tx) => expected.map((root) => tx.promise(root.id)));
  for (const [index, root] of expected.entries()) {
    const record = records[index];
    const plain = await runPlain(reference.node, [root.program], {
      id: root.id,
      functions: (name) =>
        name === "node"
          ? reference.node
          : name === "step"
            ? reference.step
            : name === "sleeper"
              ? reference.sleeper
              : undefined,
      // A latent promise resolves with its program's value; any other one nobody settles times out.
      external: (settings) =>
        settings.tags?.[VALUE_TAG] !== undefined
          ? { state: "resolved", value: Number(settings.tags[VALUE_TAG]) }
          : { state: "rejected", error: Object.assign(new Error("timed out"), { name: "TimeoutError" }) },
    });
    const want = plain.state === "resolved" ? JSON.stringify(plain.value) : `rejected ${plain.error.message}`;
    const got =
      record === undefined
        ? "missing"
        : record.state === "resolved"
          ? JSON.stringify(decode(record.value))
          : record.state === "rejected"
            ? `rejected ${toError(decode(record.value)).message}`
            : `${record.state} ${JSON.stringify(decode(record.value))}`;
    if (want !== got) {
      kernel.fail("a interruption transparency", `${root.id}: durable ${got}, plain ${want}`);
      return;
    }
  }
}

export type { Program };
