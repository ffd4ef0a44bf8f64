/**
 * The model server's own limits on the real stack: a real node (gateway, runtime, health
 * checks) running a fixture package with this machine's Python (no Temporal, no build: see
 * test/unit/support/local-deployment.ts).
 */
import { strict as assert } from 'node:assert';
import type { Node } from '../../src/node/node';
import { eventually } from '../helpers/ports';
import { send } from '../unit/support/http';
import { LOCAL_AUTH, localDeployment, localNode, type LocalDeployment } from '../unit/support/local-deployment';

describe('model server limits (real replicas)', function () {
  this.timeout(120_000);
  let local: LocalDeployment | undefined;
  let node: Node | undefined;

  afterEach(async () => {
    await node?.stop();
    node = undefined;
    await local?.remove();
    local = undefined;
  });

  it('answers 504 for a predict that sleeps past its timeout, and the replica stays healthy', async () => {
    local = await localDeployment('slow-predict', { runtime: { predict_timeout_seconds: 1 } });
    node = localNode(local);
    const gateway = await node.start();
    const { deploymentId } = local;
    const running = node;
    await eventually('a ready replica', async () => (running.runtime.routableReplicas(deploymentId).length > 0 ? true : undefined));
    const [replica] = running.runtime.routableReplicas(deploymentId);
    const pid = replica!.pid;
    assert.ok(pid);

    // Every routing decision while the predict runs past its timeout and on to its end.
    let samples = 0;
    let unroutable = 0;
    const sampler = setInterval(() => {
      samples++;
      if (!replica!.routable) unroutable++;
    }, 50);
    try {
      // Straight to the replica: the answer is the model server's own, not the gateway's.
      const slow = await send(`http://127.0.0.1:${replica!.port}/predict`, { body: '{"sleep": 4}' });
      assert.equal(slow.status, 504);
      assert.deepEqual(JSON.parse(slow.body), { error: 'predict did not finish within predict_timeout_seconds (1 s)' });

      // The predict runs on and holds its slot; once it ends, the same replica serves again.
      const answer = await eventually('an answer from the same replica', async () => {
        const quick = await send(local!.predictUrl(gateway), { body: '{"sleep": 0}', headers: LOCAL_AUTH });
        return quick.status === 200 ? quick : undefined;
      });
      assert.deepEqual(JSON.parse(answer.body), { slept: 0 });
    } finally {
      clearInterval(sampler);
    }
    assert.ok(samples > 0);
    assert.equal(unroutable, 0, `the replica was out of routing in ${unroutable} of ${samples} samples`);
    assert.deepEqual(running.runtime.routableReplicas(deploymentId), [replica]);
    assert.equal(replica!.pid, pid);
    const [observed] = running.runtime.snapshot();
    assert.equal(observed!.state, 'READY');
    assert.equal(observed!.pid, pid);
    assert.equal(observed!.restarts, 0);
  });
});
