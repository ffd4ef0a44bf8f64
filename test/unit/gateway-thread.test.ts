/**
 * The gateway on its own thread, over its message port as the node drives it: it serves from
 * the snapshot and replicas posted to it, and posts back the generations it applied, the
 * requests it routed, its demand and the wakes it needs; it ends when asked to close.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { hashApiKey } from '../../src/auth/key-hash';
import type { RoutingSnapshot } from '../../src/node/gateway/routing-snapshot';
import type { FromGatewayThread, GatewayThreadOptions, ToGatewayThread } from '../../src/node/gateway/thread-messages';
import { eventually } from '../helpers/ports';
import { StandInReplica } from '../helpers/stand-in-replica';
import { send } from './support/http';

const KEY = 'gateway-thread-key-0123456789';

const SNAPSHOT: RoutingSnapshot = {
  modelIds: ['m1'],
  deployments: [
    { id: 'd1', model_id: 'm1', name: 'awake', status: 'ACTIVE', kind: 'published', desired_replicas: 1, predict_timeout_seconds: 30 },
    { id: 'd2', model_id: 'm1', name: 'asleep', status: 'SCALED_TO_ZERO', kind: 'published', desired_replicas: 0, predict_timeout_seconds: 30 },
  ],
  environments: [{ model_id: 'm1', name: 'production', current_deployment_id: 'd1' }],
  routes: [{ model_id: 'm1', environment: 'production', weights: { d1: 100 }, generation: 7 }],
  keyHashes: [hashApiKey(KEY)],
};

describe('Gateway thread', function () {
  this.timeout(30_000);

  it('serves what is posted to it and posts back generations, routed counts, demand and wakes', async () => {
    const replica = await new StandInReplica().start('r1');
    // The access log goes to the file descriptor given (a node's own log file, the bench's), not to standard output.
    const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-gateway-thread-'));
    const logFile = path.join(logDir, 'node.log');
    const logFd = fs.openSync(logFile, 'a');
    const options: GatewayThreadOptions = { logLevel: 'info', logFd, processMetrics: false, waitLimits: { timeoutMs: 200, queueSize: 4 } };
    const worker = new Worker(path.join(__dirname, '../../src/node/gateway/gateway-thread.js'), { workerData: options });
    const received: FromGatewayThread[] = [];
    worker.on('message', (message: FromGatewayThread) => {
      received.push(message);
      if (message.type === 'wake') worker.postMessage({ type: 'woken', wakeId: message.wakeId, woken: true } satisfies ToGatewayThread);
    });
    const post = (message: ToGatewayThread): void => worker.postMessage(message);
    try {
      post({ type: 'routing', snapshot: SNAPSHOT });
      post({ type: 'replicas', ready: { d1: [replica.replica] } });
      post({ type: 'listen', port: 0, host: '127.0.0.1' });
      const listening = await eventually('listening', async () => received.find((m) => m.type === 'listening'));
      assert.ok(listening.type === 'listening');
      assert.deepEqual(
        received.filter((m) => m.type === 'applied'),
        [{ type: 'applied', generations: { 'm1/production': 7 } }],
      );
      const base = `http://127.0.0.1:${listening.port}/models/m1`;
      const auth = { authorization: `Api-Key ${KEY}` };
      for (let i = 0; i < 3; i++) assert.equal((await send(`${base}/production/predict`, { body: '{}', headers: auth })).status, 200);
      // The sleeping deployment: its request waits (200 ms at most here), and the thread asks the main thread to wake it.
      assert.equal((await send(`${base}/deployment/d2/predict`, { body: '{}', headers: auth })).status, 503);
      assert.deepEqual(
        received.flatMap((m) => (m.type === 'wake' ? [m.deploymentId] : [])),
        ['d2'],
      );
      const routed = await eventually('the routed counts', async () => {
        const total: Record<string, number> = {};
        for (const m of received) if (m.type === 'routed') for (const [id, n] of Object.entries(m.counts)) total[id] = (total[id] ?? 0) + n;
        return total.d1 === 3 && total.d2 === 1 ? total : undefined;
      });
      assert.deepEqual(routed, { d1: 3, d2: 1 });
      const demand = await eventually('the demand settled', async () => {
        const last = received.filter((m) => m.type === 'demand').at(-1);
        return last?.type === 'demand' && last.report.deployments.d1?.inFlight === 0 && last.report.deployments.d2?.queued === 0 ? last.report : undefined;
      });
      assert.equal(typeof demand.deployments.d1?.lastRequestAt, 'number');
      assert.deepEqual(demand.replicas, {});
      assert.equal(replica.received, 3);
      post({ type: 'close' });
      await eventually('closed', async () => received.find((m) => m.type === 'closed'));
      const accessLines = fs
        .readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((line) => line.includes('"path":"/models/m1/'))
        .map((line) => JSON.parse(line) as { status: number });
      assert.deepEqual(
        accessLines.map((line) => line.status),
        [200, 200, 200, 503],
        'every request has its access line in the log file, flushed on close',
      );
    } finally {
      await worker.terminate();
      await replica.stop();
      fs.closeSync(logFd);
      fs.rmSync(logDir, { recursive: true, force: true });
    }
  });
});
