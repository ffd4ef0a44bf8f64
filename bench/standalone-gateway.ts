/**
 * Gantry's gateway alone in a process, for the instruction bench (bench/instructions.ts): the
 * `Gateway` with a routing snapshot of one model whose production environment serves one
 * deployment, its one replica at the given port, and its access log written as the gateway
 * thread writes it (in blocks, asynchronously). Prints `listening` once it listens.
 *
 *   node dist/bench/standalone-gateway.js <port> <replica port> <access log file> <api key>
 */
import * as fs from 'node:fs';
import pino from 'pino';
import { hashApiKey } from '../src/auth/key-hash';
import { BatchedDestination } from '../src/logging/batched-destination';
import { createLogger } from '../src/logging/logger';
import { Gateway } from '../src/node/gateway/gateway';

/** The model and deployment the snapshot routes (the predict path is `/models/<model>/production/predict`). */
export const STANDALONE_MODEL_ID = 'bench';
const DEPLOYMENT_ID = 'benchdeployment';

async function main(): Promise<void> {
  const [port, replicaPort, logFile, key] = process.argv.slice(2);
  if (!port || !replicaPort || !logFile || !key) throw new Error('usage: standalone-gateway.js <port> <replica port> <access log file> <api key>');
  const destination = new BatchedDestination(pino.destination({ dest: fs.openSync(logFile, 'a'), sync: false, minLength: 8 * 1024 }), 8 * 1024, 200);
  const gateway = new Gateway({ logger: createLogger('node', { level: 'info', destination }), log: () => undefined });
  gateway.applyRouting({
    modelIds: [STANDALONE_MODEL_ID],
    deployments: [
      { id: DEPLOYMENT_ID, model_id: STANDALONE_MODEL_ID, name: 'deployment-1', status: 'ACTIVE', kind: 'published', desired_replicas: 1, predict_timeout_seconds: 600 },
    ],
    environments: [{ model_id: STANDALONE_MODEL_ID, name: 'production', current_deployment_id: DEPLOYMENT_ID }],
    routes: [{ model_id: STANDALONE_MODEL_ID, environment: 'production', weights: { [DEPLOYMENT_ID]: 100 }, generation: 1 }],
    keyHashes: [hashApiKey(key)],
  });
  gateway.applyReplicas({ [DEPLOYMENT_ID]: [{ id: 'replica', port: Number(replicaPort) }] });
  await gateway.listen(Number(port), '127.0.0.1');
  process.stdout.write('listening\n');
  const stop = (): void => {
    void gateway
      .close()
      .then(() => destination.drain())
      .finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
