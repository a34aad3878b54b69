/**
 * ADR 0006: a worker's fences ask for no preload (`pledge:preload: false`) when the
 * server says it takes `preload-opt-out`; a server that refuses the field (a 400
 * naming it) gets the fence again without it, and no fence asks again; a fence
 * refused for anything else fails as it would have, and the worker keeps asking.
 */
import { describe, expect, it } from "vitest";
import { PRELOAD_FIELD } from "../../src/protocol/records.js";
import type { Response } from "../../src/protocol/requests.js";
import { type NetworkRequest, ProtocolRejection } from "../../src/sdk/network/network.js";
import { threeDoublings, useCleanups, wrappedWorker } from "./support.js";

const cleanup = useCleanups();

/**
 * A worker against the real core through a network that says whether it takes the
 * extension (`names`), and refuses with `refusal` the fences `refuses` picks.
 */
function setup(options: { names: boolean; refuses?: (request: NetworkRequest) => string | undefined }) {
  /** Per fence sent: whether it asked for no preload, and how many records its answer preloaded. */
  const fences: { quiet: boolean; preloaded: number }[] = [];
  const { pledge } = wrappedWorker(cleanup, (inner) => ({
    supports: (extension) => options.names && inner.supports(extension),
    async send(request: NetworkRequest): Promise<Response> {
      if (request.kind !== "task.fence") return inner.send(request);
      const quiet = request.data[PRELOAD_FIELD] === false;
      const refusal = options.refuses?.(request);
      if (refusal !== undefined) {
        fences.push({ quiet, preloaded: -1 });
        throw new ProtocolRejection(400, refusal);
      }
      const response = await inner.send(request);
      fences.push({ quiet, preloaded: (response.data as { preload: unknown[] }).preload.length });
      return response;
    },
  }));
  return { pledge, fences };
}

describe("preload-opt-out (ADR 0006)", () => {
  it("asks every fence for no preload where the server names the extension, and gets none", async () => {
    const { pledge, fences } = setup({ names: true });
    pledge.register("threeSteps", threeDoublings);
    expect(await pledge.run("r", "threeSteps", 1)).toBe(8);
    expect(fences).toEqual([
      { quiet: true, preloaded: 0 },
      { quiet: true, preloaded: 0 },
      { quiet: true, preloaded: 0 },
    ]);
  });

  it("never sends the field to a server that does not name the extension (which preloads as usual)", async () => {
    const { pledge, fences } = setup({ names: false });
    pledge.register("threeSteps", threeDoublings);
    expect(await pledge.run("r", "threeSteps", 1)).toBe(8);
    expect(fences.every((fence) => !fence.quiet)).toBe(true);
    expect(fences.at(-1)?.preloaded).toBeGreaterThan(0);
  });

  it("a 400 naming the field: the fence goes again without it, and no later fence asks", async () => {
    const { pledge, fences } = setup({
      names: true,
      refuses: (request) =>
        request.kind === "task.fence" && request.data[PRELOAD_FIELD] === false
          ? `data["${PRELOAD_FIELD}"]: unknown field`
          : undefined,
    });
    pledge.register("threeSteps", threeDoublings);
    expect(await pledge.run("r", "threeSteps", 1)).toBe(8);
    expect(fences.map((fence) => fence.quiet)).toEqual([true, false, false, false]);
  });

  it("a 400 for anything else fails the step as it would have, and later fences still ask", async () => {
    const { pledge, fences } = setup({
      names: true,
      refuses: (request) =>
        request.kind === "task.fence" && request.data.id === "bad" ? "data.action.data.param: no" : undefined,
    });
    pledge.register("threeSteps", threeDoublings);
    await expect(pledge.run("bad", "threeSteps", 1)).rejects.toThrow("data.action.data.param: no");
    expect(await pledge.run("good", "threeSteps", 1)).toBe(8);
    expect(fences.map((fence) => fence.quiet)).toEqual([true, true, true, true]);
  });
});
