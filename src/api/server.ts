/** Entry point of the API process (started by `npm start`, or alone with `node dist/src/api/server.js`). */
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../config';
import { ensurePrivateHome, homePaths } from '../home';
import { initProcessLogger } from '../logging/logger';
import { exitWhenParentDies } from '../stack/parent-watch';
import { openSqliteStore } from '../store/sqlite/sqlite-store';
import { connectClient } from '../temporal/connection';
import { TemporalWorkflowsClient } from '../temporal/workflows-client';
import { ApiMetrics } from '../metrics/api-metrics';
import { collectProcessMetrics } from '../metrics/exposition';
import { createApp } from './app';

const log = initProcessLogger('api');

async function main(): Promise<void> {
  const config = loadConfig();
  const paths = homePaths(config.home);
  const tightened = ensurePrivateHome(paths);
  if (tightened.length > 0) log.warn(`GANTRY_HOME was readable by other users; made private: ${tightened.join(', ')}`);
  const store = openSqliteStore(paths.database);
  const temporal = await connectClient(config.temporalAddress, config.temporalNamespace);
  const workflows = new TemporalWorkflowsClient(temporal);
  const metrics = new ApiMetrics(store);
  collectProcessMetrics(metrics.registry, 'api');
  const app = createApp({
    metrics,
    store,
    paths,
    workflows,
    asyncPredictions: { client: workflows, webhookRetrySeconds: config.webhookRetrySeconds, wakeTimeoutSeconds: config.wakeTimeoutSeconds },
    deployTimeoutSeconds: config.deployTimeoutSeconds,
    maxArchiveBytes: config.maxArchiveBytes,
    packageLimits: config.packageLimits,
    maxConcurrentUploads: config.maxConcurrentUploads,
    basePython: config.python,
    gatewayUrl: `http://${config.host}:${config.gatewayPort}`,
    temporalUi: config.temporalUiUrl ? { url: config.temporalUiUrl, namespace: config.temporalNamespace } : undefined,
    logger: log,
  });
  const server = app.listen(config.apiPort, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  log.info(`API listening on http://${config.host}:${(server.address() as AddressInfo).port}`);

  const stop = async (): Promise<void> => {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    await temporal.connection.close();
    await store.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  exitWhenParentDies(stop);
}

main().catch((error) => {
  log.fatal({ err: error }, `API failed: ${(error as Error)?.message ?? String(error)}`);
  process.exit(1);
});
