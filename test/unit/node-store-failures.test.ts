import { strict as assert } from 'node:assert';
import type { Node } from '../../src/node/node';
import { eventually } from '../helpers/ports';
import { failingStore } from './support/failing-store';
import { send } from './support/http';
import { LOCAL_AUTH, localDeployment, localNode, type LocalDeployment } from './support/local-deployment';

describe('Node with a store that fails for a while', function () {
  this.timeout(120_000);
  let local: LocalDeployment | undefined;
  let node: Node | undefined;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };

  before(() => process.on('unhandledRejection', onUnhandled));
  after(async () => {
    process.off('unhandledRejection', onUnhandled);
    await node?.stop();
    await local?.remove();
  });

  it('keeps serving, retries its writes until they land, and loses no usage', async () => {
    local = await localDeployment('slow-predict');
    const { store, failing, failures } = failingStore(local.store);
    const lines: string[] = [];
    node = localNode(local, { store, heartbeatMs: 300, usageFlushMs: 300, log: (line) => lines.push(line) });
    const gateway = await node.start();
    const deploymentId = local.deploymentId;
    const running = node;
    await eventually('a ready replica', async () => (running.runtime.routableReplicas(deploymentId).length > 0 ? true : undefined));

    let sent = 0;
    const predict = async (): Promise<number> => {
      sent++;
      return (await send(local!.predictUrl(gateway), { body: '{"sleep": 0}', headers: LOCAL_AUTH })).status;
    };
    assert.equal(await predict(), 200);

    // From now on every store call fails as a locked SQLite database does.
    failing.add('*');
    const [replica] = node.runtime.snapshot();
    assert.ok(replica?.pid);
    process.kill(replica.pid, 'SIGKILL'); // a replica change the node must report
    await eventually('the replica seen gone', async () => (running.runtime.routableReplicas(deploymentId).length === 0 ? true : undefined));

    // The gateway keeps answering; a request waits for the restarted replica and is served.
    assert.equal((await send(`${gateway}/healthz`, { method: 'GET' })).status, 200);
    assert.equal(await predict(), 200);
    assert.equal(await predict(), 200);
    await eventually('failed writes retried', async () =>
      (failures.get('reportReplicas') ?? 0) >= 2 && (failures.get('reportNode') ?? 0) >= 2 && (failures.get('addUsage') ?? 0) >= 2 ? true : undefined,
    );
    assert.equal((await send(`${gateway}/healthz`, { method: 'GET' })).status, 200);
    assert.ok(
      lines.some((line) => /^node: replica report failed \(will retry in [\d.]+ s\): SQLITE_BUSY: database is locked$/.test(line)),
      lines.join('\n'),
    );
    assert.ok(lines.some((line) => line.startsWith('node: heartbeat failed (will retry in ')));
    assert.ok(lines.some((line) => line.startsWith('node: usage flush failed (')));
    assert.ok(lines.some((line) => line.startsWith('node: reconcile failed (tried again on the next pass): SQLITE_BUSY')));
    // Nothing was written meanwhile: the store still has the replica as first reported.
    const before = await local.store.listReplicas(deploymentId);
    assert.deepEqual(
      before.map((r) => r.restarts),
      [0],
    );

    // The store recovers: the report of the restarted replica and a heartbeat land.
    const recoveredAt = new Date().toISOString();
    failing.clear();
    const reported = await eventually('the restarted replica reported', async () => {
      const replicas = await local!.store.listReplicas(deploymentId);
      return replicas.length === 1 && replicas[0]!.restarts === 1 && replicas[0]!.state === 'READY' ? replicas[0] : undefined;
    });
    assert.equal(reported.id, replica.id);
    await eventually('a heartbeat after the failures', async () => {
      const nodes = await local!.store.listNodes();
      return nodes.some((n) => n.id === 'test-node' && n.heartbeat_at > recoveredAt) ? true : undefined;
    });
    assert.equal(await predict(), 200);

    await node.stop();
    node = undefined;
    const usage = await local.store.listUsage({ start: '2000-01-01T00:00:00.000Z', end: '2100-01-01T00:00:00.000Z' });
    assert.equal(
      usage.reduce((sum, sample) => sum + sample.requests, 0),
      sent,
    );
    assert.ok(usage.reduce((sum, sample) => sum + sample.replica_seconds, 0) > 0);
    assert.deepEqual(await local.store.listReplicas(deploymentId), []); // the empty report at stop
    assert.deepEqual(unhandled, []);
  });
});
