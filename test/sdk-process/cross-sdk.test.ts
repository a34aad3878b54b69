/**
 * Cross-SDK (issue 3 item 7), through one `pledge serve`:
 *  - a Pledge caller `rpc`s `add(ctx, a, b)` served by a worker written with the
 *    official `@resonatehq/sdk@0.11.5` (group "resonate"),
 *  - an official-SDK caller `beginRpc`s + `result()`s `greet(ctx, name)` served
 *    by a Pledge worker (group "pledge"),
 *  - and, one level down, a Pledge workflow fans out to official-SDK functions
 *    with `ctx.beginRpc`, an official-SDK workflow to Pledge functions, and a
 *    rejection crosses in both directions.
 * Besides the results, the stored records are checked against PROTOCOL.md
 * "Pledge's decisions": `param.data` = base64 JSON of `{ func, args, version }`,
 * `value.data` = base64 JSON of the result, the target tag `poll://any@<group>`.
 *
 * Scripts: workers/worker.mjs + caller.mjs (Pledge), workers/resonate-worker.mjs +
 * resonate-caller.mjs (official SDK, with a Promise.withResolvers polyfill for Node 20).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  decodeData,
  type Event,
  getPromise,
  killAll,
  type Proc,
  type Server,
  spawnNode,
  startServer,
  stopServer,
  uid,
  withDiagnostics,
} from "./harness.js";

let server: Server | undefined;
let resonateWorker: Proc | undefined;
let pledgeWorker: Proc | undefined;

beforeAll(async () => {
  server = await startServer();
  const env = { PLEDGE_URL: server.url, TTL_MS: "2000" };
  resonateWorker = spawnNode("resonate worker", "resonate-worker.mjs", [], {
    ...env,
    GROUP: "resonate",
    PID: "resonate-1",
  });
  pledgeWorker = spawnNode("pledge worker", "worker.mjs", [], {
    ...env,
    GROUP: "pledge",
    PID: "pledge-1",
    JOURNAL_DIR: server.dir,
  });
  await withDiagnostics(
    Promise.all([
      resonateWorker.waitFor("resonate worker ready", (e) => e.event === "ready", 15_000),
      pledgeWorker.waitFor("pledge worker ready", (e) => e.event === "ready", 15_000),
    ]),
  );
}, 30_000);

afterAll(async () => {
  await killAll(new Set(server ? [server.proc] : []));
  await stopServer(server);
  await killAll();
});

function pledgeCall(id: string, target: string, func: string, args: unknown[]): Proc {
  return spawnNode(`pledge caller ${id}`, "caller.mjs", [id, target, func, JSON.stringify(args)], {
    PLEDGE_URL: (server as Server).url,
    GROUP: "pledge-caller",
  });
}

function resonateCall(id: string, target: string, func: string, args: unknown[]): Proc {
  return spawnNode(`resonate caller ${id}`, "resonate-caller.mjs", [id, target, func, JSON.stringify(args)], {
    PLEDGE_URL: (server as Server).url,
    GROUP: "resonate-caller",
    TTL_MS: "2000",
  });
}

function outcome(p: Proc): Promise<Event> {
  return withDiagnostics(
    p.waitFor("the call's outcome", (e) => e.event === "result" || e.event === "rejected", 20_000),
  );
}

/** The stored root promise of a top-level call, checked against PROTOCOL.md's value and param encoding. */
async function expectRoot(
  id: string,
  func: string,
  args: unknown[],
  target: string,
  value: unknown,
  version: number,
) {
  const root = await getPromise((server as Server).url, id);
  expect(root.state).toBe("resolved");
  expect(decodeData(root.param.data)).toEqual({ func, args, version });
  expect(decodeData(root.value.data)).toEqual(value);
  expect(root.tags["resonate:target"]).toBe(`poll://any@${target}`);
  expect(root.tags["resonate:scope"]).toBe("global");
  expect(root.tags["resonate:origin"]).toBe(id);
  return root;
}

function expectWorkersAlive(): void {
  expect(server?.proc.exitInfo, "pledge serve exited during the test").toBeUndefined();
  expect(resonateWorker?.exitInfo, "the resonate worker exited").toBeUndefined();
  expect(pledgeWorker?.exitInfo, "the pledge worker exited").toBeUndefined();
}

describe("cross-SDK through pledge serve", () => {
  it("a Pledge caller rpc's add(ctx, 2, 40) on an @resonatehq/sdk 0.11.5 worker", async () => {
    const id = uid("p2r");
    const out = await outcome(pledgeCall(id, "resonate", "add", [2, 40]));
    expect(out.event, JSON.stringify(out)).toBe("result");
    expect(out.result).toEqual({ sum: 42, by: "resonate", id });
    expect(
      resonateWorker?.events.some((e) => e.event === "step" && e.a === 2 && e.b === 40),
      "the resonate worker ran the step",
    ).toBe(true);
    // A caller that does not have the function asks for version 0: "the latest", as both SDKs read it.
    await expectRoot(id, "add", [2, 40], "resonate", { sum: 42, by: "resonate", id }, 0);
    expectWorkersAlive();
  });

  it("an @resonatehq/sdk 0.11.5 caller beginRpc's + result()s greet(ctx, 'Ada') on a Pledge worker", async () => {
    const id = uid("r2p");
    const out = await outcome(resonateCall(id, "pledge", "greet", ["Ada"]));
    expect(out.event, JSON.stringify(out)).toBe("result");
    expect(out.result).toEqual({ greeting: "Hello, Ada!", by: "pledge", id });
    expect(
      pledgeWorker?.events.some((e) => e.event === "step" && e.who === "Ada"),
      "the pledge worker ran the step",
    ).toBe(true);
    await expectRoot(id, "greet", ["Ada"], "pledge", { greeting: "Hello, Ada!", by: "pledge", id }, 1);
    expectWorkersAlive();
  });

  it("a Pledge workflow fans out to official-SDK functions with ctx.beginRpc and gathers their results", async () => {
    const id = uid("p2r-fan");
    const pairs = [
      [1, 2],
      [3, 4],
      [5, 6],
    ];
    const out = await outcome(pledgeCall(id, "pledge", "sumVia", [pairs, "resonate"]));
    expect(out.event, JSON.stringify(out)).toBe("result");
    expect(out.result).toEqual({
      results: [
        { sum: 3, by: "resonate", id: `${id}.1` },
        { sum: 7, by: "resonate", id: `${id}.2` },
        { sum: 11, by: "resonate", id: `${id}.3` },
      ],
      total: 21,
    });
    const child = await getPromise((server as Server).url, `${id}.2`);
    expect(decodeData(child.param.data)).toEqual({ func: "add", args: [3, 4], version: 0 });
    expect(child.tags["resonate:target"]).toBe("poll://any@resonate");
    expect(child.tags["resonate:parent"]).toBe(id);
    expectWorkersAlive();
  });

  it("an official-SDK workflow fans out to Pledge functions with ctx.beginRpc and gathers their results", async () => {
    const id = uid("r2p-fan");
    const out = await outcome(
      resonateCall(id, "resonate", "greetAll", [["Ada", "Grace", "Edsger"], "pledge"]),
    );
    expect(out.event, JSON.stringify(out)).toBe("result");
    expect(out.result).toEqual({ greetings: ["Hello, Ada!", "Hello, Grace!", "Hello, Edsger!"] });
    expectWorkersAlive();
  });

  it("a rejection crosses in both directions as an Error with its message", async () => {
    const toResonate = uid("p2r-err");
    const toPledge = uid("r2p-err");
    const [fromResonate, fromPledge] = await Promise.all([
      outcome(pledgeCall(toResonate, "resonate", "refuse", ["no thanks"])),
      outcome(resonateCall(toPledge, "pledge", "refuse", ["not today"])),
    ]);
    expect(fromResonate, "a Pledge caller of a failing official-SDK function").toMatchObject({
      event: "rejected",
      isError: true,
      message: "refused: no thanks",
    });
    expect(fromPledge, "an official-SDK caller of a failing Pledge function").toMatchObject({
      event: "rejected",
      isError: true,
      message: "refused: not today",
    });
    for (const id of [toResonate, toPledge]) {
      const root = await getPromise((server as Server).url, id);
      expect(root.state).toBe("rejected");
      expect(decodeData(root.value.data)).toMatchObject({
        __type: "error",
        message: expect.stringContaining("refused"),
      });
    }
    expectWorkersAlive();
  });
});
