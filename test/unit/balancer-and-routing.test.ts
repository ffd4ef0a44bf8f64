import { strict as assert } from 'node:assert';
import { pickLeastInFlight } from '../../src/node/gateway/balancer';
import { parseInferencePath, RoutingTable } from '../../src/node/gateway/routing-table';
import { DEFAULT_AUTOSCALING, DEFAULT_PROMOTION_SETTINGS } from '../../src/shared/schemas';
import type { DeploymentRecord, EnvironmentRecord, RouteRecord } from '../../src/store/store';

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
    assert.deepEqual([0, 1, 2, 3].map((turn) => pickLeastInFlight(replicas, turn)?.id), ['a', 'b', 'a', 'b']);
    assert.equal(pickLeastInFlight(replicas, 0, new Set(['a']))?.id, 'b');
    assert.equal(pickLeastInFlight(replicas, 0, new Set(['a', 'b'])), undefined);
  });
});

describe('parseInferencePath', () => {
  it('reads the model from the path or from a model-{id}.localhost Host', () => {
    assert.deepEqual(parseInferencePath('localhost:8081', '/models/m1/production/predict'), { kind: 'environment', modelId: 'm1', environment: 'production' });
    assert.deepEqual(parseInferencePath(undefined, '/models/m1/environments/staging/predict'), { kind: 'environment', modelId: 'm1', environment: 'staging' });
    assert.deepEqual(parseInferencePath(undefined, '/models/m1/deployment/d1/predict/'), { kind: 'deployment', modelId: 'm1', deploymentId: 'd1' });
    assert.deepEqual(parseInferencePath(undefined, '/models/m1/development/predict'), { kind: 'development', modelId: 'm1' });
    assert.deepEqual(parseInferencePath('model-m1.localhost:8081', '/production/predict'), { kind: 'environment', modelId: 'm1', environment: 'production' });
    assert.deepEqual(parseInferencePath('model-m1.localhost', '/deployment/d1/predict'), { kind: 'deployment', modelId: 'm1', deploymentId: 'd1' });
  });

  it('does not match anything else', () => {
    for (const path of ['/', '/models/m1', '/models/m1/production', '/models/m1/production/predict/x', '/v1/models']) {
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
  const table = new RoutingTable(['m1'], [deployment('d1', 'ACTIVE'), deployment('d2', 'BUILDING'), deployment('d3', 'INACTIVE')], environments, routes);

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
