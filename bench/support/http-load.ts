/**
 * Closed-loop HTTP load: `concurrency` clients, each running one workload cycle
 * after another against one of `urls` (client i on urls[i mod n], so replicas
 * share the clients round-robin) over keep-alive connections (node:http with
 * a keep-alive Agent, one socket per client, Nagle off as undici does). A run
 * warms up, then records for a fixed duration: cycles and requests completed
 * inside the window, each request's latency by kind, and the server's commit
 * and request counters read at the window's edges.
 *
 * The workloads speak the wire protocol (PROTOCOL.md §1.2) and nothing of src/
 * beyond the protocol version; every answer must be head.status 200, else the
 * run stops with the body, so a benchmark never measures failures. The one
 * exception is an error the server marks retryable (head.error.retryable, e.g.
 * store_unavailable when PostgreSQL replicas keep conflicting): the client
 * sends the request again after a short pause, as the SDK's clients would, up
 * to MAX_ATTEMPTS times; the latency covers every attempt, and the retries are
 * counted and reported, so they are seen rather than hidden.
 */
import http from "node:http";
import { PROTOCOL_VERSION, TAG } from "../../src/protocol/records.js";
import { LatencySamples, sleep } from "./figures.js";

export interface ServerCounters {
  /** Store transactions committed (undefined for the HTTP floor). */
  commits?: number;
  /** Requests the server handled (processor items; the floor counts its own). */
  requests: number;
  /** CPU time (user + system) of the server's process, in microseconds. */
  cpuMicros: number;
}

type Json = Record<string, unknown>;

/** Sends one request of `kind` and returns the response envelope's `data`. */
export type Call = (kind: string, data: Json) => Promise<Json>;

export interface Workload {
  name: string;
  /** What one cycle does, printed with the figures. */
  description: string;
  /** The request kinds of one cycle, in order (for the latency columns). */
  kinds: string[];
  cycle(call: Call, id: string): Promise<void>;
}

const TARGET = "poll://any@bench";
const WORKER_PID = "bench-worker";
const LEASE_TTL_MS = 60_000;
const HOUR_MS = 60 * 60 * 1000;
const MAX_ATTEMPTS = 20;
const RETRY_PAUSE_MS = 5;
const PARAM = { headers: {}, data: "eyJmdW5jIjoiYmVuY2giLCJhcmdzIjpbMV19" };
const VALUE = { headers: {}, data: "eyJ2YWx1ZSI6Mn0=" };

function field<T>(data: Json, path: string[]): T {
  let node: unknown = data;
  for (const key of path) {
    if (typeof node !== "object" || node === null) throw new Error(`response lacks ${path.join(".")}`);
    node = (node as Json)[key];
  }
  if (node === undefined) throw new Error(`response lacks ${path.join(".")}`);
  return node as T;
}

/** Time-outs are an hour away, so nothing settles by timeout during a run. */
const timeoutAt = () => Date.now() + HOUR_MS;

export const WORKLOADS: Record<"pairs" | "acquire" | "claim", Workload> = {
  pairs: {
    name: "pairs",
    description: "promise.create → promise.settle (resolved)",
    kinds: ["promise.create", "promise.settle"],
    async cycle(call, id) {
      await call("promise.create", { id, timeoutAt: timeoutAt(), param: PARAM });
      await call("promise.settle", { id, state: "resolved", value: VALUE });
    },
  },
  acquire: {
    // task.create would hand back a task already acquired at v1, so the acquire path
    // starts from a targeted promise.create: its task is born pending at v0 (and an
    // execute for it waits in the outbox, since no worker is connected).
    name: "acquire",
    description: `promise.create (target ${TARGET}; task pending v0) → task.acquire v0 → task.fulfill v1`,
    kinds: ["promise.create", "task.acquire", "task.fulfill"],
    async cycle(call, id) {
      await call("promise.create", {
        id,
        timeoutAt: timeoutAt(),
        param: PARAM,
        tags: { [TAG.target]: TARGET },
      });
      const acquired = await call("task.acquire", { id, version: 0, pid: WORKER_PID, ttl: LEASE_TTL_MS });
      const version = field<number>(acquired, ["task", "version"]);
      await call("task.fulfill", {
        id,
        version,
        action: { kind: "promise.settle", data: { id, state: "resolved", value: VALUE } },
      });
    },
  },
  claim: {
    name: "claim",
    description: "task.create (promise + task acquired v1) → task.fulfill v1",
    kinds: ["task.create", "task.fulfill"],
    async cycle(call, id) {
      const created = await call("task.create", {
        pid: WORKER_PID,
        ttl: LEASE_TTL_MS,
        action: {
          kind: "promise.create",
          data: { id, timeoutAt: timeoutAt(), param: PARAM, tags: { [TAG.target]: TARGET } },
        },
      });
      const version = field<number>(created, ["task", "version"]);
      await call("task.fulfill", {
        id,
        version,
        action: { kind: "promise.settle", data: { id, state: "resolved", value: VALUE } },
      });
    },
  },
};

/** The HTTP floor: the same client against a bare node:http server answering a fixed envelope. */
export const FLOOR_WORKLOAD: Workload = {
  name: "floor",
  description:
    "one POST / to a bare node:http server answering a fixed 200 envelope (no Hono, no core, no store)",
  kinds: ["noop"],
  async cycle(call, id) {
    await call("noop", { id });
  },
};

export interface RunFigures {
  cyclesPerSecond: number;
  requestsPerSecond: number;
  /** Store transactions per handled request in the window (null when the target has no store). */
  commitsPerRequest: number | null;
  /** Requests per commit: the group commit's mean batch size. */
  meanBatch: number | null;
  /** CPU time of the server's process per request it handled; embedded, that process also runs the clients. */
  cpuMicrosPerRequest: number;
  /** Retryable errors answered and retried per completed request in the window. */
  retriesPerRequest: number;
  latency: Record<string, { p50Ms: number; p99Ms: number; samples: number }>;
}

export interface LoadOptions {
  /** One per server; several when replicas share a store. */
  urls: string[];
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  workload: Workload;
  /** Distinguishes ids across runs that share a store. */
  idPrefix: string;
  counters(): Promise<ServerCounters>;
}

export async function runLoad(options: LoadOptions): Promise<RunFigures> {
  const { workload } = options;
  const targets = options.urls.map((url) => new URL(url));
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  const samples = new Map(workload.kinds.map((kind) => [kind, new LatencySamples()]));
  let recording = false;
  let stopping = false;
  let cycles = 0;
  let requests = 0;
  let retries = 0;
  let corr = 0;

  const callOn =
    (target: URL): Call =>
    async (kind, data) => {
      const started = performance.now();
      for (let attempt = 1; ; attempt += 1) {
        corr += 1;
        const body = JSON.stringify({
          kind,
          head: { corrId: String(corr), version: PROTOCOL_VERSION },
          data,
        });
        const text = await post(agent, target, body);
        const envelope = JSON.parse(text) as {
          head?: { status?: number; error?: { retryable?: boolean } };
          data?: Json;
        };
        if (envelope.head?.status === 200) return answered(kind, envelope.data, started);
        if (envelope.head?.error?.retryable !== true || attempt === MAX_ATTEMPTS)
          throw new Error(`${kind} answered (attempt ${attempt}) ${text.slice(0, 500)}`);
        if (recording) retries += 1;
        await sleep(RETRY_PAUSE_MS);
      }
    };
  const answered = (kind: string, data: Json | undefined, started: number): Json => {
    if (recording) {
      samples.get(kind)?.add(performance.now() - started);
      requests += 1;
    }
    return data ?? {};
  };

  const client = async (index: number) => {
    const call = callOn(targets[index % targets.length] as URL);
    for (let n = 0; !stopping; n += 1) {
      await workload.cycle(call, `${options.idPrefix}-${index}-${n}`);
      if (recording) cycles += 1;
    }
  };

  const clients = Array.from({ length: options.concurrency }, (_, index) => client(index));
  let failure: unknown;
  const done = Promise.all(clients).catch((error: unknown) => {
    failure = error;
    stopping = true;
  });
  try {
    await Promise.race([sleep(options.warmupMs), done]);
    const before = await options.counters();
    recording = true;
    const started = performance.now();
    await Promise.race([sleep(options.durationMs), done]);
    recording = false;
    const seconds = (performance.now() - started) / 1000;
    const after = await options.counters();
    stopping = true;
    await done;
    if (failure !== undefined) throw failure;
    const handled = after.requests - before.requests;
    const commits =
      after.commits !== undefined && before.commits !== undefined
        ? after.commits - before.commits
        : undefined;
    return {
      cyclesPerSecond: cycles / seconds,
      requestsPerSecond: requests / seconds,
      commitsPerRequest: commits !== undefined && handled > 0 ? commits / handled : null,
      meanBatch: commits !== undefined && commits > 0 ? handled / commits : null,
      cpuMicrosPerRequest: handled > 0 ? (after.cpuMicros - before.cpuMicros) / handled : Number.NaN,
      retriesPerRequest: requests > 0 ? retries / requests : Number.NaN,
      latency: Object.fromEntries([...samples].map(([kind, list]) => [kind, list.summary()])),
    };
  } finally {
    stopping = true;
    await done;
    agent.destroy();
  }
}

function post(agent: http.Agent, target: URL, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        path: "/",
        method: "POST",
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
        response.on("error", reject);
      },
    );
    // Clients such as undici turn Nagle off; without it a small request can wait for a delayed ACK.
    request.on("socket", (socket) => socket.setNoDelay(true));
    request.on("error", reject);
    request.end(body);
  });
}
