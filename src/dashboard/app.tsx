/**
 * The dashboard page: a token gate, then search, the selected execution's call
 * graph, the selected node's details, and the schedules. It holds the page's
 * state and keeps it current from `/events`: a promise event updates the rows
 * and the tree in place (a node it does not know yet is read with
 * `promise.get`), a task event re-reads the selected node's task, a schedule
 * event re-reads the schedules. After the stream reconnects (events may have
 * been missed) everything shown is read again.
 *
 * Invariants:
 *  A1  With a token required and none that works, only the token form shows:
 *      every 401 (I1 of `api.ts`) forgets the token and returns to it.
 *  A2  Live updates never navigate: the page's location is only ever changed by
 *      the person using it.
 */
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { ServerEvent } from "../protocol/events.js";
import type { PromiseRecord } from "../protocol/records.js";
import {
  followEvents,
  type LiveStatus,
  type Request,
  RequestError,
  requester,
  searchAll,
  Unauthorized,
} from "./api.js";
import { Details } from "./details.js";
import { ErrorLine, message } from "./parts.js";
import { parseQuery } from "./query.js";
import { SchedulesView } from "./schedules-view.js";
import { SearchPanel } from "./search-panel.js";
import { type CallTree, linkTree, mayBelong, originOf, withPromise } from "./tree.js";
import { TreeView } from "./tree-view.js";

const TOKEN_KEY = "pledge.token";
const PAGE = 100;

type Gate = "checking" | "open" | "locked";

export function App() {
  const [token, setToken] = useState<string | undefined>(
    () => sessionStorage.getItem(TOKEN_KEY) ?? undefined,
  );
  const [gate, setGate] = useState<Gate>("checking");
  const [gateError, setGateError] = useState<string | undefined>(undefined);
  const tokenRef = useRef(token);
  tokenRef.current = token;
  const request = useMemo(() => requester(() => tokenRef.current), []);

  // Probe: does the server answer with the token we have (or without one)?
  useEffect(() => {
    let current = true;
    setGate("checking");
    request("promise.search", { limit: 1 }).then(
      () => current && setGate("open"),
      (error: unknown) => {
        if (!current) return;
        if (error instanceof Unauthorized) {
          if (token !== undefined) setGateError("That token was refused.");
          sessionStorage.removeItem(TOKEN_KEY);
          setGate("locked");
        } else {
          setGateError(message(error));
          setGate("open");
        }
      },
    );
    return () => {
      current = false;
    };
  }, [request, token]);

  const lock = useCallback(() => {
    sessionStorage.removeItem(TOKEN_KEY);
    setGateError("The server asks for a token.");
    setToken(undefined);
    setGate("locked");
  }, []);

  if (gate === "checking") return <Shell status={undefined} />;
  if (gate === "locked")
    return (
      <Shell status={undefined}>
        <TokenForm
          error={gateError}
          onToken={(entered) => {
            sessionStorage.setItem(TOKEN_KEY, entered);
            setGateError(undefined);
            setToken(entered);
          }}
        />
      </Shell>
    );
  return (
    <Dashboard
      request={request}
      token={token}
      onUnauthorized={lock}
      onForget={token === undefined ? undefined : lock}
    />
  );
}

function Shell(props: {
  status: LiveStatus | undefined;
  onForget?: (() => void) | undefined;
  children?: ComponentChildren;
}) {
  return (
    <div class="page">
      <header class="top">
        <span class="brand">Pledge</span>
        <span class="host muted">{location.host}</span>
        <span class="spacer" />
        {props.status !== undefined && (
          <span class={`live live-${props.status}`} role="status" aria-live="polite">
            {props.status === "live"
              ? "live"
              : props.status === "connecting"
                ? "connecting…"
                : "reconnecting…"}
          </span>
        )}
        {props.onForget !== undefined && (
          <button type="button" class="link light" onClick={props.onForget}>
            Forget token
          </button>
        )}
      </header>
      {props.children}
    </div>
  );
}

function TokenForm({ error, onToken }: { error: string | undefined; onToken(token: string): void }) {
  const [text, setText] = useState("");
  return (
    <form
      class="panel token"
      aria-label="token"
      onSubmit={(event) => {
        event.preventDefault();
        if (text.trim() !== "") onToken(text.trim());
      }}
    >
      <h2>This server asks for a token</h2>
      <p class="muted">
        The one it was started with (--auth-token, PLEDGE_AUTH_TOKEN). It stays in this tab only.
      </p>
      <ErrorLine error={error} />
      <input
        type="password"
        name="token"
        aria-label="Token"
        autoComplete="current-password"
        value={text}
        onInput={(event) => setText((event.currentTarget as HTMLInputElement).value)}
      />
      <button type="submit" class="primary">
        Open the dashboard
      </button>
    </form>
  );
}

interface DashboardProps {
  request: Request;
  token: string | undefined;
  onUnauthorized(): void;
  onForget: (() => void) | undefined;
}

function Dashboard({ request, token, onUnauthorized, onForget }: DashboardProps) {
  const [tab, setTab] = useState<"promises" | "schedules">("promises");
  const [status, setStatus] = useState<LiveStatus>("connecting");
  const [now, setNow] = useState(() => Date.now());
  const [query, setQuery] = useState<Record<string, unknown>>({});
  const [results, setResults] = useState<PromiseRecord[] | undefined>(undefined);
  const [cursor, setCursor] = useState<string | undefined>(undefined);
  const [searching, setSearching] = useState(false);
  const [searchError, setSearchError] = useState<string | undefined>(undefined);
  const [tree, setTree] = useState<CallTree | undefined>(undefined);
  const [treeError, setTreeError] = useState<string | undefined>(undefined);
  const [selectedId, setSelectedId] = useState<string | undefined>(undefined);
  const [taskVersion, setTaskVersion] = useState(0);
  const [schedulesVersion, setSchedulesVersion] = useState(0);
  // The latest state for the event handler, which lives as long as the stream.
  const latest = useRef({ tree, selectedId, query });
  latest.current = { tree, selectedId, query };

  const failed = useCallback(
    (error: unknown, show: (text: string) => void) => {
      if (error instanceof Unauthorized) onUnauthorized();
      else show(message(error));
    },
    [onUnauthorized],
  );

  const search = useCallback(
    async (data: Record<string, unknown>, after?: string) => {
      setSearching(true);
      setSearchError(undefined);
      try {
        const page = await request("promise.search", {
          ...data,
          limit: PAGE,
          ...(after !== undefined && { cursor: after }),
        });
        const records = (page.promises as PromiseRecord[] | undefined) ?? [];
        setResults((previous) => (after === undefined ? records : [...(previous ?? []), ...records]));
        setCursor(typeof page.cursor === "string" && page.cursor !== "" ? page.cursor : undefined);
        setQuery(data);
      } catch (error) {
        failed(error, setSearchError);
      } finally {
        setSearching(false);
      }
    },
    [request, failed],
  );

  /** Reads the whole execution `promise` belongs to and selects `promise` in it. */
  const openTree = useCallback(
    async (promise: PromiseRecord) => {
      setSelectedId(promise.id);
      setTreeError(undefined);
      try {
        setTree(await loadTree(request, promise));
      } catch (error) {
        failed(error, setTreeError);
      }
    },
    [request, failed],
  );

  const refreshPromise = useCallback(
    async (id: string) => {
      try {
        const data = await request("promise.get", { id });
        const fresh = data.promise as PromiseRecord;
        setTree((current) => (current === undefined ? current : withPromise(current, fresh)));
        setResults((current) => current?.map((row) => (row.id === fresh.id ? fresh : row)));
      } catch (error) {
        if (error instanceof Unauthorized) onUnauthorized();
      }
    },
    [request, onUnauthorized],
  );

  const onEvent = useCallback(
    (event: ServerEvent) => {
      const { tree: shown, selectedId: selected } = latest.current;
      if (event.kind === "server.reset") {
        setTree(undefined);
        setSelectedId(undefined);
        void search(latest.current.query);
        return;
      }
      if (event.kind === "promise.created" || event.kind === "promise.settled") {
        const summary = event.promise;
        // Rows update from the summary; the tree reads the record (it shows params and values).
        setResults((current) =>
          current?.map((row) =>
            row.id === summary.id
              ? {
                  ...row,
                  state: summary.state,
                  ...(summary.settledAt !== undefined && { settledAt: summary.settledAt }),
                }
              : row,
          ),
        );
        if (shown !== undefined && mayBelong(shown, summary.id, summary.tags))
          void refreshPromise(summary.id);
        return;
      }
      if (event.kind.startsWith("task.")) {
        if ("task" in event && event.task.id === selected) setTaskVersion((version) => version + 1);
        return;
      }
      setSchedulesVersion((version) => version + 1);
    },
    [search, refreshPromise],
  );

  // The live stream, for as long as the page is open with this token.
  useEffect(
    () =>
      followEvents(token, {
        onEvent,
        onStatus: setStatus,
        // An EventSource does not say why it was refused: a request does (a 401 locks the page, A1).
        onRefused: () => {
          request("promise.search", { limit: 1 }).catch((error: unknown) => {
            if (error instanceof Unauthorized) onUnauthorized();
          });
        },
        onOpen: (reconnected) => {
          if (!reconnected) return;
          const { tree: shown, selectedId: selected, query: last } = latest.current;
          void search(last);
          const node = shown?.nodes.get(selected ?? shown.rootId);
          if (node !== undefined) void openTree(node);
          setSchedulesVersion((version) => version + 1);
        },
      }),
    [token, onEvent, search, openTree, request, onUnauthorized],
  );

  // Durations of pending promises tick.
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);

  // The first view: the latest promises.
  useEffect(() => {
    void search({});
  }, []);

  const selected = selectedId === undefined ? undefined : tree?.nodes.get(selectedId);
  // The ticker re-renders each second; a render for any other reason must not show older times.
  const current = Math.max(now, Date.now());
  return (
    <Shell status={status} onForget={onForget}>
      <nav class="tabs" aria-label="views">
        <button type="button" aria-pressed={tab === "promises"} onClick={() => setTab("promises")}>
          Promises
        </button>
        <button type="button" aria-pressed={tab === "schedules"} onClick={() => setTab("schedules")}>
          Schedules
        </button>
      </nav>
      {tab === "schedules" ? (
        <main class="single">
          <SchedulesView
            request={request}
            now={current}
            version={schedulesVersion}
            onUnauthorized={onUnauthorized}
          />
        </main>
      ) : (
        <main class="columns">
          <SearchPanel
            results={results}
            hasMore={cursor !== undefined}
            busy={searching}
            error={searchError}
            selectedId={selectedId}
            now={current}
            onSearch={(text) => {
              const parsed = parseQuery(text);
              if (!parsed.ok) setSearchError(parsed.reason);
              else void search({ ...parsed.query });
            }}
            onMore={() => void search(query, cursor)}
            onOpen={(promise) => void openTree(promise)}
          />
          <section class="panel graph" aria-label="call graph">
            <header class="panel-head">
              <h2>Call graph</h2>
              {tree !== undefined && <span class="muted">{tree.nodes.size} promise(s)</span>}
            </header>
            <ErrorLine error={treeError} />
            {tree === undefined ? (
              <p class="muted">Pick a promise on the left to see its execution.</p>
            ) : (
              <TreeView tree={tree} selectedId={selectedId} now={current} onSelect={setSelectedId} />
            )}
          </section>
          {selected !== undefined ? (
            <Details
              promise={selected}
              request={request}
              now={current}
              taskVersion={taskVersion}
              onSettled={(settled) => {
                setTree((current) => (current === undefined ? current : withPromise(current, settled)));
                setResults((current) => current?.map((row) => (row.id === settled.id ? settled : row)));
              }}
              onUnauthorized={onUnauthorized}
            />
          ) : (
            <section class="panel details muted" aria-label="details">
              Select a node to see its details.
            </section>
          )}
        </main>
      )}
    </Shell>
  );
}

/**
 * The execution around `promise`: its origin (the `resonate:origin` tag) as the
 * root, every promise of that origin and every id under the root, linked by
 * `tree.ts`. When the origin cannot be read, or does not reach `promise`, the
 * tree starts at `promise` itself.
 */
async function loadTree(request: Request, promise: PromiseRecord): Promise<CallTree> {
  const originId = originOf(promise);
  let root = promise;
  if (originId !== promise.id) {
    try {
      root = (await request("promise.get", { id: originId })).promise as PromiseRecord;
    } catch (error) {
      if (!(error instanceof RequestError && error.status === 404)) throw error;
    }
  }
  const build = async (top: PromiseRecord): Promise<CallTree> => {
    const [byOrigin, byPrefix] = await Promise.all([
      searchAll<PromiseRecord>(request, "promise.search", "promises", {
        tags: { "resonate:origin": originOf(top) },
      }),
      searchAll<PromiseRecord>(request, "promise.search", "promises", { id: `${top.id}.*` }),
    ]);
    return linkTree(top, [...byOrigin, ...byPrefix]);
  };
  const tree = await build(root);
  return tree.nodes.has(promise.id) ? tree : build(promise);
}
