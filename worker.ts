/**
 * The Gantry worker: runs deploy, promotion and development update workflows and their
 * activities on the `gantry` task queue, and the repair loop that keeps the store's records and
 * those workflows in agreement. Started by `npm start`; run alone with `node dist/worker.js`.
 */
import { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import * as fs from 'node:fs';
import { createActivities } from './src/activities';
import { AsyncDispatcher } from './src/async/dispatcher';
import { loadWebhookSecret } from './src/async/webhook-secret';
import { loadConfig } from './src/config';
import { homePaths } from './src/home';
import { TASK_QUEUE } from './src/shared/constants';
import { exitWhenParentDies } from './src/stack/parent-watch';
import { Repairer } from './src/repair/repairer';
import { openSqliteStore } from './src/store/sqlite/sqlite-store';
import { TemporalWorkflowsClient } from './src/temporal/workflows-client';

/** How often the repair loop looks for records whose workflows are not running. */
const REPAIR_INTERVAL_MS = 3_000;
/** How often the async dispatcher looks at the queue besides on every store change. */
const DISPATCH_INTERVAL_MS = 1_000;

/** Reads a value once, when first needed. */
function once<T>(read: () => T): () => T {
  let value: { v: T } | undefined;
  return () => {
    value ??= { v: read() };
    return value.v;
  };
}

async function main(): Promise<void> {
  const config = loadConfig();
  const paths = homePaths(config.home);
  const store = openSqliteStore(paths.database);
  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  const workflows = new TemporalWorkflowsClient(new Client({ connection, namespace: config.temporalNamespace }));
  const worker = await Worker.create({
    connection,
    namespace: config.temporalNamespace,
    taskQueue: TASK_QUEUE,
    workflowsPath: require.resolve('./src/workflows'),
    activities: createActivities({
      store,
      paths,
      basePython: config.python,
      workflows,
      asyncCalls: {
        apiKey: once(() => config.apiKey ?? fs.readFileSync(paths.adminKeyFile, 'utf8').trim()),
        webhookSecret: once(() => loadWebhookSecret(config.webhookSecret, paths.webhookSecretFile)),
      },
    }),
  });
  const dispatcher = new AsyncDispatcher({ store, asyncPredictions: workflows, retentionSeconds: config.asyncRetentionSeconds });
  const repairer = new Repairer({ store, workflows, paths, deployTimeoutSeconds: config.deployTimeoutSeconds });
  exitWhenParentDies(() => worker.shutdown());
  console.log(`worker polling task queue "${TASK_QUEUE}" on ${config.temporalAddress} (namespace ${config.temporalNamespace})`);
  repairer.start(REPAIR_INTERVAL_MS);
  dispatcher.start(DISPATCH_INTERVAL_MS);
  try {
    await worker.run();
  } finally {
    await dispatcher.stop();
    await repairer.stop();
    await connection.close();
    await store.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error('worker failed:', error);
    process.exit(1);
  },
);
