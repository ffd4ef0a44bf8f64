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
    assert.equal(
      nextReplicas(
        state({
          current: 4,
          recentRecommendations: [
            { at: 0, replicas: 3 },
            { at: 1, replicas: 1 },
          ],
        }),
        1,
      ),
      3,
    );
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
        id: 'p1',
        model_id: model.id,
        environment: 'production',
        candidate_deployment_id: owned.id,
        previous_deployment_id: null,
        status: 'RAMPING_UP',
        step: 0,
        total_steps: 1,
        percent_traffic_to_new_version: 0,
        candidate_replicas: 1,
        previous_replicas: 0,
        settings: (await store.getEnvironment(model.id, 'production'))!.promotion_settings,
        message: null,
        actor: 'test',
        workflow_id: 'w',
        started_at: new Date().toISOString(),
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
  it('counts queued async requests as demand and activity: up with the queue, awake while it lasts, to zero after the delay once empty', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-autoscaler-'));
    const store = new SqliteStore(path.join(dir, 'gantry.db'));
    try {
      const model = await store.findOrCreateModel('m');
      const queue = await store.createDeployment({
        model_id: model.id,
        kind: 'published',
        labels: {},
        autoscaling: settings({ min_replica: 0, max_replica: 4, concurrency_target: 2, autoscaling_window: 10, scale_down_delay: 10 }),
      });
      await store.updateDeployment(queue.id, { status: 'ACTIVE', desired_replicas: 1 });
      let now = Date.now() + 60_000;
      const demand = { inFlight: () => 0, lastRequestAt: () => undefined };
      const autoscaler = new Autoscaler({ store, demand, now: () => now });
      const enqueue = (id: string, status: 'QUEUED' | 'IN_PROGRESS' = 'QUEUED') =>
        store
          .createAsyncRequest({
            id,
            model_id: model.id,
            environment: null,
            deployment_id: queue.id,
            webhook_endpoint: null,
            webhook_status: 'NO_WEBHOOK_PROVIDED',
            priority: 0,
            max_time_in_queue_seconds: 600,
            retry_config: { max_attempts: 3, initial_delay_ms: 1000, max_delay_ms: 5000 },
            input: '{}',
            workflow_id: `async:${id}`,
            created_at: new Date(now).toISOString(),
            expires_at: new Date(now + 600_000).toISOString(),
          })
          .then(() => (status === 'IN_PROGRESS' ? store.dispatchAsyncRequests(queue.id, 100) : undefined));
      for (let i = 0; i < 5; i++) await enqueue(`q${i}`);
      await autoscaler.tick();
      assert.equal((await store.getDeployment(queue.id))?.desired_replicas, 3, '5 queued / concurrency_target 2 → 3 replicas');
      // Long past scale_down_delay with no gateway traffic: the queue alone keeps it up.
      for (let t = 0; t < 30; t++) {
        now += 1000;
        await autoscaler.tick();
      }
      assert.equal((await store.getDeployment(queue.id))?.desired_replicas, 3, 'a queue that lasts keeps the deployment up');
      // In progress requests are the gateway's in-flight demand, not counted again from the store.
      await store.dispatchAsyncRequests(queue.id, 100);
      assert.deepEqual(await store.countAsyncRequests(), [{ deployment_id: queue.id, queued: 0, in_progress: 5 }]);
      for (const id of ['q0', 'q1', 'q2', 'q3', 'q4']) await store.transitionAsyncRequest(id, ['IN_PROGRESS'], { status: 'SUCCEEDED' });
      now += 5000;
      await autoscaler.tick();
      assert.equal((await store.getDeployment(queue.id))?.desired_replicas, 3, 'not to zero before scale_down_delay since the queue emptied');
      for (let t = 0; t < 12; t++) {
        now += 1000;
        await autoscaler.tick();
      }
      const slept = await store.getDeployment(queue.id);
      assert.equal(slept?.desired_replicas, 0, 'to zero once the queue stayed empty for scale_down_delay');
      assert.equal(slept?.status, 'SCALED_TO_ZERO');
    } finally {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
