/**
 * `new Pledge({ store: "postgres://…" })`: embedded on PostgreSQL. Without a
 * reachable PostgreSQL this skips loudly (and fails under CI=true).
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type Context, Pledge } from "../../src/index.js";
import { dropSchema, freshSchema, POSTGRES_URL, requirePostgres } from "../differential/postgres.js";

if (requirePostgres("the embedded-on-PostgreSQL SDK test")) {
  describe("embedded on PostgreSQL", () => {
    const instances: Pledge[] = [];
    const schema = freshSchema("pledge_sdk");
    const store = `${POSTGRES_URL}?schema=${schema}`;
    afterEach(async () => {
      for (const instance of instances.splice(0)) await instance.stop();
    });
    afterAll(async () => {
      await dropSchema(schema);
    });

    it("a workflow with steps and a sleep completes, and a second instance joins it by id", async () => {
      const pledge = new Pledge({ store, group: `pg-${process.pid}` });
      instances.push(pledge);
      let steps = 0;
      pledge.register("countdown", async (ctx: Context, n: number) => {
        for (let i = n; i > 0; i--) {
          await ctx.run(() => {
            steps += 1;
          });
          await ctx.sleep(50);
        }
        return "liftoff";
      });
      const id = `pg-countdown-${process.pid}-${Date.now()}`;
      expect(await pledge.run(id, "countdown", 3)).toBe("liftoff");
      expect(steps).toBe(3);
      const second = new Pledge({ store, group: `pg-other-${process.pid}` });
      instances.push(second);
      expect(await (await second.get(id)).result()).toBe("liftoff");
    });
  });
}
