import { describe, expect, it } from "vitest";
import { Processor } from "../../src/server/processor.js";
import { MemoryStore } from "../../src/store/memory-store.js";

describe("the group-commit processor", () => {
  it("commits everything queued in one turn together, except an item that runs alone", async () => {
    const store = new MemoryStore();
    const batches: number[] = [];
    const processor = new Processor(store, { committed: () => {} });
    const original = store.transaction.bind(store);
    store.transaction = async (work) =>
      original((tx) => {
        let items = 0;
        const counting = new Proxy(tx, {
          get: (target, key) => (key === "apply" ? () => (items += 1) : Reflect.get(target, key)),
        });
        const result = work(counting);
        batches.push(items);
        return result;
      });
    const item = (alone = false) => ({
      ...(alone && { alone }),
      run: (tx: { apply: (changes: never) => void }) => {
        tx.apply(undefined as never);
        return { result: undefined, messages: [] };
      },
    });
    await Promise.all(
      [item(), item(), item(), item(true), item(), item()].map((each) => processor.submit(each)),
    );
    expect(batches).toEqual([3, 1, 2]);
  });
});
