/**
 * The API's metrics (served at `GET /metrics` on the API port): its HTTP requests by route
 * pattern, method and status, their latency, and the control plane's state read from the store
 * at scrape time (deployments, replicas, promotions, async requests). docs/metrics.md.
 */
import type { RequestHandler } from 'express';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Store } from '../store/store';

/** The `route` label of a request no route matched (unknown paths, refused keys, the dashboard's assets). */
export const UNMATCHED_ROUTE = 'unmatched';

/** Latency buckets of API requests, in seconds (a push uploads and unpacks an archive). */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The API's metrics, in a registry of their own. */
export class ApiMetrics {
  /** Where the metrics are registered (the API process adds its process metrics to it). */
  readonly registry = new Registry();

  /** API requests answered, by route pattern, method and status code. */
  readonly requests = new Counter({
    name: 'gantry_api_requests_total',
    help: `Requests the API answered, by route pattern (e.g. /v1/models/:model/deployments/:ref; "${UNMATCHED_ROUTE}" when no route matched, a missing key included), method and HTTP status code (499: the client left before an answer).`,
    labelNames: ['route', 'method', 'status_code'] as const,
    registers: [this.registry],
  });

  /** Time from a request's arrival to the end of its answer. */
  readonly duration = new Histogram({
    name: 'gantry_api_request_duration_seconds',
    help: 'Time from an API request arriving to its answer ending, by route pattern and method (live streams last as long as their client stays).',
    labelNames: ['route', 'method'] as const,
    buckets: REQUEST_BUCKETS,
    registers: [this.registry],
  });

  constructor(store: Store) {
    const registers = [this.registry];
    new Gauge({
      name: 'gantry_deployments',
      help: 'Live (not deleted) deployments, by model and status.',
      labelNames: ['model_id', 'status'] as const,
      registers,
      async collect() {
        const counts = new Map<string, { model_id: string; status: string; count: number }>();
        for (const d of await store.listLiveDeployments()) {
          const key = `${d.model_id}/${d.status}`;
          const entry = counts.get(key) ?? { model_id: d.model_id, status: d.status, count: 0 };
          entry.count++;
          counts.set(key, entry);
        }
        this.reset();
        for (const { count, ...labels } of counts.values()) this.set(labels, count);
      },
    });
    new Gauge({
      name: 'gantry_deployment_info',
      help: 'Always 1, one series per live deployment: its names, kind and status, to join on model_id and deployment_id.',
      labelNames: ['model_id', 'deployment_id', 'model_name', 'deployment_name', 'kind', 'status'] as const,
      registers,
      async collect() {
        const [models, deployments] = await Promise.all([store.listModels(), store.listLiveDeployments()]);
        const modelNames = new Map(models.map((m) => [m.id, m.name]));
        this.reset();
        for (const d of deployments) {
          this.set({ model_id: d.model_id, deployment_id: d.id, model_name: modelNames.get(d.model_id) ?? '', deployment_name: d.name, kind: d.kind, status: d.status }, 1);
        }
      },
    });
    new Gauge({
      name: 'gantry_deployment_replicas_desired',
      help: 'Replicas each live deployment should have (desired_replicas: set by deploys, promotions, the autoscaler and wake-ups).',
      labelNames: ['model_id', 'deployment_id'] as const,
      registers,
      async collect() {
        const deployments = await store.listLiveDeployments();
        this.reset();
        for (const d of deployments) this.set({ model_id: d.model_id, deployment_id: d.id }, d.desired_replicas);
      },
    });
    new Gauge({
      name: 'gantry_deployment_replicas_ready',
      help: 'Replicas of each live deployment that are READY (serving), as the nodes last reported them.',
      labelNames: ['model_id', 'deployment_id'] as const,
      registers,
      async collect() {
        const [deployments, replicas] = await Promise.all([store.listLiveDeployments(), store.listReplicas()]);
        const ready = new Map<string, number>();
        for (const r of replicas) if (r.state === 'READY') ready.set(r.deployment_id, (ready.get(r.deployment_id) ?? 0) + 1);
        this.reset();
        for (const d of deployments) this.set({ model_id: d.model_id, deployment_id: d.id }, ready.get(d.id) ?? 0);
      },
    });
    new Gauge({
      name: 'gantry_promotions',
      help: 'Promotions ever started, by model, environment and status (RELEASING, RAMPING_UP, PAUSED, RAMPING_DOWN while in flight; SUCCEEDED, FAILED, CANCELED once ended).',
      labelNames: ['model_id', 'environment', 'status'] as const,
      registers,
      async collect() {
        const counts = await store.countPromotionsByStatus();
        this.reset();
        for (const { count, ...labels } of counts) this.set(labels, count);
      },
    });
    const latest = (name: string, help: string, value: (p: Awaited<ReturnType<Store['listLatestPromotions']>>[number]) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['model_id', 'environment'] as const,
        registers,
        async collect() {
          const promotions = await store.listLatestPromotions();
          this.reset();
          for (const p of promotions) this.set({ model_id: p.model_id, environment: p.environment }, value(p));
        },
      });
    };
    latest('gantry_promotion_in_flight', 'Whether the latest promotion of each environment is in flight (1) or ended (0).', (p) => (p.ended_at === null ? 1 : 0));
    latest('gantry_promotion_step', 'The step the latest promotion of each environment is at (its last step once ended; 0 before the first traffic step).', (p) => p.step);
    latest('gantry_promotion_total_steps', 'How many traffic steps the latest promotion of each environment has.', (p) => p.total_steps);
    latest(
      'gantry_promotion_traffic_percent',
      'Percent of the environment’s traffic that the latest promotion sends to its candidate (100 once it succeeded, 0 after a rollback).',
      (p) => p.percent_traffic_to_new_version,
    );
    new Gauge({
      name: 'gantry_promotion_info',
      help: 'Always 1, one series per environment that has had a promotion: its latest promotion’s id, status, candidate and previous deployment.',
      labelNames: ['model_id', 'environment', 'promotion_id', 'status', 'candidate_deployment_id', 'previous_deployment_id'] as const,
      registers,
      async collect() {
        const promotions = await store.listLatestPromotions();
        this.reset();
        for (const p of promotions) {
          this.set(
            {
              model_id: p.model_id,
              environment: p.environment,
              promotion_id: p.id,
              status: p.status,
              candidate_deployment_id: p.candidate_deployment_id,
              previous_deployment_id: p.previous_deployment_id ?? '',
            },
            1,
          );
        }
      },
    });
    new Gauge({
      name: 'gantry_async_requests',
      help: 'Async inference requests in the store, by model, deployment and status (QUEUED and IN_PROGRESS are the queue; ended requests are counted too).',
      labelNames: ['model_id', 'deployment_id', 'status'] as const,
      registers,
      async collect() {
        const counts = await store.countAsyncRequestsByStatus();
        this.reset();
        for (const { count, ...labels } of counts) this.set(labels, count);
      },
    });
  }

  /** Express middleware that counts every request and observes its latency when its answer ends. */
  countRequests(): RequestHandler {
    return (req, res, next) => {
      const stop = this.duration.startTimer();
      res.once('close', () => {
        // Read at the end: the route that answered is known only once routing is done.
        const route = req.route ? `${req.baseUrl}${String(req.route.path)}` : UNMATCHED_ROUTE;
        const labels = { route, method: req.method };
        this.requests.inc({ ...labels, status_code: res.headersSent ? String(res.statusCode) : '499' });
        stop(labels);
      });
      next();
    };
  }
}
