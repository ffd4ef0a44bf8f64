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

/** The metric children of one request label set: the latency histogram's and one counter child per status. */
class RequestSeries {
  private readonly answered = new Map<string, ReturnType<GatewayMetrics['requests']['labels']>>();

  constructor(
    private readonly metrics: GatewayMetrics,
    private readonly labels: RequestLabels,
    private readonly duration: ReturnType<GatewayMetrics['duration']['labels']>,
  ) {}

  /** Counts an answer with `status` and observes its latency. */
  observe(status: string, seconds: number): void {
    let counter = this.answered.get(status);
    if (!counter) {
      counter = this.metrics.requests.labels({ ...this.labels, status_code: status });
      this.answered.set(status, counter);
    }
    counter.inc();
    this.duration.observe(seconds);
  }
}

/** The gateway's metrics, in a registry of their own. */
export class GatewayMetrics {
  /** Children per label set, made once: prom-client hashes a label object on every call otherwise. */
  private readonly series = new Map<string, RequestSeries>();
  private readonly inFlightChildren = new Map<string, ReturnType<GatewayMetrics['inFlight']['labels']>>();

  /** Where the metrics are registered (the node adds its process metrics to it). */
  readonly registry = new Registry();

  /** Inference requests answered, by the status code sent (499: the client left before any answer). */
  readonly requests = new Counter({
    name: 'gantry_gateway_requests_total',
    help: 'Inference requests the gateway answered, by model, deployment, environment and HTTP status code (499: the client left before an answer); model and deployment are empty for requests not served by one deployment (401, an unknown route, POST …/wake, the async routes passed on to the API).',
    labelNames: ['model_id', 'deployment_id', 'environment', 'status_code'] as const,
    registers: [this.registry],
  });

  /** Time from a request's arrival to the end of its answer. */
  readonly duration = new Histogram({
    name: 'gantry_gateway_request_duration_seconds',
    help: 'Time from an inference request arriving to its answer ending (waits for a replica included), by model, deployment and environment.',
    labelNames: ['model_id', 'deployment_id', 'environment'] as const,
    buckets: REQUEST_BUCKETS,
    registers: [this.registry],
  });

  /** Requests routed to a deployment and not answered yet (those waiting for a replica included). */
  readonly inFlight = new Gauge({
    name: 'gantry_gateway_requests_in_flight',
    help: 'Inference requests routed to a deployment and not yet answered, those waiting for a replica included.',
    labelNames: ['model_id', 'deployment_id'] as const,
    registers: [this.registry],
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

  /** Requests served on the fast lane. */
  readonly fastLane = new Counter({
    name: 'gantry_gateway_fast_lane_requests_total',
    help: "Inference requests the gateway served on its fast lane (read from and answered on the raw connection: predictions with a valid key, a small body and a ready replica); the others, and every error the gateway answers itself but 502, 503 and 504, go through Node's HTTP server.",
    registers: [this.registry],
  });

  /** Counts a request's answer with `status` and observes its latency, under its labels. */
  observeRequest(labels: RequestLabels, status: string, seconds: number): void {
    const key = `${labels.model_id}\u0000${labels.deployment_id}\u0000${labels.environment}`;
    let series = this.series.get(key);
    if (!series) {
      series = new RequestSeries(this, { ...labels }, this.duration.labels({ ...labels }));
      this.series.set(key, series);
    }
    series.observe(status, seconds);
  }

  /** Moves the deployment's in-flight gauge by `delta`. */
  moveInFlight(target: DeploymentLabels, delta: number): void {
    const key = `${target.model_id}\u0000${target.deployment_id}`;
    let child = this.inFlightChildren.get(key);
    if (!child) {
      child = this.inFlight.labels({ model_id: target.model_id, deployment_id: target.deployment_id });
      this.inFlightChildren.set(key, child);
    }
    child.inc(delta);
  }
}
