/**
 * The Gantry worker: runs deploy, promotion and development update workflows and their
 * activities on the `gantry` task queue, and the repair loop that keeps the store's records and
 * those workflows in agreement. Started by `npm start`; run alone with `node dist/worker.js`.
 */
import { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from './src/activities';
import { loadConfig } from './src/config';
import { homePaths } from './src/home';
import { TASK_QUEUE } from './src/shared/constants';
import { exitWhenParentDies } from './src/stack/parent-watch';
import { Repairer } from './src/repair/repairer';
import { openSqliteStore } from './src/store/sqlite/sqlite-store';
import { TemporalWorkflowsClient } from './src/temporal/workflows-client';

/** How often the repair loop looks for records whose workflows are not running. */
const REPAIR_INTERVAL_MS = 3_000;

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
    activities: createActivities({ store, paths, basePython: config.python, workflows }),
  });
  const repairer = new Repairer({ store, workflows, paths, deployTimeoutSeconds: config.deployTimeoutSeconds });
  exitWhenParentDies(() => worker.shutdown());
  console.log(`worker polling task queue "${TASK_QUEUE}" on ${config.temporalAddress} (namespace ${config.temporalNamespace})`);
  repairer.start(REPAIR_INTERVAL_MS);
  try {
    await worker.run();
  } finally {
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
