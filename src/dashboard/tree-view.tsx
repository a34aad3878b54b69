/**
 * The call graph as nested lists: one item per promise (its id in
 * `data-promise-id`, its state in `data-state`), children in call order, each
 * row with state, id (the part after its parent's), function and duration.
 * Rows are buttons, so the keyboard reaches them; clicking one selects it (it
 * is then `aria-current`), and the arrow before it folds its children. It renders a `CallTree`; keeping that current is
 * the app's business.
 */
import { useState } from "preact/hooks";
import { StateBadge } from "./parts.js";
import type { CallTree } from "./tree.js";
import { functionName, promiseDuration, promiseRole, shortId } from "./values.js";

interface TreeViewProps {
  tree: CallTree;
  selectedId: string | undefined;
  now: number;
  onSelect(id: string): void;
}

export function TreeView({ tree, selectedId, now, onSelect }: TreeViewProps) {
  const [folded, setFolded] = useState<ReadonlySet<string>>(new Set());
  const toggle = (id: string): void => {
    const next = new Set(folded);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setFolded(next);
  };
  return (
    <ul class="tree" aria-label={`call graph of ${tree.rootId}`}>
      <Node
        id={tree.rootId}
        parentId={undefined}
        tree={tree}
        selectedId={selectedId}
        now={now}
        folded={folded}
        onSelect={onSelect}
        onToggle={toggle}
      />
    </ul>
  );
}

interface NodeProps {
  id: string;
  parentId: string | undefined;
  tree: CallTree;
  selectedId: string | undefined;
  now: number;
  folded: ReadonlySet<string>;
  onSelect(id: string): void;
  onToggle(id: string): void;
}

function Node({ id, parentId, tree, selectedId, now, folded, onSelect, onToggle }: NodeProps) {
  const promise = tree.nodes.get(id);
  if (promise === undefined) return null;
  const children = tree.children.get(id) ?? [];
  const open = !folded.has(id);
  const name = functionName(promise);
  return (
    <li data-promise-id={id} data-state={promise.state}>
      <div class={`node${selectedId === id ? " selected" : ""}`}>
        <button
          type="button"
          class="toggle"
          aria-label={open ? "fold" : "unfold"}
          aria-expanded={children.length > 0 ? open : undefined}
          disabled={children.length === 0}
          onClick={() => onToggle(id)}
        >
          {children.length === 0 ? "·" : open ? "▾" : "▸"}
        </button>
        <button
          type="button"
          class="node-main"
          aria-current={selectedId === id ? "true" : undefined}
          onClick={() => onSelect(id)}
        >
          <StateBadge state={promise.state} />
          <span class="mono node-id" title={id}>
            {shortId(id, parentId)}
          </span>
          <span class="node-fn">{name ?? promiseRole(promise)}</span>
          <span class="node-time">{promiseDuration(promise, now)}</span>
        </button>
      </div>
      {children.length > 0 && open && (
        <ul>
          {children.map((child) => (
            <Node
              key={child}
              id={child}
              parentId={id}
              tree={tree}
              selectedId={selectedId}
              now={now}
              folded={folded}
              onSelect={onSelect}
              onToggle={onToggle}
            />
          ))}
        </ul>
      )}
    </li>
  );
}
