/**
 * An execution `run` here settles from its own `task.fulfill`: the handle needs no
 * listener while this process's worker runs it (W5). Only when the worker lets it
 * go otherwise (suspended on a promise settled from outside) is the listener
 * registered, and the result still arrives.
 */
import { describe, expect, it } from "vitest";
import type { Response } from "../../src/protocol/requests.js";
import type { Context } from "../../src/sdk/engine/context.js";
import type { Network, NetworkRequest } from "../../src/sdk/network/network.js";
import { double, until, useCleanups, wrappedWorker } from "./support.js";

const cleanup = useCleanups();

function setup() {
  const kinds: string[] = [];
  let direct: Pick<Network, "send"> | undefined;
  const { pledge, store } = wrappedWorker(cleanup, (inner) => {
    direct = inner;
    return {
      supports: (extension) => inner.supports(extension),
      send(request: NetworkRequest): Promise<Response> {
        kinds.push(request.kind);
        return inner.send(request);
      },
    };
  });
  /** Another process's requests: past this client, and uncounted. */
  const other = direct as Pick<Network, "send">;
  return { pledge, store, kinds, other };
}

describe("a run's result, here", () => {
  it("comes from the worker's own fulfil: no listener is registered", async () => {
    const { pledge, kinds } = setup();
    pledge.register("twice", async (ctx: Context, n: number) => ctx.run(double, await ctx.run(double, n)));
    expect(await pledge.run("r", "twice", 3)).toBe(12);
    expect(kinds).not.toContain("promise.register_listener");
    expect(kinds.filter((kind) => kind === "task.fulfill")).toHaveLength(1);
  });

  it("after a suspension, comes through the listener registered when the worker let the task go", async () => {
    const { pledge, store, kinds } = setup();
    pledge.register("waits", async (ctx: Context) => ctx.promise({ id: "approval" }));
    const handle = await pledge.beginRun("r", "waits");
    const result = handle.result();
    await until(() => store.task("r")?.state === "suspended", "the task to be suspended");
    await until(() => kinds.includes("promise.register_listener"), "the listener to be registered");
    await pledge.promises.resolve("approval", "yes");
    expect(await result).toBe("yes");
  });

  it("settled from outside while it runs, comes at once from this process, within about a second from another", async () => {
    const { pledge, other } = setup();
    let release: () => void = () => {};
    const slow = () => new Promise<number>((resolve) => (release = () => resolve(1)));
    pledge.register("slow", async (ctx: Context) => ctx.run(slow));
    cleanup(() => release());

    const here = (await pledge.beginRun("here", "slow")).result();
    let started = Date.now();
    await pledge.promises.cancel("here");
    await expect(here).rejects.toThrow(/here/);
    expect(Date.now() - started).toBeLessThan(500);

    const elsewhere = (await pledge.beginRun("elsewhere", "slow")).result();
    started = Date.now();
    // Settled by another process: the handle has no word of it until its listener is registered.
    await other.send({ kind: "promise.settle", data: { id: "elsewhere", state: "rejected_canceled" } });
    await expect(elsewhere).rejects.toThrow(/elsewhere/);
    expect(Date.now() - started).toBeLessThan(2_500);
  });
});
