/**
 * Request ids and access logs, over real HTTP: the gateway and the API accept a safe
 * `x-request-id` or make one, answer it, pass it on to the replica, and log one JSON line per
 * request with it (and never the query).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import express from 'express';
import { requestLog } from '../../src/api/request-log';
import { hashApiKey } from '../../src/auth/key-hash';
import { createLogger, LOG_LINE_KEYS } from '../../src/logging/logger';
import { isAcceptableRequestId, MAX_REQUEST_ID_LENGTH, requestIdFor } from '../../src/logging/request-id';
import { Gateway } from '../../src/node/gateway/gateway';
import { readRoutingSnapshot } from '../../src/node/routing-snapshot';
import { DEFAULT_AUTOSCALING, modelConfigSchema } from '../../src/shared/schemas';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { eventually } from '../helpers/ports';
import { send } from './support/http';

const KEY = 'request-id-test-key-0123456789';
const AUTH = { authorization: `Api-Key ${KEY}` };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A logger for process `name` whose JSON lines land in `lines`. */
function capturingLogger(name: string, lines: Record<string, unknown>[]) {
  return createLogger(name, { level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
}

describe('request ids', () => {
  it('accepts a bounded id of safe characters and makes a new one otherwise', () => {
    for (const good of ['abc-123', 'A_b.c:d@e+f=g', 'x'.repeat(MAX_REQUEST_ID_LENGTH), '4f1c2a7e-5d3b-4c1a-9e2f-0a1b2c3d4e5f']) {
      assert.ok(isAcceptableRequestId(good), good);
      assert.equal(requestIdFor(good), good);
    }
    for (const bad of ['', 'x'.repeat(MAX_REQUEST_ID_LENGTH + 1), 'has space', 'new\nline', 'quote"d', 'a/b', 'ünï', '<script>', 'tab\t']) {
      assert.ok(!isAcceptableRequestId(bad), JSON.stringify(bad));
      assert.match(requestIdFor(bad), UUID);
    }
    assert.match(requestIdFor(undefined), UUID);
    assert.notEqual(requestIdFor(undefined), requestIdFor(undefined));
    assert.equal(requestIdFor(['first-1', 'second-2']), 'first-1');
  });

  describe('through the gateway', function () {
    this.timeout(30_000);
    let dir: string;
    let store: SqliteStore;
    let gateway: Gateway;
    let replica: http.Server;
    let base: string;
    let modelId = '';
    let deploymentId = '';
    const lines: Record<string, unknown>[] = [];
    const received: http.IncomingHttpHeaders[] = [];

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-request-ids-'));
      store = new SqliteStore(path.join(dir, 'gantry.db'));
      await store.createApiKey({ name: 'test', prefix: 'reqid', secretHash: hashApiKey(KEY), role: 'admin' });
      modelId = (await store.findOrCreateModel('ids')).id;
      const deployment = await store.createDeployment({ model_id: modelId, name: 'one', kind: 'published', labels: {}, autoscaling: DEFAULT_AUTOSCALING });
      await store.updateDeployment(deployment.id, { config: modelConfigSchema.parse({}), env_key: 'e', status: 'ACTIVE', desired_replicas: 1 });
      deploymentId = deployment.id;
      replica = http.createServer((req, res) => {
        received.push(req.headers);
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
      await new Promise<void>((resolve) => replica.listen(0, '127.0.0.1', resolve));
      gateway = new Gateway({ log: () => {}, logger: capturingLogger('node', lines) });
      gateway.applyRouting(await readRoutingSnapshot(store));
      gateway.applyReplicas({ [deploymentId]: [{ id: 'r1', port: (replica.address() as AddressInfo).port }] });
      base = `http://127.0.0.1:${await gateway.listen(0, '127.0.0.1')}`;
    });

    beforeEach(() => {
      lines.length = 0;
      received.length = 0;
    });

    after(async () => {
      await gateway.close();
      replica.closeAllConnections();
      await new Promise((resolve) => replica.close(resolve));
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('answers, passes on and logs the id the client sent', async () => {
      const answer = await send(`${base}/models/${modelId}/deployment/${deploymentId}/predict?token=hush-hush`, { body: '{}', headers: { ...AUTH, 'x-request-id': 'abc-123' } });
      assert.equal(answer.status, 200);
      assert.equal(answer.headers['x-request-id'], 'abc-123');
      assert.equal(received.length, 1);
      assert.equal(received[0]!['x-request-id'], 'abc-123', 'the replica got it');
      await eventually('the access log line', async () => (lines.length === 1 ? true : undefined));
      const line = lines[0]!;
      for (const key of LOG_LINE_KEYS) assert.equal(typeof line[key], 'string', key);
      assert.equal(line.process, 'node');
      assert.equal(line.level, 'info');
      assert.equal(line.requestId, 'abc-123');
      assert.equal(line.method, 'POST');
      assert.equal(line.path, `/models/${modelId}/deployment/${deploymentId}/predict`);
      assert.equal(line.status, 200);
      assert.equal(line.modelId, modelId);
      assert.equal(line.deploymentId, deploymentId);
      assert.equal(typeof line.durationMs, 'number');
      assert.ok(!JSON.stringify(line).includes('hush-hush'), 'no query in the log');
    });

    it('makes an id when the client sent none or an unsafe one, also for refused requests', async () => {
      const made = await send(`${base}/models/${modelId}/deployment/${deploymentId}/predict`, { body: '{}', headers: AUTH });
      const unsafe = await send(`${base}/models/${modelId}/deployment/${deploymentId}/predict`, { body: '{}', headers: { ...AUTH, 'x-request-id': 'x'.repeat(200) } });
      const refused = await send(`${base}/models/${modelId}/deployment/${deploymentId}/predict`, { body: '{}', headers: { 'x-request-id': 'no-key-1' } });
      const ids = [made, unsafe].map((answer) => answer.headers['x-request-id'] as string);
      for (const id of ids) assert.match(id, UUID);
      assert.notEqual(ids[0], ids[1]);
      assert.deepEqual(
        received.map((headers) => headers['x-request-id']),
        ids,
        'the replica got the ids answered',
      );
      assert.equal(refused.status, 401);
      assert.equal(refused.headers['x-request-id'], 'no-key-1');
      await eventually('three access log lines', async () => (lines.length === 3 ? true : undefined));
      assert.deepEqual(
        lines.map((line) => [line.requestId, line.status]),
        [
          [ids[0], 200],
          [ids[1], 200],
          ['no-key-1', 401],
        ],
      );
    });
  });

  describe('through the API', () => {
    it('answers and logs the id with the route matched, and never the query', async () => {
      const lines: Record<string, unknown>[] = [];
      const app = express();
      app.use(requestLog(capturingLogger('api', lines)));
      app.get('/v1/models/:model', (_req, res) => {
        res.json({ ok: true });
      });
      const server = app.listen(0, '127.0.0.1');
      await new Promise<void>((resolve) => server.once('listening', resolve));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      try {
        const given = await send(`${base}/v1/models/m1?secret=hush-hush`, { method: 'GET', headers: { 'x-request-id': 'abc-123' } });
        const made = await send(`${base}/v1/nowhere`, { method: 'GET', headers: { 'x-request-id': 'bad id' } });
        assert.equal(given.headers['x-request-id'], 'abc-123');
        assert.match(made.headers['x-request-id'] as string, UUID);
        await eventually('two access log lines', async () => (lines.length === 2 ? true : undefined));
        const [first, second] = lines;
        assert.deepEqual(
          { requestId: first!.requestId, process: first!.process, method: first!.method, path: first!.path, route: first!.route, status: first!.status },
          { requestId: 'abc-123', process: 'api', method: 'GET', path: '/v1/models/m1', route: '/v1/models/:model', status: 200 },
        );
        assert.deepEqual([second!.requestId, second!.path, second!.status, second!.route], [made.headers['x-request-id'], '/v1/nowhere', 404, undefined]);
        assert.ok(!JSON.stringify(lines).includes('hush-hush'));
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });
});
