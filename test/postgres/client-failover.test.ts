/**
 * A Pledge client given every replica's URL, with no load balancer in front
 * (issue 5; the remote network's R5): its requests go round-robin over two
 * `pledge serve` processes on one PostgreSQL schema, and when one is SIGKILLed
 * mid-load the executions in flight finish through the other. The lease outlasts
 * the test, so they cannot have finished by waiting for it to lapse: the client
 * moved on by itself.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Context, Pledge } from "../../src/index.js";
import { dropSchema, freshSchema, requirePostgres } from "../differential/postgres.js";
import { diagnostics, killAll, requireBuild, sleep, uid, withDiagnostics } from "../sdk-process/harness.js";
import { healthy, type Served, servePostgres } from "./serve.js";

const STEPS = 6;
const EXECUTIONS = 12;

const mix = (accumulator: number, index: number) => (accumulator * 31 + index * index) % 1_000_003;

function expected(seed: number): number {
  let accumulator = seed;
  for (let index = 1; index <= STEPS; index += 1) accumulator = mix(accumulator, index);
  return accumulator;
}

/** Protocol requests a server has answered (`pledge_requests_total`, every kind and status). */
async function requestsAnswered(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n"))
    if (line.startsWith("pledge_requests_total{")) total += Number(line.slice(line.lastIndexOf(" ") + 1));
  return total;
}

if (requirePostgres("a client over several replicas")) {
  describe("a client given every replica's URL", () => {
    const schema = freshSchema("pledge_failover");
    const replicas: Served[] = [];

    beforeAll(async () => {
      requireBuild();
      for (const index of [0, 1]) replicas.push(await servePostgres(`replica ${index}`, schema));
      await withDiagnostics(Promise.all(replicas.map((replica) => healthy(replica))));
    }, 30_000);

    afterAll(async () => {
      await killAll();
      await dropSchema(schema);
    });

    it("finishes every execution through the surviving replica when the other is SIGKILLed mid-load", async () => {
      const [first, second] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
      const pledge = new Pledge({ url: [first.url, second.url], group: uid("failover"), ttl: 120_000 });
      let stepsRun = 0;
      const step = async (_ctx: Context, index: number, accumulator: number) => {
        await sleep(40);
        stepsRun += 1;
        return mix(accumulator, index);
      };
      pledge.register("steps", async (ctx: Context, seed: number) => {
        let accumulator = seed;
        for (let index = 1; index <= STEPS; index += 1) accumulator = await ctx.run(step, index, accumulator);
        return accumulator;
      });
      const prefix = uid("run");
      try {
        const runs = Array.from({ length: EXECUTIONS }, (_, seed) =>
          pledge.run<number>(`${prefix}-${seed}`, "steps", seed),
        );
        const deadline = Date.now() + 20_000;
        while (stepsRun < EXECUTIONS * 2) {
          if (Date.now() > deadline) throw new Error(`only ${stepsRun} steps ran in 20 s\n${diagnostics()}`);
          await sleep(10);
        }
        // Both replicas took this client's requests before one of them died.
        expect(await requestsAnswered(first.url)).toBeGreaterThan(0);
        expect(await requestsAnswered(second.url)).toBeGreaterThan(0);
        await first.proc.kill("SIGKILL");
        const killedAfter = stepsRun;
        const results = await withDiagnostics(Promise.all(runs));
        expect(results).toEqual(Array.from({ length: EXECUTIONS }, (_, seed) => expected(seed)));
        expect(killedAfter, diagnostics()).toBeLessThan(EXECUTIONS * STEPS); // the kill came mid-load
        // And the client goes on working, past the dead replica, for a new execution.
        expect(await pledge.run<number>(`${prefix}-after`, "steps", 99)).toBe(expected(99));
        expect(second.proc.exitInfo).toBeUndefined();
      } finally {
        await pledge.stop();
      }
    }, 60_000);
  });
}
