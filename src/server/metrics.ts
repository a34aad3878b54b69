/**
 * The server's Prometheus metrics (`GET /metrics`). Each shell owns one
 * `Registry` (never prom-client's global one), so several servers in one process
 * keep separate figures. Counters and histograms are fed by small hooks on the
 * hot paths (HTTP edge, group commit, sweeps); gauges are read when scraped.
 *
 * Not here: promises and tasks by state. The store has no cheap count, and
 * paging every record through a scrape would grow with the store; they wait for
 * a count method on the stores.
 *
 * Invariants:
 *  M1  The `kind` label takes only the protocol's request kinds or `unknown`, so
 *      a client cannot grow the label set with made-up kinds.
 *  M2  A hot-path hook allocates nothing after its label pair was first seen:
 *      labelled children are cached, and times are `performance.now()` numbers.
 *  M3  A scrape only reads: the outbox depth is one bounded read, capped at
 *      `OUTBOX_DEPTH_CAP` (a deeper outbox reports the cap).
 */
import { performance } from "node:perf_hooks";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { REQUEST_KINDS } from "../protocol/requests.js";

export const OUTBOX_DEPTH_CAP = 10_000;

const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const KNOWN_KINDS: ReadonlySet<string> = new Set(REQUEST_KINDS);

export interface MetricsSources {
  /** Open worker SSE connections. */
  connections(): number;
  /** Messages waiting in the outbox, at most `cap`. */
  outboxDepth(cap: number): Promise<number>;
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
