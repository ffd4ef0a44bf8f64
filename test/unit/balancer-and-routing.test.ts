import { strict as assert } from 'node:assert';
import { pickLeastInFlight } from '../../src/node/gateway/balancer';
import { parseInferencePath, RoutingTable, type RequestAddress } from '../../src/node/gateway/routing-table';
import { DEFAULT_AUTOSCALING, DEFAULT_PROMOTION_SETTINGS } from '../../src/shared/schemas';
import type { DeploymentRecord, EnvironmentRecord, RouteRecord } from '../../src/store/store';
import { routedDeployment } from '../../src/node/routing-snapshot';

/** A routing table built as the node feeds it: from store records turned into a routing snapshot. */
function tableOf(modelIds: string[], deployments: DeploymentRecord[], environments: EnvironmentRecord[], routes: RouteRecord[]): RoutingTable {
  return new RoutingTable({ modelIds, deployments: deployments.map(routedDeployment), environments, routes, keyHashes: [] });
}

describe('pickLeastInFlight', () => {
  it('picks the replica with the fewest requests in flight', () => {
    const replicas = [
      { id: 'a', inFlight: 3 },
      { id: 'b', inFlight: 1 },
      { id: 'c', inFlight: 2 },
    ];
    assert.equal(pickLeastInFlight(replicas, 0)?.id, 'b');
  });

  it('shares ties round-robin and skips excluded replicas', () => {
    const replicas = [
      { id: 'a', inFlight: 0 },
      { id: 'b', inFlight: 0 },
    ];
    assert.deepEqual(
      [0, 1, 2, 3].map((turn) => pickLeastInFlight(replicas, turn)?.id),
      ['a', 'b', 'a', 'b'],
    );
    assert.equal(pickLeastInFlight(replicas, 0, new Set(['a']))?.id, 'b');
    assert.equal(pickLeastInFlight(replicas, 0, new Set(['a', 'b'])), undefined);
  });
});

describe('parseInferencePath', () => {
  const predict = (address: RequestAddress) => ({ action: 'predict', address });

  it('reads the model from the path or from a model-{id}.localhost Host', () => {
    assert.deepEqual(parseInferencePath('localhost:8081', '/models/m1/production/predict'), predict({ kind: 'environment', modelId: 'm1', environment: 'production' }));
    assert.deepEqual(parseInferencePath(undefined, '/models/m1/environments/staging/predict'), predict({ kind: 'environment', modelId: 'm1', environment: 'staging' }));
    assert.deepEqual(parseInferencePath(undefined, '/models/m1/deployment/d1/predict/'), predict({ kind: 'deployment', modelId: 'm1', deploymentId: 'd1' }));
    assert.deepEqual(parseInferencePath(undefined, '/models/m1/development/predict'), predict({ kind: 'development', modelId: 'm1' }));
    assert.deepEqual(parseInferencePath('model-m1.localhost:8081', '/production/predict'), predict({ kind: 'environment', modelId: 'm1', environment: 'production' }));
    assert.deepEqual(parseInferencePath('model-m1.localhost', '/deployment/d1/predict'), predict({ kind: 'deployment', modelId: 'm1', deploymentId: 'd1' }));
  });

  it('reads wake on every address, by path or Host', () => {
    assert.deepEqual(parseInferencePath(undefined, '/models/m1/production/wake'), { action: 'wake', address: { kind: 'environment', modelId: 'm1', environment: 'production' } });
    assert.deepEqual(parseInferencePath(undefined, '/models/m1/environments/st%20g/wake'), {
      action: 'wake',
      address: { kind: 'environment', modelId: 'm1', environment: 'st g' },
    });
    assert.deepEqual(parseInferencePath(undefined, '/models/m1/deployment/d1/wake'), { action: 'wake', address: { kind: 'deployment', modelId: 'm1', deploymentId: 'd1' } });
    assert.deepEqual(parseInferencePath('model-m1.localhost:8081', '/development/wake/'), { action: 'wake', address: { kind: 'development', modelId: 'm1' } });
  });

  it('passes the async routes on to the API at their /models/{id}/… path, whatever the Host', () => {
    const api = (apiPath: string) => ({ action: 'api', apiPath });
    assert.deepEqual(parseInferencePath(undefined, '/models/m1/production/async_predict'), api('/models/m1/production/async_predict'));
    assert.deepEqual(parseInferencePath(undefined, '/models/m1/environments/st%20g/async_predict'), api('/models/m1/environments/st%20g/async_predict'));
    assert.deepEqual(parseInferencePath(undefined, '/models/m1/deployment/d1/async_queue_status'), api('/models/m1/deployment/d1/async_queue_status'));
    assert.deepEqual(parseInferencePath(undefined, '/models/m1/async_request/r1'), api('/models/m1/async_request/r1'));
    assert.deepEqual(parseInferencePath('model-m1.localhost', '/development/async_predict'), api('/models/m1/development/async_predict'));
    assert.deepEqual(parseInferencePath('model-m1.localhost:8081', '/async_request/r1/'), api('/models/m1/async_request/r1'));
    assert.deepEqual(parseInferencePath('model-m1.localhost:8081', '/production/async_queue_status'), api('/models/m1/production/async_queue_status'));
  });

  it('does not match anything else', () => {
    for (const path of [
      '/models/%zz/production/predict',
      '/models/m1/environments/%E0%A4%A/predict',
      '/models/m1/deployment/%/wake',
      '/',
      '/models/m1',
      '/models/m1/production',
      '/models/m1/production/predict/x',
      '/models/m1/production/sleep',
      '/models/m1/staging/predict',
      '/models/m1/async_request',
      '/models/m1/async_request/r1/x',
      '/models/m1/deployment/predict',
      '/v1/models',
      '/v1/async_requests/r1',
    ]) {
      assert.equal(parseInferencePath('localhost', path), undefined, path);
    }
  });
});

describe('RoutingTable.resolve', () => {
  const at = '2026-01-01T00:00:00.000Z';
  const deployment = (id: string, status: DeploymentRecord['status']): DeploymentRecord => ({
    id,
    model_id: 'm1',
    name: `name-${id}`,
    kind: 'published',
    status,
    status_message: null,
    labels: {},
    autoscaling: DEFAULT_AUTOSCALING,
    desired_replicas: 1,
    config: null,
    env_key: null,
    revision: 0,
    watch_heartbeat_at: null,
    created_at: at,
    updated_at: at,
    deleted_at: null,
  });
  const environments: EnvironmentRecord[] = [
    { model_id: 'm1', name: 'production', current_deployment_id: 'd1', promotion_settings: DEFAULT_PROMOTION_SETTINGS, created_at: at, updated_at: at },
    { model_id: 'm1', name: 'staging', current_deployment_id: null, promotion_settings: DEFAULT_PROMOTION_SETTINGS, created_at: at, updated_at: at },
  ];
  const routes: RouteRecord[] = [{ model_id: 'm1', environment: 'production', weights: { d1: 100 }, generation: 3, updated_at: at }];
  const table = tableOf(['m1'], [deployment('d1', 'ACTIVE'), deployment('d2', 'BUILDING'), deployment('d3', 'INACTIVE')], environments, routes);

  it('sends an environment to its route', () => {
    const resolved = table.resolve({ kind: 'environment', modelId: 'm1', environment: 'production' });
    assert.ok('deployment' in resolved && resolved.deployment.id === 'd1');
    assert.deepEqual(table.appliedGenerations(), { 'm1/production': 3 });
  });

  it('answers 404 for unknown models, environments and deployments, and empty environments', () => {
    const cases = [
      { kind: 'environment', modelId: 'nope', environment: 'production' },
      { kind: 'environment', modelId: 'm1', environment: 'nope' },
      { kind: 'environment', modelId: 'm1', environment: 'staging' },
      { kind: 'deployment', modelId: 'm1', deploymentId: 'nope' },
      { kind: 'development', modelId: 'm1' },
    ] as const;
    for (const address of cases) {
      const resolved = table.resolve(address);
      assert.ok('error' in resolved && resolved.error.status === 404, JSON.stringify(address));
    }
  });

  it('answers 503 for a deployment still building and 404 for a deactivated one', () => {
    const building = table.resolve({ kind: 'deployment', modelId: 'm1', deploymentId: 'd2' });
    assert.ok('error' in building && building.error.status === 503 && /still building/.test(building.error.message));
    const inactive = table.resolve({ kind: 'deployment', modelId: 'm1', deploymentId: 'd3' });
    assert.ok('error' in inactive && inactive.error.status === 404 && /deactivated/.test(inactive.error.message));
  });
});

describe('RoutingTable.wakeTargets', () => {
  const at = '2026-01-01T00:00:00.000Z';
  const deployment = (id: string, status: DeploymentRecord['status'], kind: DeploymentRecord['kind'] = 'published'): DeploymentRecord => ({
    id,
    model_id: 'm1',
    name: `name-${id}`,
    kind,
    status,
    status_message: null,
    labels: {},
    autoscaling: DEFAULT_AUTOSCALING,
    desired_replicas: 0,
    config: null,
    env_key: null,
    revision: 0,
    watch_heartbeat_at: null,
    created_at: at,
    updated_at: at,
    deleted_at: null,
  });
  const environment = (name: string, current: string | null): EnvironmentRecord => ({
    model_id: 'm1',
    name,
    current_deployment_id: current,
    promotion_settings: DEFAULT_PROMOTION_SETTINGS,
    created_at: at,
    updated_at: at,
  });
  const route = (environment: string, weights: Record<string, number>): RouteRecord => ({ model_id: 'm1', environment, weights, generation: 1, updated_at: at });
  const table = tableOf(
    ['m1'],
    [
      deployment('old', 'SCALED_TO_ZERO'),
      deployment('new', 'SCALED_TO_ZERO'),
      deployment('gone', 'INACTIVE'),
      deployment('built', 'BUILD_FAILED'),
      deployment('dev', 'ACTIVE', 'development'),
    ],
    [environment('production', 'old'), environment('staging', 'gone'), environment('broken', 'built'), environment('empty', null)],
    [route('production', { old: 60, new: 40, gone: 0 }), route('staging', { gone: 100 }), route('broken', { built: 100 })],
  );
  const ids = (result: ReturnType<RoutingTable['wakeTargets']>): string[] | string =>
    'deployments' in result ? result.deployments.map((d) => d.id) : `${result.error.status} ${result.error.code}`;

  it("wakes an environment's current deployment and every deployment its route gives weight, once each", () => {
    assert.deepEqual(ids(table.wakeTargets({ kind: 'environment', modelId: 'm1', environment: 'production' })), ['old', 'new']);
    assert.deepEqual(ids(table.wakeTargets({ kind: 'deployment', modelId: 'm1', deploymentId: 'new' })), ['new']);
    assert.deepEqual(ids(table.wakeTargets({ kind: 'development', modelId: 'm1' })), ['dev']);
  });

  it('answers as predict does for what cannot be woken', () => {
    assert.equal(ids(table.wakeTargets({ kind: 'environment', modelId: 'nope', environment: 'production' })), '404 not_found');
    assert.equal(ids(table.wakeTargets({ kind: 'environment', modelId: 'm1', environment: 'nope' })), '404 not_found');
    assert.equal(ids(table.wakeTargets({ kind: 'environment', modelId: 'm1', environment: 'empty' })), '404 not_found');
    assert.equal(ids(table.wakeTargets({ kind: 'environment', modelId: 'm1', environment: 'staging' })), '404 deployment_inactive');
    assert.equal(ids(table.wakeTargets({ kind: 'deployment', modelId: 'm1', deploymentId: 'gone' })), '404 deployment_inactive');
    assert.equal(ids(table.wakeTargets({ kind: 'environment', modelId: 'm1', environment: 'broken' })), '503 unavailable');
    assert.equal(ids(table.wakeTargets({ kind: 'deployment', modelId: 'm1', deploymentId: 'nope' })), '404 not_found');
  });

  it('leaves the weighted choice of predict where it was', () => {
    const build = () =>
      tableOf(['m1'], [deployment('old', 'ACTIVE'), deployment('new', 'ACTIVE')], [environment('production', 'old')], [route('production', { old: 50, new: 50 })]);
    const picks = (t: RoutingTable) =>
      [0, 1, 2].map(() => {
        const resolved = t.resolve({ kind: 'environment', modelId: 'm1', environment: 'production' });
        return 'deployment' in resolved ? resolved.deployment.id : '-';
      });
    const woken = build();
    woken.wakeTargets({ kind: 'environment', modelId: 'm1', environment: 'production' });
    assert.deepEqual(picks(woken), picks(build()));
    assert.deepEqual(picks(build()), ['new', 'old', 'new']);
  });
});
