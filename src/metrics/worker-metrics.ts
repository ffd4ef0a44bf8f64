/**
 * The worker's metrics (served at `GET /metrics` on GANTRY_WORKER_METRICS_PORT): activity
 * executions by type and outcome and their durations (an activity interceptor), and workflow
 * tasks that failed and workflow executions that closed, taken from the Temporal SDK's own
 * metrics through a `MetricsBuffer`. docs/metrics.md.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CancelledFailure, type MetricTags } from '@temporalio/common';
import type { ActivityInterceptorsFactory, MetricsBuffer } from '@temporalio/worker';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { type KeyCheck, METRICS_PATH, sendJsonError, serveMetrics } from './exposition';
import { processLogger } from '../logging/logger';
import { errorBody } from '../shared/error-body';

/** How an activity execution ended: returned, threw (it may be retried), or was cancelled. */
export type ActivityOutcome = 'completed' | 'failed' | 'cancelled';

/** Buckets of activity durations, in seconds (a store write takes ms; a build or a wait for replicas minutes). */
const ACTIVITY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900];

/** The Temporal SDK metrics the worker turns into its own, by their name without the `temporal_` prefix. */
const WORKFLOW_OUTCOMES: Record<string, string> = {
  workflow_completed: 'completed',
  workflow_failed: 'failed',
  workflow_canceled: 'canceled',
  workflow_continue_as_new: 'continued_as_new',
};

function tag(tags: MetricTags, name: string): string {
  const value = tags[name];
  return value === undefined ? '' : String(value);
}

/** The worker's metrics, in a registry of their own. */
export class WorkerMetrics {
  /** Where the metrics are registered (the worker adds its process metrics to it). */
  readonly registry = new Registry();

  /** Activity executions (each attempt) by activity type and outcome. */
  readonly activities = new Counter({
    name: 'gantry_worker_activity_executions_total',
    help: 'Activity executions (every attempt) the worker finished, by activity type and outcome (completed, failed: threw and may be retried, cancelled).',
    labelNames: ['activity_type', 'outcome'] as const,
    registers: [this.registry],
  });

  /** How long activity executions took. */
  readonly activityDuration = new Histogram({
    name: 'gantry_worker_activity_duration_seconds',
    help: 'How long each activity execution (attempt) took, by activity type and outcome.',
    labelNames: ['activity_type', 'outcome'] as const,
    buckets: ACTIVITY_BUCKETS,
    registers: [this.registry],
  });

  /** Activity executions running now. */
  readonly activitiesRunning = new Gauge({
    name: 'gantry_worker_activities_running',
    help: 'Activity executions running now on the worker, by activity type.',
    labelNames: ['activity_type'] as const,
    registers: [this.registry],
  });

  /** Workflow tasks that failed (a bug or non-determinism: Temporal retries the task until the code is fixed). */
  readonly workflowTaskFailures = new Counter({
    name: 'gantry_worker_workflow_task_failures_total',
    help: 'Workflow tasks that failed on this worker (an error thrown out of workflow code that is not a failure of the workflow, or non-determinism); Temporal retries them until the code is fixed. By workflow type and reason.',
    labelNames: ['workflow_type', 'failure_reason'] as const,
    registers: [this.registry],
  });

  /** Workflow executions that closed on this worker, by how. */
  readonly workflowsClosed = new Counter({
    name: 'gantry_worker_workflows_closed_total',
    help: 'Workflow executions this worker closed, by workflow type and outcome (completed, failed, canceled, continued_as_new).',
    labelNames: ['workflow_type', 'outcome'] as const,
    registers: [this.registry],
  });

  /** The activity interceptor that counts and times every activity execution (give it to `Worker.create`'s `interceptors.activity`). */
  readonly activityInterceptor: ActivityInterceptorsFactory = (ctx) => ({
    inbound: {
      execute: async (input, next) => {
        const activityType = ctx.info.activityType;
        const stop = this.activityDuration.startTimer({ activity_type: activityType });
        this.activitiesRunning.inc({ activity_type: activityType });
        let outcome: ActivityOutcome = 'failed';
        try {
          const result = await next(input);
          outcome = 'completed';
          return result;
        } catch (error) {
          outcome = error instanceof CancelledFailure || ctx.cancellationSignal.aborted ? 'cancelled' : 'failed';
          throw error;
        } finally {
          this.activitiesRunning.dec({ activity_type: activityType });
          this.activities.inc({ activity_type: activityType, outcome });
          stop({ outcome });
        }
      },
    },
  });

  /**
   * Takes the Temporal SDK's buffered metric updates (give the buffer to `Runtime.install`'s
   * `telemetryOptions.metrics.buffer`) and counts the workflow task failures and closed
   * workflows among them; the rest are dropped. Call it regularly and before each scrape.
   */
  drain(buffer: MetricsBuffer): void {
    for (const update of buffer.retrieveUpdates()) {
      if (update.metric.kind !== 'counter' || update.value <= 0) continue;
      const name = update.metric.name.replace(/^temporal_/, '');
      if (name === 'workflow_task_execution_failed') {
        this.workflowTaskFailures.inc({ workflow_type: tag(update.attributes, 'workflow_type'), failure_reason: tag(update.attributes, 'failure_reason') }, update.value);
      } else if (WORKFLOW_OUTCOMES[name]) {
        this.workflowsClosed.inc({ workflow_type: tag(update.attributes, 'workflow_type'), outcome: WORKFLOW_OUTCOMES[name] }, update.value);
      }
    }
  }

  /**
   * Serves `GET /metrics` on its own HTTP server (the worker has no other), keys checked by
   * `isValidKey`; `beforeScrape` runs before each answer. Resolves with the server and its port.
   */
  async listen(port: number, host: string, isValidKey: KeyCheck, beforeScrape: () => void = () => {}): Promise<{ server: http.Server; port: number }> {
    const server = http.createServer((req, res) => {
      const answer = async (): Promise<void> => {
        const path = new URL(req.url ?? '/', 'http://worker').pathname;
        if (path === '/healthz') {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
          return;
        }
        if (path !== METRICS_PATH) {
          sendJsonError(res, 404, 'not_found', `no route ${req.method} ${path}: the worker serves only ${METRICS_PATH}`);
          return;
        }
        beforeScrape();
        await serveMetrics(req, res, this.registry, isValidKey);
      };
      answer().catch((error) => {
        processLogger().error({ err: error }, `worker metrics: a scrape failed: ${(error as Error).message}`);
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(errorBody('internal', 'the metrics could not be collected'));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return { server, port: (server.address() as AddressInfo).port };
  }
}
