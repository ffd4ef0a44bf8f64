import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { hashApiKey } from '../../src/auth/key-hash';
import { Gateway } from '../../src/node/gateway/gateway';
import { pushRouting } from '../helpers/gateway-feed';
import { DEFAULT_AUTOSCALING } from '../../src/shared/schemas';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { send } from './support/http';

const KEY = 'gateway-test-key-0123456789';
const AUTH = { authorization: `Api-Key ${KEY}` };

/** What the stand-in API saw of one request. */
interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe('Gateway: wake and the async routes passed on to the API', function () {
  this.timeout(30_000);
  let dir: string;
  let store: SqliteStore;
  let gateway: Gateway;
  let base: string;
  let modelId = '';
  let sleeping = '';
  let building = '';
  const woken: string[] = [];
  let wakeFails = false;
  const seen: Seen[] = [];
  /** What the stand-in API does with a request once read. */
  let answer: (res: http.ServerResponse) => void = () => {};
  const api = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
      answer(res);
    });
  });
  let apiPort = 0;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-gateway-wake-'));
    store = new SqliteStore(path.join(dir, 'gantry.db'));
    await store.createApiKey({ name: 'test', prefix: 'gateway', secretHash: hashApiKey(KEY), role: 'admin' });
    modelId = (await store.findOrCreateModel('sleepy')).id;
    const create = async (name: string, status: 'SCALED_TO_ZERO' | 'BUILDING') => {
      const deployment = await store.createDeployment({ model_id: modelId, name, kind: 'published', labels: {}, autoscaling: DEFAULT_AUTOSCALING });
      await store.updateDeployment(deployment.id, { status, desired_replicas: 0 });
      return deployment.id;
    };
    sleeping = await create('sleeping', 'SCALED_TO_ZERO');
    building = await create('building', 'BUILDING');
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    apiPort = (api.address() as AddressInfo).port;
    gateway = new Gateway({
      wake: async (deploymentId) => {
        if (wakeFails) throw new Error('SQLITE_BUSY: database is locked');
        woken.push(deploymentId);
        return woken.length === 1;
      },
      apiUrl: `http://127.0.0.1:${apiPort}`,
      log: () => {},
    });
    await pushRouting(gateway, store);
    base = `http://127.0.0.1:${await gateway.listen(0, '127.0.0.1')}`;
  });

  afterEach(() => {
    seen.length = 0;
    woken.length = 0;
    wakeFails = false;
  });

  after(async () => {
    await gateway.close();
    api.closeAllConnections();
    await new Promise((resolve) => api.close(resolve));
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('wakes a deployment: 202 with what was woken; already awake is 202 too', async () => {
    const first = await send(`${base}/models/${modelId}/deployment/${sleeping}/wake`, { headers: AUTH });
    assert.equal(first.status, 202, first.body);
    assert.equal(first.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(first.body), { model_id: modelId, deployments: [{ id: sleeping, name: 'sleeping', woken: true }] });
    const again = await send(`${base}/deployment/${sleeping}/wake`, { headers: { ...AUTH, host: `model-${modelId}.localhost` } });
    assert.equal(again.status, 202, again.body);
    assert.deepEqual(JSON.parse(again.body).deployments, [{ id: sleeping, name: 'sleeping', woken: false }]);
    assert.deepEqual(woken, [sleeping, sleeping]);
  });

  it('answers a malformed path 400 or 404 in JSON, not a 502 (found by the fuzzing)', async () => {
    const cases: [string, number][] = [
      ['//', 404],
      [`/models/%zz/production/predict`, 404],
      [`/models/${modelId}/environments/%E0%A4%A/predict`, 404],
      [`/models/${modelId}/deployment/%C0%AF/wake`, 404],
    ];
    for (const [route, status] of cases) {
      const answer = await send(`${base}${route}`, { headers: AUTH });
      assert.equal(answer.status, status, `${route}: ${answer.body}`);
      assert.equal(answer.headers['content-type'], 'application/json');
      assert.equal(typeof JSON.parse(answer.body).error.code, 'string');
    }
    assert.deepEqual(woken, []);
  });

  it('refuses a wake as predict does, in JSON, and wakes nothing', async () => {
    const cases: [string, Record<string, string>, string, number, string][] = [
      ['POST', AUTH, `/models/nope/production/wake`, 404, 'not_found'],
      ['POST', AUTH, `/models/${modelId}/production/wake`, 404, 'not_found'], // no production yet
      ['POST', AUTH, `/models/${modelId}/deployment/${building}/wake`, 503, 'unavailable'],
      ['GET', AUTH, `/models/${modelId}/deployment/${sleeping}/wake`, 405, 'method_not_allowed'],
      ['POST', {}, `/models/${modelId}/deployment/${sleeping}/wake`, 401, 'unauthorized'],
      ['POST', { authorization: 'Api-Key wrong-key-0123456789' }, `/models/${modelId}/deployment/${sleeping}/wake`, 401, 'unauthorized'],
    ];
    for (const [method, headers, route, status, code] of cases) {
      const answer = await send(`${base}${route}`, { method, headers });
      assert.equal(answer.status, status, `${method} ${route}: ${answer.body}`);
      assert.equal(JSON.parse(answer.body).error.code, code, route);
    }
    assert.deepEqual(woken, []);
  });

  it('answers 503 JSON when the wake cannot be written', async () => {
    wakeFails = true;
    const answer = await send(`${base}/models/${modelId}/deployment/${sleeping}/wake`, { headers: AUTH });
    assert.equal(answer.status, 503);
    assert.match(JSON.parse(answer.body).error.message, /could not be woken now \(SQLITE_BUSY: database is locked\)/);
  });

  it('passes async_predict on to the API: method, path, query, Authorization and body; status, headers and body back', async () => {
    answer = (res) => res.writeHead(201, { 'content-type': 'application/json', 'x-request-trace': 't-1' }).end('{"request_id":"r-1"}');
    const body = JSON.stringify({ model_input: { x: 1 }, webhook_endpoint: 'http://127.0.0.1:1/hook' });
    const result = await send(`${base}/models/${modelId}/environments/st%20g/async_predict?debug=1`, { body, headers: AUTH });
    assert.equal(result.status, 201);
    assert.equal(result.headers['x-request-trace'], 't-1');
    assert.equal(result.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(result.body), { request_id: 'r-1' });
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.method, 'POST');
    assert.equal(seen[0]!.url, `/models/${modelId}/environments/st%20g/async_predict?debug=1`);
    assert.equal(seen[0]!.headers.authorization, AUTH.authorization);
    assert.equal(seen[0]!.headers['content-type'], 'application/json');
    assert.equal(seen[0]!.body, body);
  });

  it('rewrites the Host-based forms to /models/{id}/… and passes GET and DELETE on', async () => {
    answer = (res) => res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"not_found","message":"no such request"}}');
    const host = { ...AUTH, host: `model-${modelId}.localhost:8081` };
    const get = await send(`${base}/async_request/r-9`, { method: 'GET', headers: host });
    const cancel = await send(`${base}/async_request/r-9`, { method: 'DELETE', headers: host });
    const queue = await send(`${base}/production/async_queue_status`, { method: 'GET', headers: host });
    assert.deepEqual([get.status, cancel.status, queue.status], [404, 404, 404]);
    assert.equal(JSON.parse(get.body).error.message, 'no such request');
    assert.deepEqual(
      seen.map((s) => `${s.method} ${s.url}`),
      [`GET /models/${modelId}/async_request/r-9`, `DELETE /models/${modelId}/async_request/r-9`, `GET /models/${modelId}/production/async_queue_status`],
    );
  });

  it('streams the answer: the first chunk arrives before the API writes the last', async () => {
    let finish: () => void = () => {};
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first;');
      finish = () => res.end('last');
    };
    const received = await new Promise<string>((resolve, reject) => {
      const request = http.request(`${base}/models/${modelId}/async_request/r-2`, { method: 'GET', headers: AUTH, agent: false }, (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => {
          text += chunk.toString();
          if (text === 'first;') finish();
        });
        response.once('end', () => resolve(text));
      });
      request.once('error', reject);
      request.end();
    });
    assert.equal(received, 'first;last');
  });

  it('does not pass on a request without a valid key', async () => {
    const answer = await send(`${base}/models/${modelId}/production/async_predict`, { body: '{}' });
    assert.equal(answer.status, 401);
    assert.equal(seen.length, 0);
  });

  it('answers 503 JSON when the API is not reachable', async () => {
    api.closeAllConnections();
    await new Promise((resolve) => api.close(resolve));
    const answer = await send(`${base}/models/${modelId}/production/async_predict`, { body: '{"model_input":{}}', headers: AUTH });
    assert.equal(answer.status, 503);
    assert.equal(answer.headers['content-type'], 'application/json');
    const error = JSON.parse(answer.body).error;
    assert.equal(error.code, 'unavailable');
    assert.match(error.message, new RegExp(`^the API is not reachable at http://127\\.0\\.0\\.1:${apiPort} \\(ECONNREFUSED\\)`));
  });
});
