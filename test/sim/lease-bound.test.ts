/**
 * Regression for the simulator's second find (docs/simulation.md, bug 2): a
 * worker whose lease lapsed unnoticed must not run a step that the task's next
 * holder already ran and recorded (SDK invariants W4, X5). Built on the
 * simulator's kernel so the timing is exact: the first worker's answer to the
 * step's create is held back past its lease while its heartbeats go missing.
 */
import { expect, it } from "vitest";
import type { Response } from "../../src/protocol/requests.js";
import { PledgeClient } from "../../src/sdk/client.js";
import type { Context } from "../../src/sdk/engine/context.js";
import type { Network, NetworkRequest } from "../../src/sdk/network/network.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { Kernel, SimNode } from "../../src/testing/kernel.js";
import { emptyCounters, NO_NETWORK_FAULTS, SimNetwork, SimServer } from "../../src/testing/network.js";

const TTL_MS = 10_000;

it("a worker whose lease lapsed unnoticed does not run a step the next holder already recorded", async () => {
  const kernel = new Kernel({ seed: 1 });
  const server = new SimServer({
    kernel,
    store: new MemoryStore(),
    config: { debug: false, retryTimeoutMs: 5_000, unblockTtlMs: 60 * 60 * 1000 },
  });
  const runs: Record<string, string[]> = { first: [], second: [] };

  const spawn = (name: string, group: string, wrap?: (network: Network, node: SimNode) => Network) => {
    const node = new SimNode(name);
    const simulated = new SimNetwork({
      kernel,
      server,
      node,
      group,
      pid: name,
      random: kernel.random.fork(name),
      faults: () => NO_NETWORK_FAULTS,
      counters: emptyCounters(),
    });
    const client = new PledgeClient({
      network: wrap === undefined ? simulated : wrap(simulated, node),
      clock: kernel.clock,
      timers: kernel.timersFor(node),
      random: () => 0.5,
      group,
      pid: name,
      ttl: TTL_MS,
      concurrency: 4,
    });
    const step = (_ctx: unknown, label: string) => {
      runs[name]?.push(label);
      return label;
    };
    client.register("step", step);
    client.register("flow", async (ctx: Context) => {
      const a = await ctx.run(step, "a");
      const b = await ctx.run(step, "b");
      return `${a}${b}`;
    });
    return client;
  };

  // The first worker: the answer to the write that records step "a" (its settle, or its
  // creation settled, ADR 0005), the last before step "b" may run, comes back 25 s late,
  // and from then on its heartbeats go nowhere (so its lease lapses unnoticed).
  let stalled = false;
  spawn("first", "workers", (network, node) => ({
    unicast: network.unicast,
    anycast: network.anycast,
    subscribe: (onMessage) => network.subscribe(onMessage),
    close: () => network.close(),
    async send(request: NetworkRequest): Promise<Response> {
      if (stalled && request.kind === "task.heartbeat") return new Promise(() => {});
      const response = await network.send(request);
      const action = request.kind === "task.fence" ? request.data.action : undefined;
      const recordsA =
        action !== undefined &&
        action.kind !== "invalid" &&
        action.data.id.endsWith(".1") &&
        (action.kind === "promise.settle" || "pledge:settle" in action.data);
      if (!recordsA) return response;
      stalled = true;
      return new Promise((resolve) => kernel.schedule(node, 25_000, () => resolve(response)));
    },
  }));
  const starter = spawn("starter", "clients");
  const handle = await (async () => {
    const started = starter.beginRpc("flow-1", "flow", starter.options({ target: "workers" }));
    await kernel.runWhile(() => kernel.now - kernel.startMs < 1_000);
    return started;
  })();
  // A second worker joins; it takes the task over once the first one's lease lapses.
  spawn("second", "workers");
  let result: unknown;
  void (await handle).result().then((value) => {
    result = value;
  });
  await kernel.runWhile(() => kernel.now - kernel.startMs < 120_000);

  expect(kernel.failed).toBeUndefined();
  expect(result).toBe("ab");
  expect(runs.first).toEqual(["a"]);
  expect(runs.second).toEqual(["b"]);
});
