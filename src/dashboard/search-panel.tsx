/**
 * The search box (`<input type="search">`; Enter searches) and its results: one
 * row per promise with state, id, what it is and when it was made. A row opens
 * that promise's execution as a tree. The query language is `query.ts`'s.
 */
import { useState } from "preact/hooks";
import type { PromiseRecord } from "../protocol/records.js";
import { ErrorLine, StateBadge } from "./parts.js";
import { formatDuration, functionName, promiseRole } from "./values.js";

interface SearchPanelProps {
  results: readonly PromiseRecord[] | undefined;
  hasMore: boolean;
  busy: boolean;
  error: string | undefined;
  selectedId: string | undefined;
  now: number;
  onSearch(text: string): void;
  onMore(): void;
  onOpen(promise: PromiseRecord): void;
}

export function SearchPanel(props: SearchPanelProps) {
  const [text, setText] = useState("");
  const { results, hasMore, busy, error, selectedId, now, onSearch, onMore, onOpen } = props;
  return (
    <section class="panel search" aria-label="search promises">
      <form
        aria-label="search"
        onSubmit={(event) => {
          event.preventDefault();
          onSearch(text);
        }}
      >
        <input
          type="search"
          name="q"
          aria-label="Search promises"
          placeholder="id prefix · state:pending · key=value — Enter searches"
          value={text}
          onInput={(event) => setText((event.currentTarget as HTMLInputElement).value)}
        />
      </form>
      <p class="hint muted">
        Words combine: <code>order-7</code> (id prefix), <code>state:pending</code>, <code>env=prod</code>{" "}
        (tag). Empty lists everything.
      </p>
      <ErrorLine error={error} />
      {results !== undefined && results.length === 0 && !busy && <p class="muted">No promises match.</p>}
      {results !== undefined && results.length > 0 && (
        <ul class="results" aria-label="results">
          {results.map((promise) => {
            const name = functionName(promise);
            return (
              <li key={promise.id} data-promise-id={promise.id} data-state={promise.state}>
                <button
                  type="button"
                  class={`result${selectedId === promise.id ? " selected" : ""}`}
                  onClick={() => onOpen(promise)}
                >
                  <StateBadge state={promise.state} />
                  <span class="mono result-id">{promise.id}</span>
                  <span class="result-fn">{name ?? promiseRole(promise)}</span>
                  <span class="result-time muted">
                    {formatDuration(Math.max(0, now - promise.createdAt))} ago
                  </span>
                </button>
              </li>
            );
          })}
        </ul>
      )}
      {busy && <p class="muted">Searching…</p>}
      {hasMore && !busy && (
        <button type="button" class="link" onClick={onMore}>
          More results
        </button>
      )}
    </section>
  );
}
