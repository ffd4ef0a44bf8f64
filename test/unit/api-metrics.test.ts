/**
 * The API's control-plane metrics, read from a real SQLite store at scrape time: the latest
 * promotion of each environment (not an older one, not one of a deleted environment),
 * promotions by status, deployments by status, replicas desired and ready.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { createApp } from '../../src/api/app';
import { hashApiKey } from '../../src/auth/key-hash';
import { homePaths } from '../../src/home';
import { createLogger } from '../../src/logging/logger';
import { ApiMetrics } from '../../src/metrics/api-metrics';
import type { WorkflowsClient } from '../../src/temporal/workflows-client';
import { failingStore } from './support/failing-store';
import { DEFAULT_AUTOSCALING, DEFAULT_PROMOTION_SETTINGS } from '../../src/shared/schemas';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import type { PromotionRecord } from '../../src/store/store';
import { parsePrometheusText, seriesOf, sumOf } from '../helpers/prometheus';

describe('ApiMetrics: the control plane read from the store at scrape time', () => {
  let dir: string;
  let store: SqliteStore;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-api-metrics-'));
    store = new SqliteStore(path.join(dir, 'gantry.db'));
  });

  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('shows the latest promotion of each existing environment, promotions by status, deployments and replicas', async () => {
    const model = await store.findOrCreateModel('scraped');
    const deployment = async (status: 'ACTIVE' | 'SCALED_TO_ZERO' | 'BUILDING', desired: number): Promise<string> => {
      const d = await store.createDeployment({ model_id: model.id, kind: 'published', labels: {}, autoscaling: DEFAULT_AUTOSCALING });
      await store.updateDeployment(d.id, { status, desired_replicas: desired });
      return d.id;
    };
    const [a, b, c] = [await deployment('SCALED_TO_ZERO', 0), await deployment('ACTIVE', 2), await deployment('BUILDING', 0)];
    await store.createEnvironment(model.id, 'staging', DEFAULT_PROMOTION_SETTINGS);
    await store.createEnvironment(model.id, 'doomed', DEFAULT_PROMOTION_SETTINGS);
    const promotion = async (id: string, environment: string, startedAt: number, fields: Partial<PromotionRecord>): Promise<void> => {
      await store.createPromotion({
        id,
        model_id: model.id,
        environment,
        candidate_deployment_id: b,
        previous_deployment_id: a,
        status: 'RAMPING_UP',
        step: 0,
        total_steps: 4,
        percent_traffic_to_new_version: 0,
        candidate_replicas: 0,
        previous_replicas: 0,
        settings: DEFAULT_PROMOTION_SETTINGS,
        message: null,
        actor: 'test',
        workflow_id: `w-${id}`,
        started_at: new Date(startedAt).toISOString(),
      });
      await store.updatePromotion(id, fields);
    };
    const t0 = Date.now() - 60_000;
    await promotion('old', 'production', t0, { status: 'FAILED', step: 1, percent_traffic_to_new_version: 0, ended_at: new Date(t0 + 1000).toISOString() });
    await promotion('new', 'production', t0 + 2000, { status: 'RAMPING_UP', step: 2, percent_traffic_to_new_version: 50 });
    await promotion('staged', 'staging', t0, { status: 'SUCCEEDED', step: 4, percent_traffic_to_new_version: 100, ended_at: new Date(t0 + 1000).toISOString() });
    await promotion('gone', 'doomed', t0, { status: 'SUCCEEDED', step: 4, percent_traffic_to_new_version: 100, ended_at: new Date(t0 + 1000).toISOString() });
    await store.deleteEnvironment(model.id, 'doomed');
    await store.reportReplicas('n1', [
      {
        id: 'r1',
        deployment_id: b,
        node_id: 'n1',
        state: 'READY',
        pid: 1,
        port: 1,
        restarts: 0,
        last_exit: null,
        last_error: null,
        revision: 0,
        reload_error: null,
        started_at: new Date().toISOString(),
        ready_at: new Date().toISOString(),
        updated_at: new Date().toISOString(),
      },
      {
        id: 'r2',
        deployment_id: b,
        node_id: 'n1',
        state: 'STARTING',
        pid: 2,
        port: null,
        restarts: 0,
        last_exit: null,
        last_error: null,
        revision: 0,
        reload_error: null,
        started_at: new Date().toISOString(),
        ready_at: null,
        updated_at: new Date().toISOString(),
      },
    ] as never);

    const metrics = new ApiMetrics(store);
    const samples = parsePrometheusText(await metrics.registry.metrics());
    const env = (environment: string) => ({ model_id: model.id, environment });
    assert.equal(sumOf(samples, 'gantry_promotion_step', env('production')), 2, 'the latest promotion, not the older one');
    assert.equal(sumOf(samples, 'gantry_promotion_traffic_percent', env('production')), 50);
    assert.equal(sumOf(samples, 'gantry_promotion_total_steps', env('production')), 4);
    assert.equal(sumOf(samples, 'gantry_promotion_in_flight', env('production')), 1);
    assert.equal(sumOf(samples, 'gantry_promotion_in_flight', env('staging')), 0);
    assert.equal(sumOf(samples, 'gantry_promotion_traffic_percent', env('staging')), 100);
    assert.deepEqual(
      seriesOf(samples, 'gantry_promotion_info')
        .map((s) => [s.labels.environment, s.labels.promotion_id, s.labels.status])
        .sort(),
      [
        ['production', 'new', 'RAMPING_UP'],
        ['staging', 'staged', 'SUCCEEDED'],
      ],
    );
    assert.equal(seriesOf(samples, 'gantry_promotion_step', env('doomed')).length, 0, 'no series for a deleted environment');
    assert.equal(sumOf(samples, 'gantry_promotions', { ...env('production'), status: 'FAILED' }), 1);
    assert.equal(sumOf(samples, 'gantry_promotions', { ...env('production'), status: 'RAMPING_UP' }), 1);
    assert.equal(sumOf(samples, 'gantry_promotions', { ...env('doomed'), status: 'SUCCEEDED' }), 1, 'counted from the promotions table, ended ones kept');
    assert.equal(sumOf(samples, 'gantry_deployments', { model_id: model.id, status: 'ACTIVE' }), 1);
    assert.equal(sumOf(samples, 'gantry_deployments', { model_id: model.id }), 3);
    assert.equal(sumOf(samples, 'gantry_deployment_replicas_desired', { deployment_id: b }), 2);
    assert.equal(sumOf(samples, 'gantry_deployment_replicas_ready', { deployment_id: b }), 1, 'a STARTING replica is not ready');
    assert.equal(sumOf(samples, 'gantry_deployment_replicas_ready', { deployment_id: c }), 0);
    assert.deepEqual(
      seriesOf(samples, 'gantry_deployment_info', { deployment_id: c }).map((s) => [s.labels.model_name, s.labels.status]),
      [['scraped', 'BUILDING']],
    );

    // Read again at the next scrape: a deleted deployment's series go.
    await store.updateDeployment(c, { deleted_at: new Date().toISOString() });
    const later = parsePrometheusText(await metrics.registry.metrics());
    assert.equal(seriesOf(later, 'gantry_deployment_replicas_desired', { deployment_id: c }).length, 0);
    assert.equal(sumOf(later, 'gantry_deployments', { model_id: model.id }), 2);
  });
});

describe('the API while its store is unavailable', () => {
  it('answers 503 JSON with Retry-After, never 500, for /metrics, a read and a key check, and serves again after', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-api-busy-'));
    const sqlite = new SqliteStore(path.join(dir, 'gantry.db'));
    const { store, failing } = failingStore(sqlite);
    await sqlite.createApiKey({ name: 'test', prefix: 'busy', secretHash: hashApiKey('busy-key-0123456789'), role: 'admin' });
    const lines: string[] = [];
    const logger = createLogger('api', { destination: { write: (line: string) => void lines.push(line) } });
    const app = createApp({ store, paths: homePaths(dir), workflows: {} as WorkflowsClient, deployTimeoutSeconds: 60, maxArchiveBytes: 1024, basePython: 'python3', logger });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const get = async (route: string): Promise<{ status: number; retryAfter: string | null; body: any }> => {
      const response = await fetch(`${url}${route}`, { headers: { authorization: 'Api-Key busy-key-0123456789' } });
      return { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.json().catch(() => undefined) };
    };
    try {
      failing.add('listLiveDeployments');
      failing.add('listModels');
      for (const route of ['/metrics', '/v1/models']) {
        const answer = await get(route);
        assert.deepEqual([answer.status, answer.retryAfter, answer.body?.error?.code], [503, '1', 'unavailable'], route);
        assert.match(answer.body.error.message, /the store is unavailable \(SQLITE_BUSY\); retry shortly/);
      }
      failing.add('findApiKeyByHash');
      assert.equal((await get('/v1/models')).status, 503, 'a key that cannot be checked is not called invalid');
      failing.clear();
      assert.equal(lines.filter((line) => line.includes('"msg":"the store is unavailable: SQLITE_BUSY"')).length, 3, 'each refusal is logged for the operator');
      assert.equal((await get('/metrics')).status, 200);
      assert.equal((await get('/v1/models')).status, 200);
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await sqlite.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
