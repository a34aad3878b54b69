/**
 * ADR 0005: a leaf `ctx.run` step is written once, created settled, when the
 * server says it takes `settle-on-create`; a step that makes durable calls is
 * created before the first of them; a server that does not say so, ignores the
 * field or refuses it still gets every step recorded, in two writes.
 */
import { describe, expect, it } from "vitest";
import { SETTLE_ON_CREATE } from "../../src/protocol/records.js";
import type { Response } from "../../src/protocol/requests.js";
import type { Context } from "../../src/sdk/engine/context.js";
import type { NetworkRequest } from "../../src/sdk/network/network.js";
import { decodeValue, double, threeDoublings, useCleanups, wrappedWorker } from "./support.js";

type ServerKind = "pledge" | "silent" | "ignores" | "refuses";

/** The fences a worker sent: what each wrote, in order. */
type Write = { kind: string; id: string; settled: boolean };

const cleanup = useCleanups();

/**
 * A worker against the real core, through a network that plays `server`: Pledge
 * (says it takes the extension), silent (does not say so), one that ignores the
 * field (drops it), one that refuses it (inner 400, as a strict server would).
 */
function setup(server: ServerKind) {
  const writes: Write[] = [];
  const { pledge, store } = wrappedWorker(cleanup, (inner) => ({
    supports: (extension) => server !== "silent" && inner.supports(extension),
    async send(request: NetworkRequest): Promise<Response> {
      if (request.kind !== "task.fence" || request.data.action.kind === "invalid") return inner.send(request);
      const action = request.data.action;
      const folded = action.kind === "promise.create" && SETTLE_ON_CREATE in action.data;
      if (folded && server === "refuses")
        return {
          status: 200,
          data: {
            action: {
              kind: action.kind,
              head: { status: 400, corrId: "0", version: "2026-04-01" },
              data: "no",
            },
            preload: [],
          },
        };
      let forwarded = request;
      if (folded && server === "ignores") {
        const { [SETTLE_ON_CREATE]: _dropped, ...data } = action.data;
        forwarded = { ...request, data: { ...request.data, action: { kind: "promise.create", data } } };
      }
      writes.push({ kind: action.kind, id: action.data.id, settled: folded && server !== "ignores" });
      return inner.send(forwarded);
    },
  }));
  const record = (id: string) => store.searchPromises({ limit: 100 }).find((promise) => promise.id === id);
  return { pledge, writes, record };
}

describe("settle-on-create (ADR 0005)", () => {
  it("writes each leaf step once, created settled, when the server takes it", async () => {
    const { pledge, writes, record } = setup("pledge");
    pledge.register("threeLeaves", threeDoublings);
    expect(await pledge.run("r", "threeLeaves", 1)).toBe(8);
    expect(writes).toEqual([
      { kind: "promise.create", id: "r.1", settled: true },
      { kind: "promise.create", id: "r.2", settled: true },
      { kind: "promise.create", id: "r.3", settled: true },
    ]);
    expect(record("r.2")?.state).toBe("resolved");
    expect(decodeValue(record("r.2")?.value)).toBe(4);
  });

  it("creates a step with durable calls of its own before the first of them, and settles it after", async () => {
    const { pledge, writes } = setup("pledge");
    const outer = async (ctx: Context, n: number) => {
      const inner = await ctx.run(double, n);
      return ctx.run(double, inner);
    };
    pledge.register("nested", async (ctx: Context, n: number) => ctx.run(outer, n));
    expect(await pledge.run("r", "nested", 3)).toBe(12);
    expect(writes).toEqual([
      { kind: "promise.create", id: "r.1", settled: false },
      { kind: "promise.create", id: "r.1.1", settled: true },
      { kind: "promise.create", id: "r.1.2", settled: true },
      { kind: "promise.settle", id: "r.1", settled: false },
    ]);
  });

  it("a step that fails is recorded rejected in its one write", async () => {
    const { pledge, writes, record } = setup("pledge");
    const boom = async () => {
      throw new Error("boom");
    };
    pledge.register("fails", async (ctx: Context) =>
      ctx.run(boom, ctx.options({ retry: { kind: "never" } })),
    );
    await expect(pledge.run("r", "fails")).rejects.toThrow("boom");
    expect(writes, JSON.stringify(writes)).toEqual([{ kind: "promise.create", id: "r.1", settled: true }]);
    expect(record("r.1")?.state).toBe("rejected");
  });

  for (const server of ["silent", "ignores", "refuses"] as const) {
    it(`a server that ${server === "silent" ? "does not name it" : `${server} the field`} gets every step in two writes`, async () => {
      const { pledge, writes, record } = setup(server);
      pledge.register("threeLeaves", threeDoublings);
      expect(await pledge.run("r", "threeLeaves", 1)).toBe(8);
      expect(await pledge.run("s", "threeLeaves", 2)).toBe(16);
      for (const id of ["r.1", "r.2", "r.3", "s.1", "s.2", "s.3"]) expect(record(id)?.state).toBe("resolved");
      // A refusal is asked once per worker; after it, plain creates.
      const folded = writes.filter((write) => write.settled);
      expect(folded).toEqual([]);
      const settles = writes.filter((write) => write.kind === "promise.settle").map((write) => write.id);
      expect(settles).toEqual(["r.1", "r.2", "r.3", "s.1", "s.2", "s.3"]);
    });
  }
});
