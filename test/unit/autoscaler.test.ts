import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Autoscaler, nextReplicas, recommendReplicas, type DemandState } from '../../src/node/autoscaler';
import { DEFAULT_AUTOSCALING, type AutoscalingSettings } from '../../src/shared/schemas';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';

const settings = (overrides: Partial<AutoscalingSettings> = {}): AutoscalingSettings => ({ ...DEFAULT_AUTOSCALING, max_replica: 5, ...overrides });

describe('autoscaler decisions', () => {
  it('recommends in-flight / concurrency_target replicas within [max(min, 1), max]', () => {
    assert.equal(recommendReplicas(settings(), 0), 1);
    assert.equal(recommendReplicas(settings(), 2.2), 3);
    assert.equal(recommendReplicas(settings({ concurrency_target: 4 }), 8), 2);
    assert.equal(recommendReplicas(settings(), 40), 5);
    assert.equal(recommendReplicas(settings({ min_replica: 2 }), 0), 2);
    assert.equal(recommendReplicas(settings({ min_replica: 0 }), 0), 1, 'zero is decided by idleness, not by the average');
  });

  const state = (overrides: Partial<DemandState>): DemandState => ({
    settings: settings({ scale_down_delay: 60 }),
    current: 1,
    averageInFlight: 0,
    recentRecommendations: [],
    idleMs: 0,
    keepAwake: false,
    observedMs: 3_600_000,
    ...overrides,
  });

  it('scales up at once', () => {
    assert.equal(nextReplicas(state({ current: 1 }), 4), 4);
  });

  it('scales down only to the highest recommendation of the last scale_down_delay', () => {
    assert.equal(nextReplicas(state({ current: 4, recentRecommendations: [{ at: 0, replicas: 3 }, { at: 1, replicas: 1 }] }), 1), 3);
    assert.equal(nextReplicas(state({ current: 4, recentRecommendations: [] }), 1), 1, 'a delay of demand below: down');
    assert.equal(nextReplicas(state({ current: 4, observedMs: 10_000 }), 1), 4, 'not before a full delay of watching it');
  });

  it('goes to zero only with min_replica 0, nothing in flight and scale_down_delay without requests, unless kept awake', () => {
    const idle = { settings: settings({ min_replica: 0, scale_down_delay: 60 }), idleMs: 61_000 };
    assert.equal(nextReplicas(state(idle), 1), 0);
    assert.equal(nextReplicas(state({ ...idle, idleMs: 30_000 }), 1), 1);
    assert.equal(nextReplicas(state({ ...idle, averageInFlight: 0.1 }), 1), 1);
    assert.equal(nextReplicas(state({ ...idle, keepAwake: true }), 1), 1);
    assert.equal(nextReplicas(state({ ...idle, settings: settings({ min_replica: 1, scale_down_delay: 60 }) }), 1), 1);
  });
});

describe('Autoscaler on a store', () => {
  it('writes desired replicas from demand and leaves deployments a promotion owns alone', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-autoscaler-'));
    const store = new SqliteStore(path.join(dir, 'gantry.db'));
    try {
      const model = await store.findOrCreateModel('m');
      const busy = await store.createDeployment({ model_id: model.id, kind: 'published', labels: {}, autoscaling: settings({ max_replica: 3 }) });
      const owned = await store.createDeployment({ model_id: model.id, kind: 'published', labels: {}, autoscaling: settings({ max_replica: 3 }) });
      const sleepy = await store.createDeployment({ model_id: model.id, kind: 'published', labels: {}, autoscaling: settings({ min_replica: 0, scale_down_delay: 0 }) });
      for (const d of [busy, owned, sleepy]) await store.updateDeployment(d.id, { status: 'ACTIVE', desired_replicas: 1 });
      await store.createPromotion({
        id: 'p1', model_id: model.id, environment: 'production', candidate_deployment_id: owned.id, previous_deployment_id: null, status: 'RAMPING_UP',
        step: 0, total_steps: 1, percent_traffic_to_new_version: 0, candidate_replicas: 1, previous_replicas: 0, settings: (await store.getEnvironment(model.id, 'production'))!.promotion_settings,
        message: null, actor: 'test', workflow_id: 'w', started_at: new Date().toISOString(),
      });
      let now = Date.now() + 1000;
      const demand = { inFlight: (id: string) => (id === sleepy.id ? 0 : 5), lastRequestAt: (id: string) => (id === sleepy.id ? undefined : now) };
      const autoscaler = new Autoscaler({ store, demand, now: () => now });
      now += 1000;
      await autoscaler.tick();
      assert.equal((await store.getDeployment(busy.id))?.desired_replicas, 3, 'up to max_replica');
      assert.equal((await store.getDeployment(owned.id))?.desired_replicas, 1, 'a promotion owns it');
      const slept = await store.getDeployment(sleepy.id);
      assert.equal(slept?.desired_replicas, 0);
      assert.equal(slept?.status, 'SCALED_TO_ZERO');
    } finally {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
