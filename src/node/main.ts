/** Entry point of the node process (started by `npm start`, or alone with `node dist/src/node/main.js`). */
import { loadConfig } from '../config';
import { homePaths } from '../home';
import { exitWhenParentDies } from '../stack/parent-watch';
import { openSqliteStore } from '../store/sqlite/sqlite-store';
import { Node } from './node';

async function main(): Promise<void> {
  const config = loadConfig();
  const paths = homePaths(config.home);
  const store = openSqliteStore(paths.database);
  const node = new Node({
    store,
    paths,
    nodeId: config.nodeId,
    host: config.host,
    gatewayPort: config.gatewayPort,
    waitLimits: { timeoutMs: config.wakeTimeoutSeconds * 1000, queueSize: config.wakeQueueSize },
    usageFlushMs: config.usageFlushSeconds * 1000,
  });
  const url = await node.start();
  console.log(`node ${config.nodeId}: gateway listening on ${url}`);

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log('stopping: draining the gateway and every replica');
    await node.stop();
    await store.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  exitWhenParentDies(stop);
}

main().catch((error) => {
  console.error('node failed:', error);
  process.exit(1);
});
