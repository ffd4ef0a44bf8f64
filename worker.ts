/**
 * The Gantry worker: runs deploy, promotion and development update workflows and their
 * activities on the `gantry` task queue, and the repair loop that keeps the store's records and
 * those workflows in agreement, and serves its Prometheus metrics on GANTRY_WORKER_METRICS_PORT.
 * Started by `npm start`; run alone with `node dist/worker.js`.
 */
import { Client } from '@temporalio/client';
import { MetricsBuffer, makeTelemetryFilterString, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import * as fs from 'node:fs';
import { createActivities } from './src/activities';
import { AsyncDispatcher } from './src/async/dispatcher';
import { loadWebhookSecret } from './src/async/webhook-secret';
import { loadConfig } from './src/config';
import { collectProcessMetrics, METRICS_PATH } from './src/metrics/exposition';
import { WorkerMetrics } from './src/metrics/worker-metrics';
import { ensurePrivateHome, homePaths } from './src/home';
import { initProcessLogger, lineLogger } from './src/logging/logger';
import { temporalLevel, temporalLogger } from './src/logging/temporal-logger';
import { setDeploymentLogLimits } from './src/logs/deployment-logs';
import { TASK_QUEUE } from './src/shared/constants';
import { exitWhenParentDies } from './src/stack/parent-watch';
import { Repairer } from './src/repair/repairer';
import { resolveIsolation } from './src/sandbox/sandbox';
import { openSqliteStore } from './src/store/sqlite/sqlite-store';
import { TemporalWorkflowsClient } from './src/temporal/workflows-client';

/** How often the repair loop looks for records whose workflows are not running. */
const REPAIR_INTERVAL_MS = 3_000;
/** How often the async dispatcher looks at the queue besides on every store change. */
const DISPATCH_INTERVAL_MS = 1_000;
/** How often the Temporal SDK's buffered metrics are taken into the worker's own (besides at each scrape). */
const METRICS_DRAIN_INTERVAL_MS = 1_000;

/** Reads a value once, when first needed. */
function once<T>(read: () => T): () => T {
  let value: { v: T } | undefined;
  return () => {
    value ??= { v: read() };
    return value.v;
  };
}

const log = initProcessLogger('worker');

async function main(): Promise<void> {
  const config = loadConfig();
  setDeploymentLogLimits(config.deploymentLogs);
  const paths = homePaths(config.home);
  const tightened = ensurePrivateHome(paths);
  if (tightened.length > 0) log.warn(`GANTRY_HOME was readable by other users; made private: ${tightened.join(', ')}`);
  const store = openSqliteStore(paths.database);
  const isolation = await resolveIsolation(config.isolation.mode, config.python, paths.root, config.isolation.uidBase);
  log[isolation.level](`worker: ${isolation.message}`);
  // Before any connection: the SDK's runtime takes its logger and telemetry settings once.
  // The SDK's lines (its own, the workflow bundler's, native core's forwarded ones) in our format;
  // core is chatty at info, so its lines are kept to warnings unless debug or trace is asked for.
  const sdkMetrics = new MetricsBuffer();
  const sdkLevel = temporalLevel(log.level);
  Runtime.install({
    logger: temporalLogger(log.child({ component: 'temporal-sdk' })),
    telemetryOptions: {
      logging: {
        filter: makeTelemetryFilterString({ core: sdkLevel === 'DEBUG' || sdkLevel === 'TRACE' ? sdkLevel : 'WARN', other: 'ERROR' }),
        forward: {},
      },
      metrics: { buffer: sdkMetrics },
    },
  });
  const metrics = new WorkerMetrics();
  collectProcessMetrics(metrics.registry, 'worker');
  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  const workflows = new TemporalWorkflowsClient(new Client({ connection, namespace: config.temporalNamespace }));
  const worker = await Worker.create({
    connection,
    namespace: config.temporalNamespace,
    taskQueue: TASK_QUEUE,
    workflowsPath: require.resolve('./src/workflows'),
    interceptors: { activity: [metrics.activityInterceptor] },
    activities: createActivities({
      store,
      paths,
      basePython: config.python,
      packageLimits: config.packageLimits,
      buildTimeoutSeconds: config.buildTimeoutSeconds,
      sandbox: isolation.sandbox,
      pipAllowedOptions: config.pipAllowedOptions,
      workflows,
      asyncCalls: {
        apiKey: once(() => config.apiKey ?? fs.readFileSync(paths.adminKeyFile, 'utf8').trim()),
        webhookSecret: once(() => loadWebhookSecret(config.webhookSecret, paths.webhookSecretFile)),
      },
    }),
  });
  const dispatcher = new AsyncDispatcher({ store, asyncPredictions: workflows, retentionSeconds: config.asyncRetentionSeconds, log: lineLogger(log) });
  const repairer = new Repairer({ store, workflows, paths, deployTimeoutSeconds: config.deployTimeoutSeconds, log: lineLogger(log) });
  const drain = (): void => metrics.drain(sdkMetrics);
  // Metrics are not worth stopping rollouts for: a taken port is said loudly, and the worker runs on.
  const metricsServer = await metrics
    .listen(config.workerMetricsPort, config.host, async (hash) => (await store.findApiKeyByHash(hash)) !== undefined, drain)
    .catch((error) => {
      log.error(`worker: serving no metrics: cannot listen on ${config.host}:${config.workerMetricsPort} (GANTRY_WORKER_METRICS_PORT): ${(error as Error).message}`);
      return undefined;
    });
  const drainTimer = setInterval(drain, METRICS_DRAIN_INTERVAL_MS);
  exitWhenParentDies(() => worker.shutdown());
  log.info(`worker polling task queue "${TASK_QUEUE}" on ${config.temporalAddress} (namespace ${config.temporalNamespace})`);
  if (metricsServer) log.info(`worker metrics at http://${config.host}:${metricsServer.port}${METRICS_PATH}`);
  repairer.start(REPAIR_INTERVAL_MS);
  dispatcher.start(DISPATCH_INTERVAL_MS);
  try {
    await worker.run();
  } finally {
    clearInterval(drainTimer);
    metricsServer?.server.close();
    await dispatcher.stop();
    await repairer.stop();
    await connection.close();
    await store.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    log.fatal({ err: error }, `worker failed: ${(error as Error)?.message ?? String(error)}`);
    process.exit(1);
  },
);
