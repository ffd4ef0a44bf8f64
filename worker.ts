/**
 * The Gantry worker: runs deploy and promotion workflows and their activities on the
 * `gantry` task queue. Started by `npm start`; run alone with `node dist/worker.js`.
 */
import { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from './src/activities';
import { loadConfig } from './src/config';
import { homePaths } from './src/home';
import { TASK_QUEUE } from './src/shared/constants';
import { exitWhenParentDies } from './src/stack/parent-watch';
import { openSqliteStore } from './src/store/sqlite/sqlite-store';
import { TemporalWorkflowsClient } from './src/temporal/workflows-client';

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
  exitWhenParentDies(() => worker.shutdown());
  console.log(`worker polling task queue "${TASK_QUEUE}" on ${config.temporalAddress} (namespace ${config.temporalNamespace})`);
  try {
    await worker.run();
  } finally {
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
