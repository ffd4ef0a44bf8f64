/**
 * The gateway's `GET /metrics` over real HTTP, against stand-in replicas: the key it needs, and
 * each count (answers by status, retries, upstream errors, waits, wake-ups, in flight) moving by
 * exactly what the requests did.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hashApiKey } from '../../src/auth/key-hash';
import { Gateway } from '../../src/node/gateway/gateway';
import { DEFAULT_AUTOSCALING, modelConfigSchema } from '../../src/shared/schemas';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { pushReplicas, pushRouting } from '../helpers/gateway-feed';
import { eventually } from '../helpers/ports';
import { StandInReplica as StandIn } from '../helpers/stand-in-replica';
import { parsePrometheusText, sumOf, type PrometheusSample } from '../helpers/prometheus';
import { send, startRequest } from './support/http';

const KEY = 'gateway-metrics-key-0123456789';
const AUTH = { authorization: `Api-Key ${KEY}` };

describe('Gateway: GET /metrics', function () {
  this.timeout(30_000);
  let dir: string;
  let store: SqliteStore;
  let gateway: Gateway;
  let base: string;
  let modelId = '';
  const ids = { serving: '', sleeping: '' };
  const replicas = new Map<string, StandIn[]>();
  /** Makes `standIns` the deployment's ready replicas, pushed into the gateway as the node does. */
  const setReplicas = (deploymentId: string, standIns: StandIn[]): void => {
    replicas.set(deploymentId, standIns);
    pushReplicas(gateway, replicas);
  };
  const standIns: StandIn[] = [];
  let wakes = 0;

  async function scrape(): Promise<PrometheusSample[]> {
    const answer = await send(`${base}/metrics`, { method: 'GET', headers: AUTH });
    assert.equal(answer.status, 200, answer.body);
    return parsePrometheusText(answer.body);
  }

  /** Waits until the gateway has counted `count` answers for the labels (a count lands when the answer's connection closes). */
  async function counted(labels: Record<string, string>, count: number): Promise<PrometheusSample[]> {
    return eventually(
      `${count} answers counted for ${JSON.stringify(labels)}`,
      async () => {
        const samples = await scrape();
        return sumOf(samples, 'gantry_gateway_requests_total', labels) === count ? samples : undefined;
      },
      5000,
      20,
    );
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-gateway-metrics-'));
    store = new SqliteStore(path.join(dir, 'gantry.db'));
    await store.createApiKey({ name: 'test', prefix: 'gateway', secretHash: hashApiKey(KEY), role: 'admin' });
    const model = await store.findOrCreateModel('metered');
    modelId = model.id;
    for (const name of Object.keys(ids) as (keyof typeof ids)[]) {
      const deployment = await store.createDeployment({ model_id: modelId, name, kind: 'published', labels: {}, autoscaling: DEFAULT_AUTOSCALING });
      const sleeping = name === 'sleeping';
      await store.updateDeployment(deployment.id, {
        config: modelConfigSchema.parse({ runtime: { predict_timeout_seconds: 1 } }),
        env_key: 'e',
        status: sleeping ? 'SCALED_TO_ZERO' : 'ACTIVE',
        desired_replicas: sleeping ? 0 : 1,
      });
      ids[name] = deployment.id;
    }
    await store.adoptIfNoCurrentDeployment(modelId, 'production', ids.serving);
    gateway = new Gateway({
      wake: async () => {
        wakes++;
        return true;
      },
      log: () => {},
    });
    await pushRouting(gateway, store);
    base = `http://127.0.0.1:${await gateway.listen(0, '127.0.0.1')}`;
  });

  after(async () => {
    await gateway.close();
    await Promise.all(standIns.map((standIn) => standIn.stop()));
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses /metrics without a valid key (401 JSON), takes only GET, and is not counted as inference', async () => {
    const refusals: Record<string, string>[] = [{}, { authorization: 'Api-Key not-a-key-of-this-gateway' }];
    for (const headers of refusals) {
      const refused = await send(`${base}/metrics`, { method: 'GET', headers });
      assert.equal(refused.status, 401);
      assert.match(String(refused.headers['content-type']), /^application\/json/);
      assert.equal(JSON.parse(refused.body).error.code, 'unauthorized');
    }
    const posted = await send(`${base}/metrics`, { method: 'POST', headers: AUTH });
    assert.equal(posted.status, 405);
    const bearer = await send(`${base}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(bearer.status, 200);
    assert.match(String(bearer.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(bearer.body, /^# HELP gantry_gateway_requests_total /m);
    assert.equal(sumOf(parsePrometheusText(bearer.body), 'gantry_gateway_requests_total'), 0);
  });

  it('counts answers by deployment, environment and status, with their latency', async () => {
    const replica = await new StandIn().start('serving-a');
    standIns.push(replica);
    setReplicas(ids.serving, [replica]);
    for (let i = 0; i < 3; i++) assert.equal((await send(`${base}/models/${modelId}/production/predict`, { body: '{}', headers: AUTH })).status, 200);
    assert.equal((await send(`${base}/models/${modelId}/deployment/${ids.serving}/predict`, { body: '{}', headers: AUTH })).status, 200);
    assert.equal((await send(`${base}/models/${modelId}/production/predict`, { body: '{}' })).status, 401);
    assert.equal((await send(`${base}/models/${modelId}/environments/nowhere/predict`, { body: '{}', headers: AUTH })).status, 404);
    const samples = await counted({ model_id: modelId, deployment_id: ids.serving }, 4);
    const labels = { model_id: modelId, deployment_id: ids.serving };
    assert.equal(sumOf(samples, 'gantry_gateway_requests_total', { ...labels, environment: 'production', status_code: '200' }), 3);
    assert.equal(sumOf(samples, 'gantry_gateway_requests_total', { ...labels, environment: '', status_code: '200' }), 1);
    assert.equal(sumOf(samples, 'gantry_gateway_requests_total', { deployment_id: '', status_code: '401' }), 1);
    assert.equal(sumOf(samples, 'gantry_gateway_requests_total', { deployment_id: '', status_code: '404' }), 1);
    assert.equal(sumOf(samples, 'gantry_gateway_request_duration_seconds_count', { ...labels, environment: 'production' }), 3);
    assert.equal(sumOf(samples, 'gantry_gateway_requests_in_flight', labels), 0);
  });

  it('counts a refused replica as an upstream error and a retry, and a timeout as an upstream error and a 504', async () => {
    const refusing = await new StandIn().start('serving-refusing');
    const working = await new StandIn().start('serving-working');
    standIns.push(refusing, working);
    await refusing.stop(); // its port now refuses
    setReplicas(ids.serving, [refusing, working]);
    const before = await scrape();
    const labels = { model_id: modelId, deployment_id: ids.serving };
    const errors = (samples: PrometheusSample[], kind: string): number => sumOf(samples, 'gantry_gateway_upstream_errors_total', { ...labels, kind });
    const retries = (samples: PrometheusSample[]): number => sumOf(samples, 'gantry_gateway_upstream_retries_total', labels);
    // Least in flight first, then round robin: two requests pick the refusing replica once at least.
    const answers = await Promise.all([0, 1, 2, 3].map(() => send(`${base}/models/${modelId}/deployment/${ids.serving}/predict`, { body: '{}', headers: AUTH })));
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200],
    );
    const afterRefusals = await scrape();
    const refusals = errors(afterRefusals, 'unavailable') - errors(before, 'unavailable');
    assert.ok(refusals >= 1, `refusals counted: ${refusals}`);
    assert.equal(retries(afterRefusals) - retries(before), refusals, 'every refusal was tried again elsewhere');

    working.behaviour = () => {}; // never answers: 504 after predict_timeout_seconds (1 s)
    setReplicas(ids.serving, [working]);
    assert.equal((await send(`${base}/models/${modelId}/deployment/${ids.serving}/predict`, { body: '{}', headers: AUTH })).status, 504);
    const afterTimeout = await counted({ ...labels, status_code: '504' }, 1);
    assert.equal(errors(afterTimeout, 'timeout') - errors(before, 'timeout'), 1);
    assert.equal(sumOf(afterTimeout, 'gantry_gateway_requests_in_flight', labels), 0);
  });

  it('counts a wait for a replica, the wake-up it asked for, and the client that left (499)', async () => {
    const labels = { model_id: modelId, deployment_id: ids.sleeping };
    const request = startRequest(`${base}/models/${modelId}/deployment/${ids.sleeping}/predict`, '{}', AUTH);
    const waiting = await eventually(
      'the request waiting and the wake-up counted',
      async () => {
        const samples = await scrape();
        return sumOf(samples, 'gantry_gateway_replica_waiting_requests', labels) === 1 && sumOf(samples, 'gantry_gateway_wakeups_total', { ...labels, trigger: 'request' }) === 1
          ? samples
          : undefined;
      },
      5000,
      20,
    );
    assert.equal(sumOf(waiting, 'gantry_gateway_requests_in_flight', labels), 1);
    request.destroy();
    // The answer is counted when the connection closes; the wait ends at the queue's next look (25 ms).
    const left = await eventually(
      'the wait ended by the client leaving',
      async () => {
        const samples = await scrape();
        return sumOf(samples, 'gantry_gateway_replica_wait_seconds_count', labels) === 1 ? samples : undefined;
      },
      5000,
      20,
    );
    assert.equal(sumOf(left, 'gantry_gateway_requests_total', { ...labels, status_code: '499' }), 1);
    assert.equal(sumOf(left, 'gantry_gateway_requests_total', labels), 1);
    assert.equal(sumOf(left, 'gantry_gateway_replica_wait_seconds_count', { ...labels, outcome: 'client_gone' }), 1);
    assert.equal(sumOf(left, 'gantry_gateway_replica_waiting_requests', labels), 0);
    assert.equal(sumOf(left, 'gantry_gateway_requests_in_flight', labels), 0);

    const wakesBefore = wakes;
    const woken = await send(`${base}/models/${modelId}/deployment/${ids.sleeping}/wake`, { body: '{}', headers: AUTH });
    assert.equal(woken.status, 202, woken.body);
    assert.equal(wakes, wakesBefore + 1);
    // A wake names no single deployment to serve it: its answer is counted without one.
    const afterWake = await counted({ model_id: '', deployment_id: '', status_code: '202' }, 1);
    assert.equal(sumOf(afterWake, 'gantry_gateway_wakeups_total', { ...labels, trigger: 'wake_endpoint' }), 1);
  });
});
