import { describe, expect, it } from "vitest";
import type { PromiseRecord } from "../protocol/records.js";
import { linkTree, mayBelong, originOf, parentOf, withPromise } from "./tree.js";

function promise(id: string, createdAt: number, tags: Record<string, string> = {}): PromiseRecord {
  return { id, state: "pending", param: {}, value: {}, tags, timeoutAt: 1e12, createdAt };
}

const lineage = (parent: string, origin = "root") => ({
  "resonate:parent": parent,
  "resonate:origin": origin,
});

describe("the dashboard's call tree", () => {
  it("children hang under their resonate:parent, ordered by creation time then id", () => {
    const root = promise("root", 0, { "resonate:parent": "root", "resonate:origin": "root" });
    const tree = linkTree(root, [
      promise("root.2", 20, lineage("root")),
      promise("root.1", 10, lineage("root")),
      promise("root.1.0", 15, lineage("root.1")),
      promise("b", 10, lineage("root")),
    ]);
    expect(tree.children.get("root")).toEqual(["b", "root.1", "root.2"]);
    expect(tree.children.get("root.1")).toEqual(["root.1.0"]);
    expect(tree.nodes.size).toBe(5);
  });

  it("a promise without lineage tags falls back to the id one segment shorter", () => {
    const tree = linkTree(promise("job", 0), [
      promise("job.0", 1),
      promise("job.0.3", 2),
      promise("jobless", 3),
    ]);
    expect(tree.children.get("job")).toEqual(["job.0"]);
    expect(tree.children.get("job.0")).toEqual(["job.0.3"]);
    expect(tree.nodes.has("jobless")).toBe(false);
  });

  it("a cycle in the tags or a root that is its own parent cannot loop, and unreachable promises stay out", () => {
    const root = promise("r", 0, { "resonate:parent": "r" });
    const tree = linkTree(root, [
      promise("x", 1, { "resonate:parent": "y" }),
      promise("y", 2, { "resonate:parent": "x" }),
      promise("r", 0, { "resonate:parent": "r" }),
    ]);
    expect([...tree.nodes.keys()]).toEqual(["r"]);
    expect(parentOf(root, tree.nodes)).toBeUndefined();
  });

  it("a new promise joins under its parent, a known one is replaced, a stranger leaves the tree as it was", () => {
    const tree = linkTree(promise("root", 0), [promise("root.1", 5, lineage("root"))]);
    const grown = withPromise(tree, promise("root.0", 1, lineage("root")));
    expect(grown.children.get("root")).toEqual(["root.0", "root.1"]);
    const settled = withPromise(grown, {
      ...promise("root.1", 5, lineage("root")),
      state: "resolved",
      settledAt: 9,
    });
    expect(settled.nodes.get("root.1")?.state).toBe("resolved");
    expect(withPromise(settled, promise("other", 1, lineage("elsewhere", "elsewhere")))).toBe(settled);
  });

  it("an event is worth a look when its origin, parent or id prefix ties it to the tree", () => {
    const tree = linkTree(promise("root", 0, { "resonate:origin": "root" }), []);
    expect(mayBelong(tree, "root.4", lineage("root.3"))).toBe(true);
    expect(mayBelong(tree, "x", lineage("x", "other"))).toBe(false);
    expect(mayBelong(tree, "root.5", {})).toBe(true);
    expect(mayBelong(tree, "rooted", {})).toBe(false);
    expect(originOf(promise("a.1", 0, lineage("a", "a")))).toBe("a");
  });
});
