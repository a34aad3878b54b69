/**
 * Small pieces every view of the dashboard uses: the state badge, a value shown
 * as pretty JSON and folded when large, labelled rows, and the one-line error.
 * They only render what they are given; fetching is the views' business.
 */
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import type { PromiseState, Value } from "../protocol/records.js";
import { decodeValue, encodedError, fold } from "./values.js";

const STATE_LABELS: Record<PromiseState, string> = {
  pending: "pending",
  resolved: "resolved",
  rejected: "rejected",
  rejected_canceled: "canceled",
  rejected_timedout: "timed out",
};

export function StateBadge({ state }: { state: string }) {
  const label = STATE_LABELS[state as PromiseState] ?? state;
  return (
    <span class={`badge badge-${state}`} data-state={state} title={state}>
      {label}
    </span>
  );
}

/** Text in a `<pre>`, folded to its first lines when long; a button unfolds it. */
export function FoldedText({ text }: { text: string }) {
  const [open, setOpen] = useState(false);
  const folded = fold(text);
  if (!folded.folded) return <pre class="value">{text}</pre>;
  const size = folded.bytes >= 1024 ? `${(folded.bytes / 1024).toFixed(1)} KiB` : `${folded.bytes} bytes`;
  return (
    <div class="folded">
      <pre class="value">{open ? text : `${folded.head}\n…`}</pre>
      <button type="button" class="link" onClick={() => setOpen(!open)}>
        {open ? "Fold" : `Show all (${folded.lines} lines, ${size})`}
      </button>
    </div>
  );
}

/** A stored value decoded (base64 JSON), pretty-printed; an encoded error as name, message and stack. */
export function ValueView({ value }: { value: Value | undefined }) {
  const decoded = decodeValue(value);
  if (decoded.kind === "empty") return <span class="muted">none</span>;
  if (decoded.kind === "raw")
    return (
      <div>
        <span class="muted">not base64 JSON; as stored:</span>
        <FoldedText text={decoded.data} />
      </div>
    );
  const error = encodedError(decoded.value);
  if (error !== undefined)
    return (
      <div class="error-value">
        <strong>
          {error.name}: {error.message}
        </strong>
        {error.stack !== undefined && <FoldedText text={error.stack} />}
      </div>
    );
  return <FoldedText text={JSON.stringify(decoded.value, null, 2) ?? "undefined"} />;
}

export function Rows({ rows }: { rows: readonly (readonly [string, ComponentChildren])[] }) {
  return (
    <dl class="rows">
      {rows.map(([label, value]) => (
        <div class="row" key={label}>
          <dt>{label}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

export function ErrorLine({ error }: { error: string | undefined }) {
  if (error === undefined) return null;
  return (
    <p class="error" role="alert">
      {error}
    </p>
  );
}

export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
