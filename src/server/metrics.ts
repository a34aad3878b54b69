/**
 * The server's Prometheus metrics (`GET /metrics`). Each shell owns one
 * `Registry` (never prom-client's global one), so several servers in one process
 * keep separate figures. Counters and histograms are fed by small hooks on the
 * hot paths (HTTP edge, group commit, sweeps); gauges are read when scraped.
 *
 * Promises and tasks by state come from the store's `countByState` (an indexed
 * GROUP BY), read once per scrape: never counted on writes, so the hot path pays
 * nothing for them. They count stored states (see `StateCounts`).
 *
 * Invariants:
 *  M1  The `kind` label takes only the protocol's request kinds or `unknown`, so
 *      a client cannot grow the label set with made-up kinds.
 *  M2  A hot-path hook allocates nothing after its label pair was first seen:
 *      labelled children are cached, and times are `performance.now()` numbers.
 *  M3  A scrape only reads: the outbox depth is one bounded read, capped at
 *      `OUTBOX_DEPTH_CAP` (a deeper outbox reports the cap).
 *  M4  Every protocol state has a by-state series on every scrape (0 when none),
 *      so a state that empties drops to 0 instead of keeping its last value.
 */
import { performance } from "node:perf_hooks";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { PROMISE_STATES, TASK_STATES } from "../protocol/records.js";
import { REQUEST_KINDS } from "../protocol/requests.js";
import type { StateCounts } from "../store/store.js";

export const OUTBOX_DEPTH_CAP = 10_000;

const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const KNOWN_KINDS: ReadonlySet<string> = new Set(REQUEST_KINDS);

export interface MetricsSources {
  /** Open worker SSE connections. */
  connections(): number;
  /** Messages waiting in the outbox, at most `cap`. */
  outboxDepth(cap: number): Promise<number>;
  /** Promises and tasks by stored state; absent when the store cannot count. */
  countByState?: () => Promise<StateCounts>;
}

type CounterChild = ReturnType<Counter<"kind" | "status">["labels"]>;
type HistogramChild = ReturnType<Histogram<"kind">["labels"]>;

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"kind" | "status">;
  private readonly requestDuration: Histogram<"kind">;
  private readonly timersFired: Counter;
  private readonly commitDuration: Histogram;
  private readonly batchSize: Histogram;
  /** M2: children by kind, then by status. */
  private readonly requestChildren = new Map<string, Map<number, CounterChild>>();
  private readonly durationChildren = new Map<string, HistogramChild>();

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: "pledge_requests_total",
      help: "Protocol requests answered on POST /, by kind and status.",
      labelNames: ["kind", "status"],
      registers,
    });
    this.requestDuration = new Histogram({
      name: "pledge_request_duration_seconds",
      help: "Time from receiving a protocol request to answering it, by kind.",
      labelNames: ["kind"],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.timersFired = new Counter({
      name: "pledge_timers_fired_total",
      help: "Promises, tasks and schedules changed by timers firing (timeouts, leases, retries, schedules).",
      registers,
    });
    this.commitDuration = new Histogram({
      name: "pledge_store_commit_seconds",
      help: "Duration of one group-commit store transaction.",
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.batchSize = new Histogram({
      name: "pledge_batch_size",
      help: "Items committed together in one group-commit batch.",
      buckets: BATCH_SIZE_BUCKETS,
      registers,
    });
    new Gauge({
      name: "pledge_sse_connections",
      help: "Open worker SSE connections (GET /poll).",
      registers,
      collect() {
        this.set(sources.connections());
      },
    });
    new Gauge({
      name: "pledge_outbox_messages",
      help: `Messages waiting in the outbox (capped at ${OUTBOX_DEPTH_CAP}).`,
      registers,
      async collect() {
        this.set(await sources.outboxDepth(OUTBOX_DEPTH_CAP));
      },
    });
    const countByState = sources.countByState;
    if (countByState !== undefined) {
      // One store read serves both gauges: the first collect of a scrape starts it.
      let pending: Promise<StateCounts> | undefined;
      const counts = (): Promise<StateCounts> => {
        pending ??= countByState().finally(() => {
          pending = undefined;
        });
        return pending;
      };
      new Gauge({
        name: "pledge_promises",
        help: "Stored promises by state.",
        labelNames: ["state"],
        registers,
        async collect() {
          const byState = (await counts()).promises;
          for (const state of PROMISE_STATES) this.labels(state).set(byState[state] ?? 0); // M4
        },
      });
      new Gauge({
        name: "pledge_tasks",
        help: "Stored tasks by state.",
        labelNames: ["state"],
        registers,
        async collect() {
          const byState = (await counts()).tasks;
          for (const state of TASK_STATES) this.labels(state).set(byState[state] ?? 0); // M4
        },
      });
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text; rejects when a gauge's source (the store) fails. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  /** One answered request; `startedMs` is a `performance.now()` reading taken on arrival. */
  requestAnswered(kind: string, status: number, startedMs: number): void {
    const label = KNOWN_KINDS.has(kind) ? kind : "unknown";
    let byStatus = this.requestChildren.get(label);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.requestChildren.set(label, byStatus);
    }
    let counter = byStatus.get(status);
    if (counter === undefined) {
      counter = this.requests.labels(label, String(status));
      byStatus.set(status, counter);
    }
    counter.inc();
    let histogram = this.durationChildren.get(label);
    if (histogram === undefined) {
      histogram = this.requestDuration.labels(label);
      this.durationChildren.set(label, histogram);
    }
    histogram.observe((performance.now() - startedMs) / 1000);
  }

  batchCommitted(items: number, commitSeconds: number): void {
    this.batchSize.observe(items);
    this.commitDuration.observe(commitSeconds);
  }

  timersChanged(records: number): void {
    if (records > 0) this.timersFired.inc(records);
  }
}
