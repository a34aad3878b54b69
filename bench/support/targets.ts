/**
 * What the load runs against: a Pledge server on a store (memory, a SQLite
 * file or a PostgreSQL schema), or the HTTP floor (a bare node:http server).
 * `embedded` starts it in this process, so clients and server share one event
 * loop; `remote` starts it in a child process (bench/support/server-child.ts,
 * the same `startServer` as `pledge serve`) and reads its counters over IPC, so
 * each side has its own thread. `startReplicas` starts several remote servers
 * on one PostgreSQL schema and answers them as one set with several URLs.
 */
import { fork } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { openStore } from "../../src/node/open-store.js";
import { DEFAULT_SERVE_OPTIONS } from "../../src/node/options.js";
import { startServer } from "../../src/node/serve.js";
import { PROTOCOL_VERSION } from "../../src/protocol/records.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { ServerCounters } from "./http-load.js";

export type TargetStore =
  | { kind: "memory" }
  | { kind: "sqlite"; path: string }
  /** A postgres:// URL, with `?schema=` naming the run's own schema. */
  | { kind: "postgres"; url: string }
  | { kind: "floor" };

export interface TargetOptions {
  mode: "embedded" | "remote";
  store: TargetStore;
  sync: "full" | "normal";
}

export interface Target {
  url: string;
  /** The server processes, for CPU from /proc; empty when the server runs in this process. */
  pids: number[];
  /** `PRAGMA synchronous` as the store reports it (SQLite only). */
  synchronous: string | undefined;
  counters(): Promise<ServerCounters>;
  close(): Promise<void>;
}

export function startTarget(options: TargetOptions): Promise<Target> {
  return options.mode === "remote" ? startRemote(options) : startEmbedded(options);
}

/** One server or several replicas: clients spread over `urls` round-robin. */
export interface ServerSet extends Omit<Target, "url"> {
  urls: string[];
}

/**
 * `count` remote servers on one PostgreSQL store, started one after another (the
 * first migrates the new schema, the others find it current); their counters
 * are summed, so commits per request and CPU per request cover them all.
 */
export async function startReplicas(options: TargetOptions, count: number): Promise<ServerSet> {
  if (count === 1) {
    const target = await startTarget(options);
    return { ...target, urls: [target.url] };
  }
  if (options.store.kind !== "postgres" || options.mode !== "remote")
    throw new Error("replicas need a PostgreSQL store and remote mode");
  const replicas: Target[] = [];
  try {
    for (let index = 0; index < count; index += 1) replicas.push(await startRemote(options));
  } catch (error) {
    await Promise.all(replicas.map((replica) => replica.close()));
    throw error;
  }
  return {
    urls: replicas.map((replica) => replica.url),
    pids: replicas.flatMap((replica) => replica.pids),
    synchronous: undefined,
    async counters() {
      const all = await Promise.all(replicas.map((replica) => replica.counters()));
      const commits = all.map((counters) => counters.commits);
      return {
        ...(commits.every((value) => value !== undefined) && {
          commits: commits.reduce((sum, value) => sum + value, 0),
        }),
        requests: all.reduce((sum, counters) => sum + counters.requests, 0),
        cpuMicros: all.reduce((sum, counters) => sum + counters.cpuMicros, 0),
      };
    },
    async close() {
      await Promise.all(replicas.map((replica) => replica.close()));
    },
  };
}

export async function startEmbedded(options: Omit<TargetOptions, "mode">): Promise<Target> {
  if (options.store.kind === "floor") return startFloor();
  const url =
    options.store.kind === "memory"
      ? "memory"
      : options.store.kind === "sqlite"
        ? `sqlite:${options.store.path}`
        : options.store.url;
  const store = await openStore(url, { sync: options.sync });
  const server = await startServer(
    { ...DEFAULT_SERVE_OPTIONS, store: url, port: 0, sync: options.sync, logLevel: "silent" },
    { store },
  );
  return {
    url: server.url,
    pids: [],
    synchronous: store instanceof SqliteStore ? store.synchronous : undefined,
    counters: async () => ({ ...server.stats, cpuMicros: cpuMicros() }),
    async close() {
      await server.close();
      await store.close();
    },
  };
}

const FLOOR_BODY = JSON.stringify({
  kind: "noop",
  head: { corrId: "0", status: 200, version: PROTOCOL_VERSION },
  data: {},
});

function cpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

async function startFloor(): Promise<Target> {
  let requests = 0;
  const server = http.createServer((request, response) => {
    requests += 1;
    request.resume();
    request.on("end", () => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(FLOOR_BODY);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    pids: [],
    synchronous: undefined,
    counters: async () => ({ requests, cpuMicros: cpuMicros() }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Messages between this process and server-child.ts. */
export type ChildMessage =
  | { type: "ready"; url: string; synchronous: string | undefined }
  | { type: "counters"; counters: ServerCounters }
  | { type: "closed" }
  | { type: "failed"; message: string };

export type ParentMessage = { type: "counters" } | { type: "close" };

async function startRemote(options: TargetOptions): Promise<Target> {
  const child = fork(
    fileURLToPath(new URL("./server-child.ts", import.meta.url)),
    [JSON.stringify(options)],
    {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    },
  );
  const next = (type: ChildMessage["type"]) =>
    new Promise<ChildMessage>((resolve, reject) => {
      const onMessage = (message: ChildMessage) => {
        if (message.type !== type && message.type !== "failed") return;
        cleanup();
        if (message.type === "failed") reject(new Error(`server child: ${message.message}`));
        else resolve(message);
      };
      const onExit = (code: number | null) => {
        cleanup();
        reject(new Error(`server child exited with ${code} before answering ${type}`));
      };
      const cleanup = () => {
        child.off("message", onMessage);
        child.off("exit", onExit);
      };
      child.on("message", onMessage);
      child.once("exit", onExit);
    });
  const ready = await next("ready");
  if (ready.type !== "ready") throw new Error("server child did not start");
  const send = (message: ParentMessage) => child.send(message);
  return {
    url: ready.url,
    pids: child.pid === undefined ? [] : [child.pid],
    synchronous: ready.synchronous,
    async counters() {
      const answer = next("counters");
      send({ type: "counters" });
      const message = await answer;
      if (message.type !== "counters") throw new Error("server child answered out of turn");
      return message.counters;
    },
    async close() {
      const answer = next("closed");
      send({ type: "close" });
      await answer;
    },
  };
}
