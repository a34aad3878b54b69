/**
 * The simulated network and the simulated server process. A `SimServer` is the
 * real server shell (core, group commit, timers, outbox, delivery) over a store
 * that outlives its crashes, the way a disk does. A `SimNetwork` is the SDK's
 * `Network` for one simulated process: every request and every pushed message
 * crosses it as kernel events, and each crossing may be lost, duplicated or
 * held back, with the probabilities of the current `NetworkFaults`.
 *
 * What it owns: the wire between a process and the server, with the same
 * contract as the real networks (network.ts N1, N2): requests pass the edge
 * validation HTTP uses, answers are sorted by `classifyStatus`, unanswered
 * attempts time out and are retried with the SDK's own `Backoff`, and the
 * message subscription reconnects by itself after a server crash or a
 * dropped stream. What it leaves to others: when processes crash (`world.ts`)
 * and what the checkers make of the traffic (`observe`).
 *
 * Invariants:
 *  W1  The client cannot tell a lost request from a lost answer: both end in
 *      the attempt's timeout, and the request is sent again, as is.
 *  W2  A request reaches only the server incarnation alive when it arrives, and
 *      an answer reaches only the client incarnation that sent the request
 *      (kernel K3): nothing crosses a crash.
 *  W3  A message the server hands to a subscription counts as delivered to the
 *      server whether or not it arrives (as with a real SSE write).
 */
import type { Changes } from "../core/state.js";
import { AssertionError } from "../lib/assert.js";
import type { Timers } from "../lib/clock.js";
import { silentLogger } from "../lib/logger.js";
import { parseRequest } from "../protocol/parse.js";
import { type OutgoingMessage, PROTOCOL_EXTENSIONS } from "../protocol/records.js";
import type { Request, Response } from "../protocol/requests.js";
import {
  type Network,
  NetworkClosedError,
  type NetworkRequest,
  ProtocolRejection,
} from "../sdk/network/network.js";
import { Backoff, classifyStatus, RECONNECT, SEND_RETRY, toEnvelope } from "../sdk/network/remote.js";
import type { Connection } from "../server/delivery.js";
import { ServerShell, type ShellConfig } from "../server/shell.js";
import type { Store, StoreTransaction } from "../store/store.js";
import { StoreUnavailableError } from "../store/store.js";
import { type Kernel, SimNode } from "./kernel.js";
import type { Random } from "./random.js";

export const FAULT_KINDS = [
  "drop",
  "duplicate",
  "delay",
  "reorder",
  "lostRequest",
  "lostResponse",
  "workerCrash",
  "crashInStep",
  "serverCrash",
  "leaseExpiry",
  "clockJump",
  "sseDisconnect",
  "lateTimer",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
export type FaultCounters = Record<FaultKind, number>;

export function emptyCounters(): FaultCounters {
  return Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as FaultCounters;
}

export interface NetworkFaults {
  /** Probability that one crossing (request, answer or pushed message) is lost. */
  drop: number;
  /** Probability that a crossing arrives twice. */
  duplicate: number;
  /** Probability that a crossing is held back 100 ms – 20 s (timeouts, reordering). */
  delay: number;
}

export const NO_NETWORK_FAULTS: NetworkFaults = { drop: 0, duplicate: 0, delay: 0 };

/** What the checkers see of the traffic: every answer the server gave, and every answer a client got. */
export interface NetworkObserver {
  /** The server answered `request`, which it read at `arrivedAt` (its `now`), before the answer crosses back. */
  answered?(from: string, request: Request, response: Response, arrivedAt: number): void;
  /** The server handed `message` to the stream of process `to`. */
  pushed?(to: string, message: OutgoingMessage): void;
  /** A client received the answer to `request` (the acknowledgement). */
  acknowledged?(from: string, request: NetworkRequest, response: Response): void;
  /** A transaction of the server committed `changes` (called once per applied step). */
  applied?(tx: StoreTransaction, changes: Changes): void;
}

export interface SimServerOptions {
  kernel: Kernel;
  /** The server's disk: it keeps exactly what was committed across crashes. */
  store: Store;
  config: ShellConfig;
  observer?: NetworkObserver;
  /** Extra delay for each server timer (a slow or overloaded server fires its timers late). */
  timerLateness?: () => number;
}

/** The server process: a fresh `ServerShell` per incarnation over the same store. */
export class SimServer {
  readonly node = new SimNode("server");
  shell: ServerShell | undefined;
  private readonly kernel: Kernel;
  private readonly subscribers = new Set<() => void>();

  constructor(private readonly options: SimServerOptions) {
    this.kernel = options.kernel;
    this.start();
  }

  get alive(): boolean {
    return this.node.alive && this.shell !== undefined;
  }

  crash(): void {
    this.kernel.crash(this.node);
    this.shell = undefined;
    // Every open stream breaks; each subscriber reconnects on its own.
    const lost = [...this.subscribers];
    this.subscribers.clear();
    for (const onLost of lost) onLost();
  }

  restart(): void {
    this.kernel.restart(this.node);
    this.start();
  }

  /** Hands `request` to the live shell; undefined when the server is down. */
  handle(request: Request): Promise<Response> | undefined {
    return this.shell?.handle(request);
  }

  /** Opens a message stream; `onLost` is called if the server crashes under it. */
  connect(connection: Connection, onLost: () => void): (() => void) | undefined {
    const shell = this.shell;
    if (shell === undefined) return undefined;
    const disconnect = shell.connect(connection);
    this.subscribers.add(onLost);
    return () => {
      this.subscribers.delete(onLost);
      disconnect();
    };
  }

  private timers(): Timers {
    const timers = this.options.kernel.timersFor(this.node);
    const lateness = this.options.timerLateness;
    if (lateness === undefined) return timers;
    return {
      setTimeout: (callback, delayMs) => timers.setTimeout(callback, delayMs + lateness()),
      clearTimeout: (handle) => timers.clearTimeout(handle),
    };
  }

  private start(): void {
    const { kernel, config } = this.options;
    this.shell = new ServerShell(
      {
        store: this.options.store,
        clock: kernel.clock,
        timers: this.timers(),
        defer: kernel.deferFor(this.node),
        logger: silentLogger,
        onFatal: (error) => kernel.fail("server invariant", error.message),
      },
      config,
    );
    this.shell.start();
  }
}

export interface SimNetworkOptions {
  kernel: Kernel;
  server: SimServer;
  /** The process this network belongs to. */
  node: SimNode;
  group: string;
  pid: string;
  random: Random;
  faults: () => NetworkFaults;
  counters: FaultCounters;
  observer?: NetworkObserver;
  /** One attempt gives up after this long. Default 10 s, as the remote network. */
  requestTimeoutMs?: number;
}

const REQUEST_TIMEOUT_MS = 10_000;

export class SimNetwork implements Network {
  readonly unicast: string;
  readonly anycast: string;
  private readonly kernel: Kernel;
  private readonly random: Random;
  private readonly backoff: Backoff;
  private closed = false;
  private dead = false;
  private corr = 0;
  /** Per direction, the sequence number of the latest crossing that arrived (reorder detection). */
  private sent = { up: 0, down: 0 };
  private arrived = { up: 0, down: 0 };

  constructor(private readonly options: SimNetworkOptions) {
    this.kernel = options.kernel;
    this.random = options.random;
    this.unicast = `poll://uni@${options.group}/${options.pid}`;
    this.anycast = `poll://any@${options.group}/${options.pid}`;
    this.backoff = new Backoff(options.kernel.timersFor(options.node), () => this.random.next());
  }

  /** The simulated server runs the real core, so it takes every extension. */
  supports(extension: string): boolean {
    return PROTOCOL_EXTENSIONS.has(extension);
  }

  async send(request: NetworkRequest): Promise<Response> {
    // A dead process may still be finishing the event it died in: what it sends goes nowhere.
    if (this.dead) return new Promise<Response>(() => {});
    if (this.closed) throw new NetworkClosedError(`network closed; ${request.kind} not sent`);
    // The JSON form, as the HTTP edge would have read it (embedded-network M1).
    const text = JSON.stringify(toEnvelope(request, `${this.options.pid}:${++this.corr}`));
    const parsed = parseRequest(JSON.parse(text), { debug: false, text });
    if (!parsed.ok) throw new ProtocolRejection(parsed.failure.status, parsed.failure.message);
    for (let attempt = 1; ; attempt++) {
      const response = await this.attempt(parsed.request);
      if (response !== undefined) {
        const sorted = classifyStatus(response.status);
        if (sorted === "answer") {
          this.options.observer?.acknowledged?.(this.options.pid, request, response);
          return response;
        }
        if (sorted === "reject") throw new ProtocolRejection(response.status, String(response.data));
      }
      if (this.dead) return new Promise<Response>(() => {});
      if (this.closed) throw new NetworkClosedError(`network closed while retrying ${request.kind}`);
      await this.backoff.wait(this.backoff.delayMs(SEND_RETRY, attempt));
    }
  }

  subscribe(onMessage: (message: OutgoingMessage) => void): () => void {
    let stopped = false;
    let disconnect: (() => void) | undefined;
    let failures = 0;
    const { kernel, node, server } = this.options;
    const reconnectLater = () => {
      disconnect = undefined;
      if (stopped) return;
      failures += 1;
      kernel.schedule(node, this.backoff.delayMs(RECONNECT, failures), connect, "reconnects");
    };
    const connection: Connection = {
      group: this.options.group,
      id: this.options.pid,
      send: (message) => {
        if (stopped || !node.alive) return false;
        this.options.observer?.pushed?.(this.options.pid, message);
        this.cross(
          "down",
          () => {
            if (!stopped) onMessage(message);
          },
          () => `receives ${message.kind} ${describeMessage(message)}`,
          "drop",
        );
        return true; // W3
      },
    };
    const breakStream = () => {
      this.streamBreakers.delete(breakStream);
      disconnect?.();
      reconnectLater();
    };
    const connect = () => {
      if (stopped || disconnect !== undefined) return;
      disconnect = server.connect(connection, () => {
        this.streamBreakers.delete(breakStream);
        reconnectLater();
      });
      if (disconnect === undefined) reconnectLater();
      else {
        failures = 0;
        this.streamBreakers.add(breakStream);
      }
    };
    connect();
    const stop = () => {
      stopped = true;
      this.subscriptions.delete(stop);
      this.streamBreakers.delete(breakStream);
      disconnect?.();
      disconnect = undefined;
    };
    this.subscriptions.add(stop);
    return stop;
  }

  /** Breaks every open message stream (an SSE disconnect); each subscription reconnects by itself. */
  breakStreams(): number {
    const open = [...this.streamBreakers];
    for (const breakStream of open) breakStream();
    return open.length;
  }

  private readonly streamBreakers = new Set<() => void>();

  async close(): Promise<void> {
    this.closed = true;
    this.backoff.close(new NetworkClosedError("network closed"));
  }

  /** The process died: its streams drop without reconnecting (its pending sends never end). */
  kill(): void {
    this.dead = true;
    this.closed = true;
    for (const stop of [...this.subscriptions]) stop();
  }

  private readonly subscriptions = new Set<() => void>();

  /** One attempt: resolves with the answer, or undefined once the attempt timed out (W1). */
  private attempt(request: Request): Promise<Response | undefined> {
    const { kernel, node, server, pid } = this.options;
    return new Promise((resolve) => {
      let settled = false;
      const finish = (response: Response | undefined) => {
        if (settled) return;
        settled = true;
        kernel.cancel(timeout);
        resolve(response);
      };
      const timeout = kernel.schedule(
        node,
        this.options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
        () => finish(undefined),
        () => `gives up on ${request.kind}`,
      );
      this.cross(
        "up",
        () => {
          const arrivedAt = kernel.now;
          const answer = server.handle(request);
          if (answer === undefined) return; // the server is down: the request is lost
          answer.then(
            (response) => {
              this.options.observer?.answered?.(pid, request, response, arrivedAt);
              this.cross(
                "down",
                () => finish(response),
                () => `gets ${response.status} for ${request.kind}`,
                "lostResponse",
              );
            },
            (error: unknown) => {
              if (error instanceof StoreUnavailableError) {
                // HTTP's 503: the attempt ends without an answer and is retried.
                this.cross(
                  "down",
                  () => finish(undefined),
                  () => `gets 503 for ${request.kind}`,
                  "lostResponse",
                );
              } else if (error instanceof AssertionError) {
                kernel.fail("server invariant", error.message);
              } else {
                kernel.fail("server error", error instanceof Error ? error.message : String(error));
              }
            },
          );
        },
        () => `${pid} → ${describeRequest(request)}`,
        "lostRequest",
        server.node,
      );
    });
  }

  /**
   * One crossing of the wire: lost, duplicated or held back per the current
   * faults; `deliver` runs as an event of the receiving node (`to`, default this
   * process), so a crash of the receiver drops it (W2).
   */
  private cross(
    direction: "up" | "down",
    deliver: () => void,
    label: () => string,
    lossKind: "drop" | "lostRequest" | "lostResponse",
    to: SimNode = this.options.node,
  ): void {
    const faults = this.options.faults();
    const counters = this.options.counters;
    if (this.random.bool(faults.drop)) {
      counters[lossKind] += 1;
      this.kernel.trace(() => `lost: ${label()}`);
      return;
    }
    const copies = this.random.bool(faults.duplicate) ? 2 : 1;
    if (copies === 2) counters.duplicate += 1;
    for (let copy = 0; copy < copies; copy++) {
      const seq = ++this.sent[direction];
      let delayMs = 1 + this.random.int(0, 9);
      if (this.random.bool(faults.delay)) {
        counters.delay += 1;
        delayMs = this.random.int(100, 20_000);
      }
      this.kernel.schedule(
        to,
        delayMs,
        () => {
          if (seq < this.arrived[direction]) counters.reorder += 1;
          this.arrived[direction] = Math.max(this.arrived[direction], seq);
          deliver();
        },
        label,
      );
    }
  }
}

function describeRequest(request: Request): string {
  const data = request.data as Record<string, unknown>;
  const id = typeof data.id === "string" ? data.id : typeof data.awaited === "string" ? data.awaited : "";
  const version = typeof data.version === "number" ? ` v${data.version}` : "";
  return `${request.kind} ${id}${version}`;
}

function describeMessage(message: OutgoingMessage): string {
  return message.kind === "execute"
    ? `${message.data.task.id} v${message.data.task.version}`
    : message.data.promise.id;
}
