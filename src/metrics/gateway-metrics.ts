/**
 * The inference gateway's metrics (served by the node at `GET /metrics` on the gateway port):
 * requests by model, deployment, environment and status, their latency, requests in flight,
 * waits for a ready replica, wake-ups, upstream errors and retries. docs/metrics.md.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The labels that say which deployment a request went to (empty when it was never resolved to one). */
export interface DeploymentLabels {
  model_id: string;
  deployment_id: string;
}

/** The labels of a request: its deployment and the environment it was addressed to (empty when addressed to a deployment). */
export interface RequestLabels extends DeploymentLabels {
  environment: string;
}

/** How a wait for a ready replica ended. */
export type ReplicaWaitOutcome = 'ready' | 'timeout' | 'client_gone' | 'gone' | 'shutdown';

/** What woke a deployment: a request waiting for it, or `POST …/wake`. */
export type WakeTrigger = 'request' | 'wake_endpoint';

/** How a try on a replica failed: refused or dropped before answering, no answer in time, or broken after it started. */
export type UpstreamErrorKind = 'unavailable' | 'timeout' | 'failed';

/** Latency buckets of inference requests, in seconds (1 ms to 2 min). */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Buckets of waits for a replica, in seconds (a wake-up takes seconds to a minute). */
const WAIT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];

/**
 * One request label set's tallies: answers by status, and its latency histogram's buckets, sum
 * and count. Kept as plain numbers and written into the registry's metrics when it is read:
 * prom-client hashes a child's label set on every `inc` and `observe`, which cost more than the
 * rest of a fast-lane request's books (measured: docs/architecture.md §5).
 */
export class RequestSeries {
  /** Answers by status code. */
  readonly answered = new Map<string, number>();
  /** Observations per latency bucket (each counted in the first bucket it fits, not cumulative). */
  readonly buckets = new Float64Array(REQUEST_BUCKETS.length);
  sum = 0;
  count = 0;

  constructor(readonly labels: Readonly<RequestLabels>) {}

  /** Counts an answer with `status` and observes its latency. */
  observe(status: string, seconds: number): void {
    this.answered.set(status, (this.answered.get(status) ?? 0) + 1);
    let bucket = 0;
    while (bucket < REQUEST_BUCKETS.length && seconds > REQUEST_BUCKETS[bucket]!) bucket++;
    if (bucket < REQUEST_BUCKETS.length) this.buckets[bucket]!++;
    this.sum += seconds;
    this.count++;
  }
}

/** A sample as prom-client's registry writes it. */
interface Sample {
  metricName: string;
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  /** prom-client's samples carry one (none here: null on buckets, undefined on the sum and count, as there). */
  exemplar: null | undefined;
}

/**
 * `gantry_gateway_request_duration_seconds`, written from the request series' tallies: the
 * same samples, in the same order, as a prom-client Histogram with these buckets writes.
 */
class RequestDurationHistogram {
  readonly name = 'gantry_gateway_request_duration_seconds';
  readonly help = 'Time from an inference request arriving to its answer ending (waits for a replica included), by model, deployment and environment.';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames = ['model_id', 'deployment_id', 'environment'] as const;

  constructor(private readonly series: ReadonlyMap<string, RequestSeries>) {}

  /**
   * The samples for the text format (each series' labels shared by its lines, `le` first). A
   * series shows from its first observation, as a prom-client child made when first observed:
   * books made for a request not answered yet show nothing.
   */
  getForPromString(): { name: string; help: string; type: string; aggregator: string; values: Sample[] } {
    const values: Sample[] = [];
    for (const series of this.series.values()) {
      if (series.count === 0) continue;
      const sharedLabels = { ...series.labels };
      let cumulative = 0;
      REQUEST_BUCKETS.forEach((bound, i) => {
        cumulative += series.buckets[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le: bound }, sharedLabels, value: cumulative, exemplar: null });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf' }, sharedLabels, value: series.count, exemplar: null });
      values.push({ metricName: `${this.name}_sum`, labels: {}, sharedLabels, value: series.sum, exemplar: undefined });
      values.push({ metricName: `${this.name}_count`, labels: {}, sharedLabels, value: series.count, exemplar: undefined });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** The samples as JSON (labels merged). */
  get(): ReturnType<RequestDurationHistogram['getForPromString']> {
    const metric = this.getForPromString();
    metric.values = metric.values.map(({ sharedLabels, ...sample }) => ({ ...sample, labels: { ...sample.labels, ...sharedLabels } }));
    return metric;
  }

  /** Forgets every observation (the registry's `resetMetrics`). */
  reset(): void {
    for (const series of this.series.values()) {
      series.buckets.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }
}

/** The gateway's metrics, in a registry of their own. */
export class GatewayMetrics {
  /** The tallies of every request label set seen (by model, deployment and environment). */
  private readonly series = new Map<string, RequestSeries>();
  /** Requests in flight per deployment label set, written into the gauge when it is read. */
  private readonly inFlightCounts = new Map<string, { labels: DeploymentLabels; value: number }>();

  /** Where the metrics are registered (the node adds its process metrics to it). */
  readonly registry = new Registry();

  /** Inference requests answered, by the status code sent (499: the client left before any answer). */
  readonly requests = new Counter({
    name: 'gantry_gateway_requests_total',
    help: 'Inference requests the gateway answered, by model, deployment, environment and HTTP status code (499: the client left before an answer); model and deployment are empty for requests not served by one deployment (401, an unknown route, POST …/wake, the async routes passed on to the API).',
    labelNames: ['model_id', 'deployment_id', 'environment', 'status_code'] as const,
    registers: [this.registry],
    collect: () => this.writeAnswered(),
  });

  /** Time from a request's arrival to the end of its answer. */
  readonly duration = new RequestDurationHistogram(this.series);

  /** Requests routed to a deployment and not answered yet (those waiting for a replica included). */
  readonly inFlight = new Gauge({
    name: 'gantry_gateway_requests_in_flight',
    help: 'Inference requests routed to a deployment and not yet answered, those waiting for a replica included.',
    labelNames: ['model_id', 'deployment_id'] as const,
    registers: [this.registry],
    collect: () => this.writeInFlight(),
  });

  /** Requests waiting now for a ready replica (the wake-up queue). */
  readonly waiting = new Gauge({
    name: 'gantry_gateway_replica_waiting_requests',
    help: 'Inference requests waiting now for a ready replica of their deployment (asleep, waking up or restarting).',
    labelNames: ['model_id', 'deployment_id'] as const,
    registers: [this.registry],
  });

  /** How long requests that found no ready replica waited, and how the wait ended. */
  readonly replicaWait = new Histogram({
    name: 'gantry_gateway_replica_wait_seconds',
    help: 'How long a request that found no ready replica waited for one, by how the wait ended (ready, timeout, client_gone, gone: the deployment was deactivated or deleted, shutdown: the gateway closed).',
    labelNames: ['model_id', 'deployment_id', 'outcome'] as const,
    buckets: WAIT_BUCKETS,
    registers: [this.registry],
  });

  /** Sleeping deployments this gateway woke. */
  readonly wakeups = new Counter({
    name: 'gantry_gateway_wakeups_total',
    help: 'Sleeping deployments the gateway woke, by what woke them (request: a request waiting; wake_endpoint: POST …/wake).',
    labelNames: ['model_id', 'deployment_id', 'trigger'] as const,
    registers: [this.registry],
  });

  /** Tries on a replica that failed. */
  readonly upstreamErrors = new Counter({
    name: 'gantry_gateway_upstream_errors_total',
    help: 'Tries on a replica that failed, by kind (unavailable: refused or dropped before answering, tried on another replica; timeout: no answer within predict_timeout_seconds, 504; failed: broke after answering started, 502).',
    labelNames: ['model_id', 'deployment_id', 'kind'] as const,
    registers: [this.registry],
  });

  /** Requests tried again on another replica after one refused them. */
  readonly upstreamRetries = new Counter({
    name: 'gantry_gateway_upstream_retries_total',
    help: 'Tries of a request on another replica after one refused or dropped it before answering.',
    labelNames: ['model_id', 'deployment_id'] as const,
    registers: [this.registry],
  });

  /** Requests served on the fast lane, written into `fastLane` when it is read. */
  private fastLaneServed = 0;

  /** Requests served on the fast lane. */
  readonly fastLane = new Counter({
    name: 'gantry_gateway_fast_lane_requests_total',
    help: "Inference requests the gateway served on its fast lane (read from and answered on the raw connection: predictions with a valid key, a small body and a ready replica); the others, and every error the gateway answers itself but 502, 503 and 504, go through Node's HTTP server.",
    registers: [this.registry],
    collect: () => {
      this.fastLane.reset();
      this.fastLane.inc(this.fastLaneServed);
    },
  });

  constructor() {
    this.registry.registerMetric(this.duration as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The tallies of a request label set (made on first use; keep it to count many requests). */
  seriesOf(labels: RequestLabels): RequestSeries {
    const key = `${labels.model_id}\u0000${labels.deployment_id}\u0000${labels.environment}`;
    let series = this.series.get(key);
    if (!series) {
      series = new RequestSeries({ ...labels });
      this.series.set(key, series);
    }
    return series;
  }

  /** Counts a request's answer with `status` and observes its latency, under its labels. */
  observeRequest(labels: RequestLabels, status: string, seconds: number): void {
    this.seriesOf(labels).observe(status, seconds);
  }

  /** Counts a request served on the fast lane. */
  countFastLane(): void {
    this.fastLaneServed++;
  }

  /** The in-flight count of a deployment label set (made on first use; keep it to move it often). */
  inFlightOf(target: DeploymentLabels): { value: number } {
    const key = `${target.model_id}\u0000${target.deployment_id}`;
    let count = this.inFlightCounts.get(key);
    if (!count) {
      count = { labels: { model_id: target.model_id, deployment_id: target.deployment_id }, value: 0 };
      this.inFlightCounts.set(key, count);
    }
    return count;
  }

  /** The answer counter from the tallies (its `collect`). */
  private writeAnswered(): void {
    this.requests.reset();
    for (const series of this.series.values()) {
      for (const [status, count] of series.answered) this.requests.inc({ ...series.labels, status_code: status }, count);
    }
  }

  /** The in-flight gauge from the counts (its `collect`). */
  private writeInFlight(): void {
    for (const { labels, value } of this.inFlightCounts.values()) this.inFlight.set(labels, value);
  }
}
