/**
 * Pledge: durable execution for TypeScript on durable promises.
 *
 *   const pledge = new Pledge();                                  // embedded, sqlite:./pledge.db
 *   const pledge = new Pledge({ store: "memory" });               // embedded, nothing kept
 *   const pledge = new Pledge({ url: "http://127.0.0.1:8001" });  // remote (`pledge serve`, any protocol server)
 *
 * The instance is usable at once; an embedded store opens in the background and
 * the first call waits for it.
 */
import { randomUUID } from "node:crypto";
import { systemClock, systemTimers } from "./lib/clock.js";
import { createLogger } from "./lib/logger.js";
import { type Embedded, openEmbedded } from "./node/embedded.js";
import type { OutgoingMessage } from "./protocol/records.js";
import type { Response } from "./protocol/requests.js";
import { PledgeClient } from "./sdk/client.js";
import type { Network, NetworkRequest } from "./sdk/network/network.js";
import { RemoteNetwork } from "./sdk/network/remote.js";

export type { PromiseRecord, TaskRecord, Value } from "./protocol/records.js";
export type { Handle } from "./sdk/client.js";
export { SerializationError } from "./sdk/codec.js";
export { Context, type ContextInfo } from "./sdk/engine/context.js";
export { NondeterminismError, PromiseSettledError } from "./sdk/engine/execution.js";
export { Future, Started } from "./sdk/engine/future.js";
export { type CallOptions, Options } from "./sdk/options.js";
export { NonRetryableError, type RetryPolicy } from "./sdk/retry.js";

export interface PledgeOptions {
  /** Embedded store: `sqlite:<path>` (default `sqlite:./pledge.db`), `memory`. Ignored with `url`. */
  store?: string;
  /**
   * A server to talk to instead of an embedded one; or several, the replicas of
   * one server on PostgreSQL: requests go round-robin over them, and past one
   * that stops answering.
   */
  url?: string | readonly string[];
  /** Bearer token for `url`, or required of HTTP clients when an embedded instance `listen`s. */
  token?: string;
  /** Worker group this process serves (default `default`). */
  group?: string;
  /** This process's identity (default a random id). */
  pid?: string;
  /** Lease length in ms (default 30000). */
  ttl?: number;
  /** Most tasks in flight in this process (default 64). */
  concurrency?: number;
  /** Embedded only: also serve HTTP here, for the CLI, the dashboard and remote workers. */
  listen?: { port?: number; host?: string };
  /** Log level of the embedded server (default `warn`). */
  logLevel?: string;
}

/** A network that waits for the embedded server to open before its first use. */
class DeferredNetwork implements Network {
  constructor(
    readonly unicast: string,
    readonly anycast: string,
    private readonly ready: Promise<Network>,
  ) {}

  async send(request: NetworkRequest): Promise<Response> {
    return (await this.ready).send(request);
  }

  subscribe(onMessage: (message: OutgoingMessage) => void): () => void {
    let stop: (() => void) | undefined;
    let stopped = false;
    void this.ready.then((network) => {
      if (!stopped) stop = network.subscribe(onMessage);
    });
    return () => {
      stopped = true;
      stop?.();
    };
  }

  async close(): Promise<void> {
    await (await this.ready).close();
  }
}

export class Pledge extends PledgeClient {
  private readonly embedded: Promise<Embedded> | undefined;
  private readonly network: Network;

  constructor(settings: PledgeOptions = {}) {
    const group = settings.group ?? "default";
    const pid = settings.pid ?? randomUUID().replaceAll("-", "");
    const logger = createLogger(settings.logLevel ?? "warn");
    let embedded: Promise<Embedded> | undefined;
    let network: Network;
    if (settings.url !== undefined) {
      network = new RemoteNetwork({
        url: settings.url,
        group,
        pid,
        ...(settings.token !== undefined && { token: settings.token }),
      });
    } else {
      embedded = openEmbedded(
        {
          store: settings.store ?? "sqlite:./pledge.db",
          group,
          pid,
          ...(settings.listen !== undefined && { listen: settings.listen }),
          ...(settings.token !== undefined && { token: settings.token }),
          ...(settings.logLevel !== undefined && { logLevel: settings.logLevel }),
        },
        logger,
      );
      // Surfaced by the first call that needs the store; kept from being an unhandled rejection.
      embedded.catch(() => {});
      network = new DeferredNetwork(
        `poll://uni@${group}/${pid}`,
        `poll://any@${group}/${pid}`,
        embedded.then((opened) => opened.network),
      );
    }
    super({
      network,
      clock: systemClock,
      timers: systemTimers,
      random: Math.random,
      group,
      pid,
      ttl: settings.ttl ?? 30_000,
      concurrency: settings.concurrency ?? 64,
      onError: (error, taskId) => logger.error({ err: error, taskId }, "task execution failed"),
    });
    this.embedded = embedded;
    this.network = network;
  }

  /** The HTTP URL of an embedded instance that `listen`s. */
  async url(): Promise<string | undefined> {
    return (await this.embedded)?.url;
  }

  override async stop(): Promise<void> {
    await super.stop();
    if (this.embedded === undefined) await this.network.close();
    else await (await this.embedded).close();
  }
}
