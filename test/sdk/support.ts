/**
 * Shared harness for the SDK's behavioural suites: one in-process server core
 * (a `ServerShell` on a `MemoryStore`) per test, reached by any number of
 * `PledgeClient`s (one per worker group / process) through `EmbeddedNetwork`s.
 *
 * Everything a test starts is registered for teardown with `useCleanups()`.
 * Worker errors (`onError`) are collected, never thrown, so a test can assert on
 * them and `afterEach` can fail a test that produced an unexpected one.
 */
import { afterEach, expect } from "vitest";
import { MonotonicClock, systemClock, systemTimers } from "../../src/lib/clock.js";
import { silentLogger } from "../../src/lib/logger.js";
import { EmbeddedNetwork } from "../../src/node/embedded-network.js";
import type { PromiseRecord } from "../../src/protocol/records.js";
import type { Request, Response } from "../../src/protocol/requests.js";
import { PledgeClient } from "../../src/sdk/client.js";
import type { Context } from "../../src/sdk/engine/context.js";
import type { Network } from "../../src/sdk/network/network.js";
import { ServerShell } from "../../src/server/shell.js";
import { MemoryStore } from "../../src/store/memory-store.js";

export const ENGINES = ["async", "generator"] as const;
export type Engine = (typeof ENGINES)[number];

/** A leaf step for the extension suites: its answer is easy to check, its param easy to read. */
export const double = async (_ctx: Context, n: number) => n * 2;

/** Three `double` leaf steps in a row: n × 8, and three fences to observe. */
export async function threeDoublings(ctx: Context, n: number): Promise<number> {
  const a = await ctx.run(double, n);
  const b = await ctx.run(double, a);
  return ctx.run(double, b);
}

type Cleanup = () => Promise<void> | void;

/** Teardown registry, run in reverse order after every test of the calling file. */
export function useCleanups(): (cleanup: Cleanup) => void {
  const cleanups: Cleanup[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return (cleanup) => {
    cleanups.push(cleanup);
  };
}

/**
 * A worker (group "g", pid "w") on the real core through the embedded network as
 * `wrap` presents it: what the server says it takes, and what each request meets.
 * For the suites of a protocol extension (ADR 0005, ADR 0006).
 */
export function wrappedWorker(
  cleanup: (cleanup: Cleanup) => void,
  wrap: (inner: EmbeddedNetwork) => Pick<Network, "supports" | "send">,
): { pledge: PledgeClient; store: MemoryStore } {
  const store = new MemoryStore();
  const shell = new ServerShell(
    { store, clock: new MonotonicClock(systemClock), timers: systemTimers, logger: silentLogger },
    { debug: false, retryTimeoutMs: 1000, unblockTtlMs: 3_600_000, maintenanceIntervalMs: 50 },
  );
  shell.start();
  const inner = new EmbeddedNetwork(shell, { group: "g", pid: "w" });
  const { supports, send } = wrap(inner);
  const network: Network = {
    unicast: inner.unicast,
    anycast: inner.anycast,
    ...(supports !== undefined && { supports }),
    send,
    subscribe: (onMessage) => inner.subscribe(onMessage),
    close: () => inner.close(),
  };
  const pledge = new PledgeClient({
    network,
    clock: systemClock,
    timers: systemTimers,
    random: Math.random,
    group: "g",
    pid: "w",
    ttl: 5000,
    concurrency: 4,
  });
  cleanup(async () => {
    await pledge.stop();
    await inner.close();
    await shell.close();
  });
  return { pledge, store };
}

export interface ClientSettings {
  group?: string;
  pid?: string;
  ttl?: number;
  concurrency?: number;
  random?: () => number;
}

export interface Harness {
  store: MemoryStore;
  shell: ServerShell;
  /** A Pledge client (a worker process) in `group` (default `default`). */
  client(settings?: ClientSettings | string): PledgeClient;
  /** Worker errors reported through `onError`, with the task they concern. */
  errors: { error: unknown; taskId: string }[];
  /** Every promise record in the store, sorted by id, without the store-only `armed` field. */
  records(): PromiseRecord[];
  /** The record of `id`, straight from the store. */
  record(id: string): PromiseRecord | undefined;
  /** A raw protocol request to the shell (as a network would send it, without edge validation). */
  send(request: Request): Promise<Response>;
}

/**
 * A server and its clients. `expectNoErrors` (default true) makes the test fail
 * in `afterEach` if any worker reported an error.
 */
export function harnessFactory(
  register: (cleanup: Cleanup) => void,
): (options?: { expectNoErrors?: boolean }) => Harness {
  return (options = {}) => {
    const store = new MemoryStore();
    const shell = new ServerShell(
      { store, clock: new MonotonicClock(systemClock), timers: systemTimers, logger: silentLogger },
      { debug: false, retryTimeoutMs: 1000, unblockTtlMs: 3_600_000, maintenanceIntervalMs: 50 },
    );
    shell.start();
    const errors: Harness["errors"] = [];
    register(async () => {
      await shell.close();
      if (options.expectNoErrors ?? true) expect(errors).toEqual([]);
    });
    let clients = 0;
    const client = (settings: ClientSettings | string = {}) => {
      const resolved = typeof settings === "string" ? { group: settings } : settings;
      clients += 1;
      const group = resolved.group ?? "default";
      const pid = resolved.pid ?? `${group}-${clients}`;
      const network = new EmbeddedNetwork(shell, { group, pid });
      const pledge = new PledgeClient({
        network,
        clock: systemClock,
        timers: systemTimers,
        random: resolved.random ?? Math.random,
        group,
        pid,
        ttl: resolved.ttl ?? 5000,
        concurrency: resolved.concurrency ?? 16,
        onError: (error, taskId) => errors.push({ error, taskId }),
      });
      register(async () => {
        await pledge.stop();
        await network.close();
      });
      return pledge;
    };
    const records = () =>
      store.searchPromises({ limit: 10_000 }).map(({ armed: _armed, ...record }) => record as PromiseRecord);
    return {
      store,
      shell,
      client,
      errors,
      records,
      record: (id) => records().find((record) => record.id === id),
      send: (request) => shell.handle(request),
    };
  };
}

/** A record without its instants (createdAt, settledAt, timeoutAt), for comparisons across runs. */
export function timeless(
  record: PromiseRecord,
): Omit<PromiseRecord, "createdAt" | "settledAt" | "timeoutAt"> {
  const { createdAt: _c, settledAt: _s, timeoutAt: _t, ...rest } = record;
  return rest;
}

/** Decodes a `Value` as the SDK writes it (base64 of JSON). */
export function decodeValue(value: { data?: string } | undefined): unknown {
  const data = value?.data;
  if (data === undefined || data === "") return undefined;
  return JSON.parse(Buffer.from(data, "base64").toString("utf8"));
}

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every 5 ms until it returns something other than undefined/false; fails after `timeoutMs`. */
export async function until<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

/** Waits until the promise `id` exists (e.g. a latent promise a workflow creates). */
export function promiseExists(harness: Pick<Harness, "record">, id: string): Promise<PromiseRecord> {
  return until(() => harness.record(id), `promise ${id} to exist`);
}

/** Waits until the task of `id` is suspended (its execution dropped from memory, to be replayed). */
export function taskSuspended(harness: Pick<Harness, "store">, id: string): Promise<true> {
  return until(
    () => harness.store.searchTasks({ limit: 10_000 }).find((task) => task.id === id)?.state === "suspended",
    `task ${id} to suspend`,
  );
}

/** Counts calls by key. */
export function counter() {
  const counts = new Map<string, number>();
  return {
    hit(key: string): void {
      counts.set(key, (counts.get(key) ?? 0) + 1);
    },
    of(key: string): number {
      return counts.get(key) ?? 0;
    },
    all(): Record<string, number> {
      return Object.fromEntries([...counts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    },
  };
}

/** The error a promise rejects with (fails if it resolves). */
export async function rejection(promise: PromiseLike<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a rejection, but the promise resolved");
}
