/**
 * One node's details: state, function, timings, attempts, params and value
 * (decoded), tags, and its task with the holder of the lease. A pending
 * external promise can be resolved or rejected from here (human-in-the-loop):
 * the first button only opens the form; nothing is sent before "Confirm".
 *
 * I1. A settlement is sent only from the confirm button, and only while the
 *     promise shown is pending; the answer (the settled record) replaces it.
 */
import { useEffect, useState } from "preact/hooks";
import type { PromiseRecord, TaskRecord } from "../protocol/records.js";
import { type Request, RequestError, Unauthorized } from "./api.js";
import { ErrorLine, message, Rows, StateBadge, ValueView } from "./parts.js";
import {
  decodeValue,
  encodeJson,
  formatInstant,
  functionName,
  isExternal,
  isRecord,
  promiseDuration,
  promiseRole,
  withoutTask,
} from "./values.js";

interface DetailsProps {
  promise: PromiseRecord;
  request: Request;
  now: number;
  /** Bumped when `/events` says this node's task changed, so it is read again. */
  taskVersion: number;
  onSettled(promise: PromiseRecord): void;
  onUnauthorized(): void;
}

type TaskView =
  | { kind: "loading" }
  | { kind: "none" }
  | { kind: "task"; task: TaskRecord }
  | { kind: "error"; error: string };

export function Details({ promise, request, now, taskVersion, onSettled, onUnauthorized }: DetailsProps) {
  const [task, setTask] = useState<TaskView>({ kind: "loading" });
  const targeted = promise.tags["resonate:target"] !== undefined;
  useEffect(() => {
    // Only a targeted promise has a task (PROTOCOL.md §2.5); asking for others would only 404.
    if (!targeted) {
      setTask({ kind: "none" });
      return;
    }
    let current = true;
    request("task.get", { id: promise.id }).then(
      (data) => current && setTask({ kind: "task", task: data.task as TaskRecord }),
      (error: unknown) => {
        if (!current) return;
        if (error instanceof Unauthorized) onUnauthorized();
        else if (error instanceof RequestError && error.status === 404) setTask({ kind: "none" });
        else setTask({ kind: "error", error: message(error) });
      },
    );
    return () => {
      current = false;
    };
  }, [promise.id, promise.state, taskVersion, request, targeted]);

  const param = decodeValue(promise.param);
  const args =
    param.kind === "json" && isRecord(param.value) && Array.isArray(param.value.args)
      ? param.value.args
      : undefined;
  const name = functionName(promise);
  return (
    <section class="panel details" aria-label={`details of ${promise.id}`}>
      <header class="panel-head">
        <h2 class="mono" title={promise.id}>
          {promise.id}
        </h2>
        <StateBadge state={promise.state} />
      </header>
      {promise.state === "pending" && isExternal(promise) && (
        <SettleControl
          promise={promise}
          request={request}
          onSettled={onSettled}
          onUnauthorized={onUnauthorized}
        />
      )}
      <Rows
        rows={[
          ["what", name === undefined ? promiseRole(promise) : `${promiseRole(promise)} · ${name}`],
          ["created", formatInstant(promise.createdAt, now)],
          ["settled", promise.settledAt === undefined ? "not yet" : formatInstant(promise.settledAt, now)],
          ["duration", promiseDuration(promise, now)],
          ["timeout", formatInstant(promise.timeoutAt, now)],
          // Each claim of a task (a first run, a retry, a resumption) raises its version.
          ["attempts", task.kind === "task" ? `${task.task.version} claim(s) of its task` : "-"],
          ["task", <TaskLine key="task" view={task} promise={promise} />],
        ]}
      />
      <h3>Params</h3>
      {args !== undefined ? <ValueView value={encodeJson(args)} /> : <ValueView value={promise.param} />}
      <h3>Value</h3>
      {promise.state === "pending" ? <span class="muted">pending</span> : <ValueView value={promise.value} />}
      <h3>Tags</h3>
      <Rows
        rows={Object.entries(promise.tags).map(([key, value]) => [key, <span class="mono">{value}</span>])}
      />
    </section>
  );
}

function TaskLine({ view, promise }: { view: TaskView; promise: PromiseRecord }) {
  switch (view.kind) {
    case "loading":
      return <span class="muted">…</span>;
    case "none":
      return <span class="muted">{withoutTask(promise)}</span>;
    case "error":
      return <span class="error">{view.error}</span>;
    case "task": {
      const { task } = view;
      return (
        <span>
          {task.state} · version {task.version}
          {task.resumes > 0 && ` · ${task.resumes} resume(s) waiting`}
          {task.pid !== undefined && (
            <>
              {" · held by "}
              <span class="mono">{task.pid}</span>
              {task.ttl !== undefined && ` (lease ${Math.round(task.ttl / 1000)}s)`}
            </>
          )}
        </span>
      );
    }
  }
}

interface SettleProps {
  promise: PromiseRecord;
  request: Request;
  onSettled(promise: PromiseRecord): void;
  onUnauthorized(): void;
}

/** Resolve… / Reject… → a form with the value → Confirm (I1). */
function SettleControl({ promise, request, onSettled, onUnauthorized }: SettleProps) {
  const [mode, setMode] = useState<"resolve" | "reject" | undefined>(undefined);
  const [text, setText] = useState("");
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  // A different promise selected: start over.
  useEffect(() => {
    setMode(undefined);
    setText("");
    setError(undefined);
  }, [promise.id]);

  const role = promiseRole(promise);
  if (mode === undefined)
    return (
      <div class="settle">
        <span class="muted">
          {role === "external promise"
            ? "Waiting for someone to settle it."
            : role === "sleep"
              ? "Resolves at its deadline; it can be settled early."
              : "It can be settled from outside, which ends it."}
        </span>
        <button type="button" onClick={() => setMode("resolve")}>
          Resolve…
        </button>
        <button type="button" class="danger" onClick={() => setMode("reject")}>
          Reject…
        </button>
      </div>
    );

  const value = (): ReturnType<typeof encodeJson> | undefined => {
    if (mode === "reject")
      return encodeJson({
        __type: "error",
        name: "Error",
        message: text.trim() || "rejected from the dashboard",
      });
    if (text.trim() === "") return {};
    try {
      return encodeJson(JSON.parse(text) as unknown);
    } catch (parseError) {
      setError(`the value is not JSON: ${message(parseError)}`);
      return undefined;
    }
  };
  const confirm = async (): Promise<void> => {
    setError(undefined);
    const encoded = value();
    if (encoded === undefined) return;
    setBusy(true);
    try {
      const data = await request("promise.settle", {
        id: promise.id,
        state: mode === "resolve" ? "resolved" : "rejected",
        value: encoded,
      });
      setMode(undefined);
      onSettled(data.promise as PromiseRecord);
    } catch (settleError) {
      if (settleError instanceof Unauthorized) onUnauthorized();
      else setError(message(settleError));
    } finally {
      setBusy(false);
    }
  };
  const targeted = promise.tags["resonate:target"] !== undefined;
  return (
    <div class="settle confirm" role="alertdialog" aria-label={`${mode} ${promise.id}`}>
      <p>
        {mode === "resolve" ? "Resolve" : "Reject"} <span class="mono">{promise.id}</span>? Its waiters resume
        at once; this cannot be undone.
        {targeted && " It is a function's own promise: its worker's result will be refused."}
      </p>
      <label>
        {mode === "resolve" ? "Value (JSON; empty for none)" : "Reason"}
        <textarea
          rows={mode === "resolve" ? 3 : 2}
          value={text}
          placeholder={mode === "resolve" ? 'e.g. true or {"approved": true}' : "why it is rejected"}
          onInput={(event) => setText((event.currentTarget as HTMLTextAreaElement).value)}
        />
      </label>
      <ErrorLine error={error} />
      <div class="buttons">
        <button
          type="button"
          class={mode === "reject" ? "danger" : "primary"}
          disabled={busy}
          onClick={() => void confirm()}
        >
          {mode === "resolve" ? "Confirm resolve" : "Confirm reject"}
        </button>
        <button type="button" disabled={busy} onClick={() => setMode(undefined)}>
          Cancel
        </button>
      </div>
    </div>
  );
}
