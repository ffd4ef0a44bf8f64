/**
 * Gateway timeouts and aborts against real model-server replicas: a real node (gateway,
 * runtime, reconciler) on its own home and SQLite store, running fixture packages with this
 * machine's Python (no Temporal, no build: see test/unit/support/local-deployment.ts).
 */
import { strict as assert } from 'node:assert';
import type { Node } from '../../src/node/node';
import { eventually } from '../helpers/ports';
import { send, startRequest } from '../unit/support/http';
import { LOCAL_AUTH, localDeployment, localNode, type LocalDeployment } from '../unit/support/local-deployment';

describe('gateway timeouts and aborts (real replicas)', function () {
  this.timeout(120_000);
  let local: LocalDeployment | undefined;
  let node: Node | undefined;

  async function startNode(fixture: string, runtime: Record<string, unknown> = {}): Promise<string> {
    local = await localDeployment(fixture, { runtime });
    node = localNode(local);
    return node.start();
  }

  afterEach(async () => {
    await node?.stop();
    node = undefined;
    await local?.remove();
    local = undefined;
  });

  it('answers 504 upstream_timeout when the replica is slower than predict_timeout_seconds, then serves again', async () => {
    const gateway = await startNode('slow-predict', { predict_timeout_seconds: 1 });
    const { deploymentId } = local!;
    const running = node!;
    await eventually('a ready replica', async () => (running.runtime.routableReplicas(deploymentId).length > 0 ? true : undefined));
    const [replica] = running.runtime.routableReplicas(deploymentId);

    const slow = await send(local!.predictUrl(gateway), { body: '{"sleep": 4}', headers: LOCAL_AUTH });
    assert.equal(slow.status, 504);
    assert.deepEqual(JSON.parse(slow.body), {
      error: { code: 'upstream_timeout', message: `deployment deployment-1 (${deploymentId}) did not answer within 1 s` },
    });
    // The gateway reports its demand coalesced (at most every DEMAND_REPORT_MS), so the node sees it shortly after.
    await eventually('nothing in flight', async () => (running.gateway.inFlight(deploymentId) === 0 && replica!.inFlight === 0 ? true : undefined));

    // The replica finishes the abandoned prediction, then answers the next ones.
    const answer = await eventually('an answer from the same replica', async () => {
      const quick = await send(local!.predictUrl(gateway), { body: '{"sleep": 0}', headers: LOCAL_AUTH });
      return quick.status === 200 ? quick : undefined;
    });
    assert.deepEqual(JSON.parse(answer.body), { slept: 0 });
    assert.equal(running.runtime.routableReplicas(deploymentId)[0], replica);
  });

  it('closes the request of a client that disconnects: nothing stays in flight', async () => {
    const gateway = await startNode('slow-predict');
    const { deploymentId } = local!;
    const running = node!;
    await eventually('a ready replica', async () => (running.runtime.routableReplicas(deploymentId).length > 0 ? true : undefined));
    const [replica] = running.runtime.routableReplicas(deploymentId);

    const request = startRequest(local!.predictUrl(gateway), '{"sleep": 3}', LOCAL_AUTH);
    await eventually('the request at the replica', async () => (replica!.inFlight === 1 ? true : undefined));
    request.destroy();
    await eventually('nothing in flight', async () => (running.gateway.inFlight(deploymentId) === 0 && replica!.inFlight === 0 ? true : undefined));
    const answer = await eventually('the replica answers again', async () => {
      const quick = await send(local!.predictUrl(gateway), { body: '{"sleep": 0}', headers: LOCAL_AUTH });
      return quick.status === 200 ? quick : undefined;
    });
    assert.equal(answer.status, 200);
  });

  it('takes a request waiting for a starting replica out of the queue when its client disconnects', async () => {
    const gateway = await startNode('slow-load'); // load() sleeps 3 s
    const { deploymentId } = local!;
    const running = node!;
    assert.equal(running.runtime.routableReplicas(deploymentId).length, 0);
    const requests = [0, 1].map(() => startRequest(local!.predictUrl(gateway), '{}', LOCAL_AUTH));
    await eventually('two requests queued', async () => (running.gateway.queued(deploymentId) === 2 ? true : undefined));
    for (const request of requests) request.destroy();
    await eventually('the queue empty', async () => (running.gateway.queued(deploymentId) === 0 && running.gateway.inFlight(deploymentId) === 0 ? true : undefined));
    // A request that stays is served once the replica is ready.
    const answer = await send(local!.predictUrl(gateway), { body: '{}', headers: LOCAL_AUTH });
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.body), { ok: true });
  });
});
