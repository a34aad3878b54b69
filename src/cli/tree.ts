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
 * I3. Colour never moves a column: cells are padded first and painted after, and
 *     with `color: false` (not a terminal, or NO_COLOR) the output has no escapes.
 */
import { formatDuration } from "../lib/duration.js";
import type { PromiseRecord } from "../protocol/records.js";
import { dim, functionName, paintState } from "./format.js";

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

/**
 * Renders the tree with `├─` / `└─` connectors and aligned state, function and
 * duration columns; with `color`, the state in its colour and the connectors dim (I3).
 */
export function renderTree(root: TreeNode, nowMs: number, options: { color?: boolean } = {}): string {
  const color = options.color === true;
  const rows: { label: string; lines: string; promise: PromiseRecord }[] = [];
  const visit = (node: TreeNode, prefix: string, connector: string): void => {
    const lines = `${prefix}${connector}`;
    rows.push({ label: `${lines}${node.promise.id}`, lines, promise: node.promise });
    const childPrefix = connector === "" ? "" : `${prefix}${connector === "└─ " ? "   " : "│  "}`;
    node.children.forEach((child, index) => {
      visit(child, childPrefix, index === node.children.length - 1 ? "└─ " : "├─ ");
    });
  };
  visit(root, "", "");
  const labelWidth = Math.max(...rows.map((row) => row.label.length));
  const stateWidth = Math.max(...rows.map((row) => row.promise.state.length));
  const functionWidth = Math.max(...rows.map((row) => (functionName(row.promise) ?? "-").length));
  const lines = rows.map((row) => {
    const label = row.label.padEnd(labelWidth);
    const state = row.promise.state.padEnd(stateWidth);
    return [
      color ? `${dim(row.lines)}${label.slice(row.lines.length)}` : label,
      color ? paintState(row.promise.state, state) : state,
      (functionName(row.promise) ?? "-").padEnd(functionWidth),
      nodeDuration(row.promise, nowMs),
    ].join("  ");
  });
  return `${lines.join("\n")}\n`;
}

/** What `--watch` needs: the server's `/events` and a stop signal. */
export interface TreeWatch {
  eventsUrl: string;
  token: string | undefined;
  /** Aborted when the process is asked to stop. */
  signal: AbortSignal;
  /** Redraws in place on a terminal; otherwise each rendering is printed after a blank line. */
  redraw(): Promise<void>;
  /** Running timings tick on a terminal: redraws at least this often (0: only on events). */
  tickMs: number;
}

/**
 * `pledge tree --watch`: redraws on every server event (debounced, so a burst of
 * settlements is one redraw) and every `tickMs` for running timings, until stopped.
 * Without `/events` (an older server, a proxy) it keeps redrawing on the tick alone.
 */
export async function watchTree(watch: TreeWatch, readEvents: ReadEvents): Promise<void> {
  let scheduled: ReturnType<typeof setTimeout> | undefined;
  let drawing = Promise.resolve();
  const redraw = (): void => {
    if (scheduled !== undefined || watch.signal.aborted) return;
    scheduled = setTimeout(() => {
      scheduled = undefined;
      drawing = drawing.then(() => watch.redraw()).catch(() => undefined);
    }, 100);
  };
  const ticker = watch.tickMs > 0 ? setInterval(redraw, watch.tickMs) : undefined;
  const stopped = new Promise<void>((resolve) =>
    watch.signal.addEventListener("abort", () => resolve(), { once: true }),
  );
  try {
    const response = await fetch(watch.eventsUrl, {
      headers: {
        Accept: "text/event-stream",
        ...(watch.token !== undefined && { Authorization: `Bearer ${watch.token}` }),
      },
      signal: watch.signal,
    }).catch(() => undefined);
    if (response?.ok === true && response.body !== null) {
      await Promise.race([readEvents(response.body, redraw).catch(() => undefined), stopped]);
    }
    await stopped;
  } finally {
    if (ticker !== undefined) clearInterval(ticker);
    if (scheduled !== undefined) clearTimeout(scheduled);
    await drawing;
  }
}

export type ReadEvents = (body: ReadableStream<Uint8Array>, onEvent: (data: string) => void) => Promise<void>;
