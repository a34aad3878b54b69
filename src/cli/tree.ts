/**
 * `pledge tree <id>`: the call graph under a promise. A promise's children are
 * the promises tagged `resonate:parent = <id>` (how every SDK records lineage,
 * §2.5), plus, for promises that carry no lineage tags, the ids one segment below
 * it (`<id>.<n>`, the SDK id convention of §2.0), found with the `id` prefix
 * filter of `promise.search`.
 *
 * I1. Each promise appears at most once in a tree, so a cycle in the tags (a root
 *     is its own parent) cannot make the walk loop.
 * I2. Siblings are ordered by creation time, then id: the order the calls were made.
 */
import { formatDuration } from "../lib/duration.js";
import type { PromiseRecord } from "../protocol/records.js";
import { functionName } from "./format.js";

export interface TreeNode {
  promise: PromiseRecord;
  children: TreeNode[];
}

/** What the walk needs from a server; `CliClient` provides it. */
export interface TreeSource {
  getPromise(id: string): Promise<PromiseRecord>;
  /** Every promise matching `data` (a `promise.search` body), across all pages. */
  searchPromises(data: Record<string, unknown>): Promise<PromiseRecord[]>;
}

const PARENT_TAG = "resonate:parent";

export async function buildTree(rootId: string, source: TreeSource): Promise<TreeNode> {
  const root = await source.getPromise(rootId);
  const visited = new Set<string>([root.id]);
  const rootNode: TreeNode = { promise: root, children: [] };
  // Iterative walk: a deep chain of calls must not exhaust the stack.
  const pending: TreeNode[] = [rootNode];
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    const children = await childrenOf(node.promise.id, source);
    for (const child of children) {
      if (visited.has(child.id)) continue; // I1
      visited.add(child.id);
      const childNode: TreeNode = { promise: child, children: [] };
      node.children.push(childNode);
      pending.push(childNode);
    }
  }
  return rootNode;
}

async function childrenOf(id: string, source: TreeSource): Promise<PromiseRecord[]> {
  const byTag = await source.searchPromises({ tags: { [PARENT_TAG]: id }, limit: 1000 });
  const byPrefix = await source.searchPromises({ id: `${id}.*`, limit: 1000 });
  const children = new Map<string, PromiseRecord>();
  for (const promise of byTag) {
    if (promise.id !== id) children.set(promise.id, promise);
  }
  for (const promise of byPrefix) {
    const rest = promise.id.slice(id.length + 1);
    const untagged = promise.tags[PARENT_TAG] === undefined;
    // Only direct children by id: deeper ones are found from their own parent.
    if (untagged && rest !== "" && !rest.includes(".")) children.set(promise.id, promise);
  }
  return [...children.values()].sort(
    (a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0), // I2
  );
}

/** The duration column: how long a settled promise took, or how long a pending one has run. */
export function nodeDuration(promise: PromiseRecord, nowMs: number): string {
  if (promise.settledAt !== undefined) return formatDuration(promise.settledAt - promise.createdAt);
  return `${formatDuration(Math.max(0, nowMs - promise.createdAt))} so far`;
}

/** Renders the tree with `├─` / `└─` connectors and aligned state, function and duration columns. */
export function renderTree(root: TreeNode, nowMs: number): string {
  const rows: { label: string; promise: PromiseRecord }[] = [];
  const visit = (node: TreeNode, prefix: string, connector: string): void => {
    rows.push({ label: `${prefix}${connector}${node.promise.id}`, promise: node.promise });
    const childPrefix = connector === "" ? "" : `${prefix}${connector === "└─ " ? "   " : "│  "}`;
    node.children.forEach((child, index) => {
      visit(child, childPrefix, index === node.children.length - 1 ? "└─ " : "├─ ");
    });
  };
  visit(root, "", "");
  const labelWidth = Math.max(...rows.map((row) => row.label.length));
  const stateWidth = Math.max(...rows.map((row) => row.promise.state.length));
  const functionWidth = Math.max(...rows.map((row) => (functionName(row.promise) ?? "-").length));
  const lines = rows.map((row) =>
    [
      row.label.padEnd(labelWidth),
      row.promise.state.padEnd(stateWidth),
      (functionName(row.promise) ?? "-").padEnd(functionWidth),
      nodeDuration(row.promise, nowMs),
    ].join("  "),
  );
  return `${lines.join("\n")}\n`;
}
