/**
 * `npm start`: runs the whole stack on this machine. Starts a Temporal dev server unless one
 * answers at TEMPORAL_ADDRESS, then the API, the node and the worker as supervised children
 * with prefixed logs. Ctrl-C or SIGTERM stops everything in order; state stays in GANTRY_HOME.
 */
import { Connection } from '@temporalio/client';
import { loadWebhookSecret } from '../async/webhook-secret';
import { ensureAdminKey } from '../auth/api-keys';
import { ConfigError, loadConfig, type GantryConfig } from '../config';
import { ensurePrivateHome, homePaths } from '../home';
import { createLogger, logFormatSchema, logLevelFromEnv, type Logger } from '../logging/logger';
import { loadOrCreateSecretKey } from '../secrets/secret-box';
import { openSqliteStore } from '../store/sqlite/sqlite-store';
import { isListening, registerSearchAttributes } from '../temporal/connection';
import { ChildOutput, outputFormat } from './child-output';
import { DEFAULT_RESTART_POLICY, SupervisedChild, type ChildSpec } from './supervised-child';
import { devServerSpec } from './temporal-dev-server';

/** Prefix colours (ANSI codes) of the processes when pretty-printed in a terminal. */
const COLORS: Record<string, number> = { gantry: 1, temporal: 35, api: 36, node: 33, worker: 32 };

/** How the stack prints: GANTRY_LOG_FORMAT, else pretty when standard output is a terminal. */
const output = new ChildOutput(
  outputFormat(logFormatSchema.catch(undefined).parse(process.env.GANTRY_LOG_FORMAT || undefined), Boolean(process.stdout.isTTY)),
  COLORS,
  Boolean(process.stdout.isTTY),
  logLevelFromEnv(),
);

const write = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/** The supervisor's own logger (process `gantry`), printed in the stack's format. */
const log: Logger = createLogger('gantry', {
  level: logLevelFromEnv(),
  destination: { write: (line: string) => write(output.loggerLine(line.replace(/\n$/, ''))) },
});
const say = (line: string): void => log.info(line);

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not come up within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function httpOk(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

/** Registers Gantry's search attributes, retrying while a fresh dev server finishes starting. */
async function prepareNamespace(config: GantryConfig): Promise<void> {
  await waitFor(
    'the Temporal namespace',
    async () => {
      let connection: Connection | undefined;
      try {
        connection = await Connection.connect({ address: config.temporalAddress, connectTimeout: 2000 });
        const added = await registerSearchAttributes(connection, config.temporalNamespace);
        if (added.length > 0) say(`registered search attributes ${added.join(', ')} in namespace ${config.temporalNamespace}`);
        return true;
      } catch {
        return false;
      } finally {
        await connection?.close();
      }
    },
    60_000,
  );
}

function childEnv(config: GantryConfig): NodeJS.ProcessEnv {
  return { ...process.env, GANTRY_HOME: config.home, GANTRY_SUPERVISED: '1' };
}

async function main(): Promise<void> {
  let config: GantryConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      log.fatal(error.message);
      process.exit(2);
    }
    throw error;
  }
  const paths = homePaths(config.home);
  const tightened = ensurePrivateHome(paths);
  say(`home ${paths.root}`);
  if (tightened.length > 0) log.warn(`GANTRY_HOME was readable by other users; made private: ${tightened.join(', ')}`);
  for (const [name, port] of [
    ['GANTRY_API_PORT', config.apiPort],
    ['GANTRY_GATEWAY_PORT', config.gatewayPort],
    ['GANTRY_WORKER_METRICS_PORT', config.workerMetricsPort],
  ] as const) {
    if (await isListening(`${config.host}:${port}`)) {
      log.fatal(`${config.host}:${port} (${name}) is already in use: is another Gantry running? Stop it, or choose another port.`);
      process.exit(1);
    }
  }

  const store = openSqliteStore(paths.database);
  const key = await ensureAdminKey(store, config.apiKey, paths.adminKeyFile);
  await store.close();
  // Created here on first start (any process that needs them would create them too), so that the
  // operator can give the webhook secret to a receiver before the first async request.
  loadOrCreateSecretKey(paths.secretsKeyFile);
  loadWebhookSecret(config.webhookSecret, paths.webhookSecretFile);

  const children: SupervisedChild[] = [];
  let temporalChild: SupervisedChild | undefined;
  let uiUrl: string | undefined;
  if (await isListening(config.temporalAddress)) {
    say(`using the Temporal server already answering at ${config.temporalAddress}`);
  } else {
    say(`starting a Temporal dev server at ${config.temporalAddress} (data in ${paths.temporalDatabase})`);
    temporalChild = new SupervisedChild(
      {
        ...devServerSpec({
          address: config.temporalAddress,
          uiPort: config.temporalUiPort,
          namespace: config.temporalNamespace,
          databaseFile: paths.temporalDatabase,
        }),
        env: childEnv(config),
      },
      write,
      DEFAULT_RESTART_POLICY,
      output,
    );
    temporalChild.start();
    uiUrl = `http://${config.host}:${config.temporalUiPort}`;
    await waitFor('the Temporal dev server', () => isListening(config.temporalAddress), 60_000);
  }
  await prepareNamespace(config);

  const env = { ...childEnv(config), ...(uiUrl ? { GANTRY_TEMPORAL_UI_URL: uiUrl } : {}) };
  const specs: ChildSpec[] = [
    { name: 'api', command: process.execPath, args: [require.resolve('../api/server')], env },
    { name: 'node', command: process.execPath, args: [require.resolve('../node/main')], env },
    { name: 'worker', command: process.execPath, args: [require.resolve('../../worker')], env },
  ];
  for (const spec of specs) {
    const child = new SupervisedChild(spec, write, DEFAULT_RESTART_POLICY, output);
    child.start();
    children.push(child);
  }

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) {
      say(`${signal} again: killing everything now`);
      for (const child of [...children, temporalChild]) if (child?.pid) process.kill(child.pid, 'SIGKILL');
      process.exit(130);
    }
    stopping = true;
    say(`${signal}: stopping (press Ctrl-C again to force)`);
    const [api, node, worker] = children;
    await Promise.all([api!.stop(10_000), worker!.stop(15_000)]);
    await node!.stop(30_000); // drains the gateway and every replica
    await temporalChild?.stop(10_000);
    say('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  const apiUrl = `http://${config.host}:${config.apiPort}`;
  const gatewayUrl = `http://${config.host}:${config.gatewayPort}`;
  await waitFor('the API', () => httpOk(`${apiUrl}/healthz`), 60_000);
  await waitFor('the gateway', () => httpOk(`${gatewayUrl}/healthz`), 60_000);

  say('Gantry is up.');
  say(`  Dashboard    ${apiUrl}/`);
  say(`  API          ${apiUrl}`);
  say(`  Gateway      ${gatewayUrl}`);
  say(`  Temporal UI  ${uiUrl ?? `(served by the Temporal server at ${config.temporalAddress})`}`);
  say(`  Metrics      ${apiUrl}/metrics  ${gatewayUrl}/metrics  http://${config.host}:${config.workerMetricsPort}/metrics  (with the API key)`);
  if (key.generated) {
    say(`  API key      ${key.generated}`);
    say(`               (generated now and shown once; kept in ${key.file}, which the gantry CLI reads)`);
  } else if (config.apiKey) {
    say('  API key      GANTRY_API_KEY');
  } else {
    say(`  API key      kept in ${key.file}`);
  }
  say('Next, in another terminal:  npx gantry push examples/echo --wait');
}

main().catch((error) => {
  log.fatal({ err: error }, `failed to start: ${(error as Error).message}`);
  process.exit(1);
});
