import { describe, expect, it } from "vitest";
import { parseQuery } from "./query.js";

describe("the dashboard's search box", () => {
  it("turns words into a promise.search body: id prefix, state and tags", () => {
    expect(parseQuery("order-7 state:pending env=prod resonate:origin=order-7")).toEqual({
      ok: true,
      query: { id: "order-7*", state: "pending", tags: { env: "prod", "resonate:origin": "order-7" } },
    });
    expect(parseQuery("  ")).toEqual({ ok: true, query: {} });
    expect(parseQuery("order-7*")).toEqual({ ok: true, query: { id: "order-7*" } });
    expect(parseQuery("note=a=b")).toEqual({ ok: true, query: { tags: { note: "a=b" } } });
  });

  it("refuses what the server would, naming the word at fault", () => {
    expect(parseQuery("state:done")).toMatchObject({
      ok: false,
      reason: expect.stringContaining('"state:done"'),
    });
    expect(parseQuery("a b")).toMatchObject({ ok: false, reason: expect.stringContaining('"b"') });
    expect(parseQuery("=x")).toMatchObject({ ok: false, reason: expect.stringContaining('"=x"') });
    expect(parseQuery("state:pending state:resolved")).toMatchObject({ ok: false });
  });
});
