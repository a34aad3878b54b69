/**
 * An execution's call graph, as the dashboard holds it. A promise's parent is
 * the promise its `resonate:parent` tag names (how every SDK records lineage,
 * PROTOCOL.md §2.5); a promise without lineage tags hangs under the id one
 * segment shorter (`<parent>.<n>`, the SDK id convention of §2.0) — the rule of
 * `pledge tree`. The whole execution is read with two searches (its `origin` tag,
 * its id prefix) and linked here, then kept current from `/events`.
 *
 * Invariants:
 *  T1  Each promise appears at most once, and only under a node already in the
 *      tree, so a cycle in the tags cannot make a walk loop.
 *  T2  Siblings are ordered by creation time, then id: the order of the calls.
 */
import type { PromiseRecord } from "../protocol/records.js";

export interface CallTree {
  rootId: string;
  nodes: Map<string, PromiseRecord>;
  /** Children ids per node id, in T2 order. */
  children: Map<string, string[]>;
}

const PARENT = "resonate:parent";
const ORIGIN = "resonate:origin";

/** The id of the node `promise` hangs under, if that node is in `nodes`. */
export function parentOf(
  promise: PromiseRecord,
  nodes: ReadonlyMap<string, PromiseRecord>,
): string | undefined {
  const tagged = promise.tags[PARENT];
  if (tagged !== undefined) return tagged !== promise.id && nodes.has(tagged) ? tagged : undefined;
  const dot = promise.id.lastIndexOf(".");
  if (dot <= 0) return undefined;
  const byId = promise.id.slice(0, dot);
  return nodes.has(byId) ? byId : undefined;
}

function byCreation(nodes: ReadonlyMap<string, PromiseRecord>) {
  return (a: string, b: string): number => {
    const first = nodes.get(a);
    const second = nodes.get(b);
    const delta = (first?.createdAt ?? 0) - (second?.createdAt ?? 0);
    return delta !== 0 ? delta : a < b ? -1 : a > b ? 1 : 0; // T2
  };
}

/** Links `candidates` under `root`; candidates that do not reach the root are left out (T1). */
export function linkTree(root: PromiseRecord, candidates: readonly PromiseRecord[]): CallTree {
  const all = new Map<string, PromiseRecord>([[root.id, root]]);
  for (const candidate of candidates) if (!all.has(candidate.id)) all.set(candidate.id, candidate);
  const childrenOf = new Map<string, string[]>();
  for (const promise of all.values()) {
    if (promise.id === root.id) continue;
    const parent = parentOf(promise, all);
    if (parent === undefined) continue;
    childrenOf.set(parent, [...(childrenOf.get(parent) ?? []), promise.id]);
  }
  // Keep only what the root reaches, walking without recursion (a deep chain must not exhaust the stack).
  const tree: CallTree = { rootId: root.id, nodes: new Map([[root.id, root]]), children: new Map() };
  const pending = [root.id];
  for (let id = pending.pop(); id !== undefined; id = pending.pop()) {
    const kids = (childrenOf.get(id) ?? []).filter((kid) => !tree.nodes.has(kid));
    for (const kid of kids) {
      tree.nodes.set(kid, all.get(kid) as PromiseRecord);
      pending.push(kid);
    }
    if (kids.length > 0) tree.children.set(id, kids.sort(byCreation(all)));
  }
  return tree;
}

/**
 * Whether a promise with these id and tags may belong to the execution rooted at
 * `root` (worth a look when `/events` says it was created).
 */
export function mayBelong(tree: CallTree, id: string, tags: Readonly<Record<string, string>>): boolean {
  if (tree.nodes.has(id)) return true;
  const root = tree.nodes.get(tree.rootId);
  const origin = root?.tags[ORIGIN] ?? tree.rootId;
  if (tags[ORIGIN] !== undefined) return tags[ORIGIN] === origin;
  const parent = tags[PARENT];
  if (parent !== undefined) return tree.nodes.has(parent);
  return id.startsWith(`${tree.rootId}.`);
}

/** A copy of `tree` with `promise` added or replaced; unchanged when it has no parent in the tree (T1). */
export function withPromise(tree: CallTree, promise: PromiseRecord): CallTree {
  if (promise.id === tree.rootId || tree.nodes.has(promise.id)) {
    const nodes = new Map(tree.nodes);
    nodes.set(promise.id, promise);
    return { ...tree, nodes };
  }
  const parent = parentOf(promise, tree.nodes);
  if (parent === undefined) return tree;
  const nodes = new Map(tree.nodes);
  nodes.set(promise.id, promise);
  const children = new Map(tree.children);
  children.set(parent, [...(children.get(parent) ?? []), promise.id].sort(byCreation(nodes)));
  return { rootId: tree.rootId, nodes, children };
}

/** The root of the execution `promise` belongs to: its `origin` tag, else itself. */
export function originOf(promise: PromiseRecord): string {
  return promise.tags[ORIGIN] ?? promise.id;
}
