/**
 * The gateway fed by pushes alone, over real HTTP with stand-in replicas: no store anywhere.
 * A revoked key is refused from the first request after the snapshot that drops it; a request
 * waiting for a replica is released by the push that brings one (counted in pushes, not time);
 * a snapshot that removes the deployment answers its waiters 404 (and its demand is forgotten);
 * closing answers them 503.
 */
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import { hashApiKey } from '../../src/auth/key-hash';
import { Gateway } from '../../src/node/gateway/gateway';
import type { RoutedDeployment, RoutingSnapshot } from '../../src/node/gateway/routing-snapshot';
import { eventually } from '../helpers/ports';
import { StandInReplica } from '../helpers/stand-in-replica';
import { send } from './support/http';

const KEEP = 'snapshot-key-kept-0123456789';
const REVOKE = 'snapshot-key-revoked-0123456789';

/** A live deployment of model `m1` as a snapshot carries it. */
function deployment(id: string, desiredReplicas = 1): RoutedDeployment {
  return {
    id,
    model_id: 'm1',
    name: `name-${id}`,
    status: desiredReplicas === 0 ? 'SCALED_TO_ZERO' : 'ACTIVE',
    kind: 'published',
    desired_replicas: desiredReplicas,
    predict_timeout_seconds: 30,
  };
}

/** A snapshot of model `m1` with these deployments and keys. */
function snapshot(deployments: RoutedDeployment[], keys: string[]): RoutingSnapshot {
  return { modelIds: ['m1'], deployments, environments: [], routes: [], keyHashes: keys.map(hashApiKey) };
}

describe('Gateway: fed by snapshots and replica pushes', function () {
  this.timeout(30_000);
  let gateway: Gateway;
  let base: string;
  const standIns: StandInReplica[] = [];
  const wakes: string[] = [];
  const url = (deploymentId: string): string => `${base}/models/m1/deployment/${deploymentId}/predict`;
  const auth = (key: string): Record<string, string> => ({ authorization: `Api-Key ${key}` });

  async function standIn(id: string): Promise<StandInReplica> {
    const started = await new StandInReplica().start(id);
    standIns.push(started);
    return started;
  }

  beforeEach(async () => {
    wakes.length = 0;
    gateway = new Gateway({
      log: () => {},
      wake: async (deploymentId) => {
        wakes.push(deploymentId);
        return true;
      },
    });
    base = `http://127.0.0.1:${await gateway.listen(0, '127.0.0.1')}`;
  });

  afterEach(async () => {
    await gateway.close();
    await Promise.all(standIns.splice(0).map((s) => s.stop()));
  });

  it('refuses a revoked key from the first request after the snapshot that drops it', async () => {
    const replica = await standIn('r1');
    gateway.applyRouting(snapshot([deployment('d1')], [KEEP, REVOKE]));
    gateway.applyReplicas({ d1: [replica.replica] });
    assert.equal((await send(url('d1'), { body: '{}', headers: auth(REVOKE) })).status, 200);
    assert.equal((await send(url('d1'), { body: '{}', headers: auth(REVOKE) })).status, 200); // its hash now cached
    gateway.applyRouting(snapshot([deployment('d1')], [KEEP]));
    const refused = await send(url('d1'), { body: '{}', headers: auth(REVOKE) });
    assert.equal(refused.status, 401);
    assert.equal(JSON.parse(refused.body).error.code, 'unauthorized');
    assert.equal((await send(url('d1'), { body: '{}', headers: auth(KEEP) })).status, 200);
    assert.equal(replica.received, 3);
  });

  it('releases a waiting request on the push that brings a ready replica, and on no other push', async () => {
    gateway.applyRouting(snapshot([deployment('d1'), deployment('d2')], [KEEP]));
    const answer = send(url('d1'), { body: '{}', headers: auth(KEEP) });
    await eventually('the request queued', async () => (gateway.queued('d1') === 1 ? true : undefined));
    const other = await standIn('other');
    // Pushes that give d1 nothing: the request stays queued after each.
    gateway.applyRouting(snapshot([deployment('d1'), deployment('d2')], [KEEP]));
    assert.equal(gateway.queued('d1'), 1);
    gateway.applyReplicas({ d2: [other.replica] });
    assert.equal(gateway.queued('d1'), 1);
    gateway.applyReplicas({ d1: [], d2: [other.replica] });
    assert.equal(gateway.queued('d1'), 1);
    const replica = await standIn('r1');
    gateway.applyReplicas({ d1: [replica.replica], d2: [other.replica] });
    assert.equal(gateway.queued('d1'), 0, 'released by the push itself');
    assert.equal((await answer).status, 200);
    assert.equal(replica.received, 1);
    assert.equal(other.received, 0);
  });

  it('wakes a sleeping deployment for a waiting request, and answers it 404 when a snapshot removes the deployment', async () => {
    gateway.applyRouting(snapshot([deployment('asleep', 0)], [KEEP]));
    const answer = send(url('asleep'), { body: '{}', headers: auth(KEEP) });
    await eventually('the request queued', async () => (gateway.queued('asleep') === 1 ? true : undefined));
    assert.deepEqual(wakes, ['asleep']);
    gateway.applyRouting(snapshot([], [KEEP]));
    const gone = await answer;
    assert.equal(gone.status, 404);
    assert.equal(JSON.parse(gone.body).error.code, 'not_found');
    assert.equal(gateway.queued('asleep'), 0);
    assert.equal(gateway.inFlight('asleep'), 0);
    // Nothing is kept of a deployment the snapshots no longer have.
    assert.deepEqual(Object.keys(gateway.demandReport().deployments), []);
  });

  it("answers a request Node's parser refuses with a JSON error, which the client reads even while it sends a body", async () => {
    const { port } = new URL(base);
    const raw = (request: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = net.connect(Number(port), '127.0.0.1');
        let answer = '';
        socket.on('data', (chunk) => (answer += chunk.toString()));
        socket.on('end', () => resolve(answer));
        socket.on('error', reject);
        socket.write(request);
      });
    // A method HTTP does not know, with a body (what the fuzzer sent): 50 times, never a reset before the answer.
    for (let i = 0; i < 50; i++) {
      const answer = await raw('0 /models/m1/production/predict HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nszrgOsr72R');
      const [head, body] = answer.split('\r\n\r\n');
      assert.match(head!, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.match(head!, /\r\nconnection: close/);
      assert.equal(JSON.parse(body!).error.code, 'bad_request');
    }
    const tooLarge = await raw(`POST /models/m1/production/predict HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(20_000)}\r\n\r\n`);
    assert.match(tooLarge, /^HTTP\/1\.1 431 /);
    assert.equal(JSON.parse(tooLarge.split('\r\n\r\n')[1]!).error.code, 'headers_too_large');
  });

  it('answers a waiting request 503 as soon as the gateway closes, and closes', async () => {
    gateway.applyRouting(snapshot([deployment('asleep', 0)], [KEEP]));
    const answer = send(url('asleep'), { body: '{}', headers: auth(KEEP) });
    await eventually('the request queued', async () => (gateway.queued('asleep') === 1 ? true : undefined));
    // The wait's own deadline (GANTRY_WAKE_TIMEOUT_SECONDS' default) is far beyond this test's timeout.
    await gateway.close();
    const refused = await answer;
    assert.equal(refused.status, 503);
    assert.equal(JSON.parse(refused.body).error.code, 'unavailable');
    assert.equal(gateway.queued('asleep'), 0);
  });
});
