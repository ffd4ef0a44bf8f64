/** Entry point of the node process (started by `npm start`, or alone with `node dist/src/node/main.js`). */
import { loadConfig } from '../config';
import { ensurePrivateHome, homePaths } from '../home';
import { initProcessLogger, lineLogger } from '../logging/logger';
import { setDeploymentLogLimits } from '../logs/deployment-logs';
import { exitWhenParentDies } from '../stack/parent-watch';
import { openSqliteStore } from '../store/sqlite/sqlite-store';
import { isStoreError } from '../store/store';
import { Node } from './node';
import { resolveIsolation } from '../sandbox/sandbox';
import { describeError } from './retried-task';

/** How long an orderly stop after an uncaught exception may take before the process exits anyway. */
const CRASH_STOP_MS = 10_000;

const log = initProcessLogger('node');

async function main(): Promise<void> {
  const config = loadConfig();
  setDeploymentLogLimits(config.deploymentLogs);
  const paths = homePaths(config.home);
  const tightened = ensurePrivateHome(paths);
  if (tightened.length > 0) log.warn(`GANTRY_HOME was readable by other users; made private: ${tightened.join(', ')}`);
  const store = openSqliteStore(paths.database);
  const isolation = await resolveIsolation(config.isolation.mode, config.python, paths.root, config.isolation.uidBase);
  log[isolation.level](`node: ${isolation.message}`);
  const node = new Node({
    sandbox: isolation.sandbox,
    store,
    paths,
    nodeId: config.nodeId,
    host: config.host,
    gatewayPort: config.gatewayPort,
    apiUrl: `http://${config.host}:${config.apiPort}`,
    waitLimits: { timeoutMs: config.wakeTimeoutSeconds * 1000, queueSize: config.wakeQueueSize },
    usageFlushMs: config.usageFlushSeconds * 1000,
    maxReplicas: config.maxReplicas,
    // A scratch folder outlives any build once the build deadline has passed (its processes are killed then).
    environmentRetention: { unusedForMs: config.venvRetentionSeconds * 1000, partialAfterMs: (config.buildTimeoutSeconds + 60) * 1000 },
    log: lineLogger(log),
    logger: log,
    processMetrics: true,
  });

  let stopping = false;
  const stop = async (code = 0): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info('stopping: draining the gateway and every replica');
    try {
      await node.stop();
      await store.close();
    } catch (error) {
      log.error({ err: error }, `node: stopping failed: ${describeError(error)}`);
      code ||= 1;
    }
    process.exit(code);
  };

  // A promise nobody handled: the code that made it has already unwound (its awaits and
  // finally blocks ran), so the node's state is as sane as after any handled failure. The node
  // handles every promise it makes; one that slips through is logged and the node keeps serving.
  process.on('unhandledRejection', (reason) => {
    log.error({ err: reason }, `node: unhandled rejection (the node keeps running): ${describeError(reason)}`);
  });
  // An exception thrown out of a callback. Two kinds:
  // - a SQLite error (code SQLITE_*): the store's own timer (the watch poll reads PRAGMA
  //   data_version synchronously) threw it. SQLite changed nothing, and no node code was half way
  //   through a change (the node's store calls are async, so their errors are rejections it
  //   handles): logged, and the node keeps running; the poll tries again on its next tick.
  // - anything else: a bug, thrown part way through code that may have left the runtime,
  //   gateway or meter half updated. Carrying on with state that may be wrong is worse than a
  //   restart, so the node stops in order (gateway drained, replicas stopped, usage written),
  //   for CRASH_STOP_MS at most, and exits 1; the supervisor (`npm start`) starts it again. A
  //   second exception during that stop exits at once.
  let crashed = false;
  process.on('uncaughtException', (error) => {
    if (isStoreError(error) && !crashed) {
      log.error({ err: error }, `node: store error outside any request (the node keeps running): ${describeError(error)}`);
      return;
    }
    log.fatal({ err: error }, `node: uncaught exception: ${describeError(error)}`);
    if (crashed) process.exit(1);
    crashed = true;
    log.fatal(`node: stopping (at most ${CRASH_STOP_MS / 1000} s), then exiting 1 to be restarted`);
    setTimeout(() => process.exit(1), CRASH_STOP_MS);
    void stop(1);
  });

  const url = await node.start();
  log.info({ nodeId: config.nodeId }, `node ${config.nodeId}: gateway listening on ${url}`);

  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  exitWhenParentDies(stop);
}

main().catch((error) => {
  log.fatal({ err: error }, `node failed: ${(error as Error)?.message ?? String(error)}`);
  process.exit(1);
});
