import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_AUTOSCALING } from '../../src/shared/schemas';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { ConflictError } from '../../src/store/store';

describe('SqliteStore', () => {
  let dir: string;
  let store: SqliteStore;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-store-'));
    store = new SqliteStore(path.join(dir, 'gantry.db'));
  });

  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const published = (model_id: string, name?: string) => ({ model_id, name, kind: 'published' as const, labels: {}, autoscaling: DEFAULT_AUTOSCALING });

  it('applies migrations once, however many processes open the file', async () => {
    const second = new SqliteStore(path.join(dir, 'gantry.db'));
    assert.equal(second.schemaVersion(), store.schemaVersion());
    assert.ok(store.schemaVersion() >= 1);
    await second.close();
  });

  it('creates a model with its production environment, once per name', async () => {
    const model = await store.findOrCreateModel('echo');
    assert.equal((await store.findOrCreateModel('echo')).id, model.id);
    assert.deepEqual(
      (await store.listEnvironments(model.id)).map((env) => env.name),
      ['production'],
    );
    assert.equal((await store.getModel('echo'))?.id, model.id);
    assert.equal((await store.getModel(model.id))?.name, 'echo');
  });

  it('names deployments deployment-N, skipping names taken by custom ones, and refuses a taken name', async () => {
    const model = await store.findOrCreateModel('echo');
    assert.equal((await store.createDeployment(published(model.id))).name, 'deployment-1');
    assert.equal((await store.createDeployment(published(model.id, 'deployment-2'))).name, 'deployment-2');
    assert.equal((await store.createDeployment(published(model.id))).name, 'deployment-3');
    await assert.rejects(store.createDeployment(published(model.id, 'deployment-1')), ConflictError);
    const other = await store.findOrCreateModel('other');
    assert.equal((await store.createDeployment(published(other.id))).name, 'deployment-1', 'numbers are per model');
  });

  it('adopts a deployment as current only when the environment has none, writing a route', async () => {
    const model = await store.findOrCreateModel('echo');
    const first = await store.createDeployment(published(model.id));
    const second = await store.createDeployment(published(model.id));
    assert.equal(await store.adoptIfNoCurrentDeployment(model.id, 'production', first.id), true);
    assert.equal(await store.adoptIfNoCurrentDeployment(model.id, 'production', second.id), false);
    assert.equal((await store.getEnvironment(model.id, 'production'))?.current_deployment_id, first.id);
    const route = await store.getRoute(model.id, 'production');
    assert.deepEqual(route?.weights, { [first.id]: 100 });
    assert.equal(route?.generation, 1);
  });

  it('sets a status only from the expected one', async () => {
    const model = await store.findOrCreateModel('echo');
    const deployment = await store.createDeployment(published(model.id));
    assert.equal(await store.setStatusIf(deployment.id, 'ACTIVE', 'UNHEALTHY', 'x'), false);
    assert.equal(await store.setStatusIf(deployment.id, 'BUILDING', 'DEPLOYING', null), true);
    assert.equal((await store.getDeployment(deployment.id))?.status, 'DEPLOYING');
  });

  it('replaces a node report wholesale', async () => {
    const replica = {
      id: 'r1',
      deployment_id: 'd1',
      node_id: 'n1',
      state: 'READY' as const,
      pid: 1,
      port: 2,
      restarts: 0,
      last_exit: null,
      last_error: null,
      revision: 0,
      reload_error: null,
      started_at: 'now',
      ready_at: null,
      updated_at: 'now',
    };
    await store.reportReplicas('n1', [replica, { ...replica, id: 'r2' }]);
    await store.reportReplicas('n2', [{ ...replica, id: 'r3', node_id: 'n2' }]);
    await store.reportReplicas('n1', [{ ...replica, state: 'DRAINING' }]);
    const all = await store.listReplicas();
    assert.deepEqual(all.map((r) => `${r.id}:${r.state}`).sort(), ['r1:DRAINING', 'r3:READY']);
  });

  it('tells watchers about writes made through another connection', async () => {
    const other = new SqliteStore(path.join(dir, 'gantry.db'));
    let notified = 0;
    const unwatch = store.watch(() => notified++);
    await other.findOrCreateModel('from-elsewhere');
    const deadline = Date.now() + 3000;
    while (notified === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    unwatch();
    await other.close();
    assert.ok(notified > 0);
  });

  it('adds usage samples for the same minute together', async () => {
    const minute = '2026-01-01T00:00:00.000Z';
    await store.addUsage([{ deployment_id: 'd1', minute, replica_seconds: 30, requests: 2 }]);
    await store.addUsage([{ deployment_id: 'd1', minute, replica_seconds: 30, requests: 3 }]);
    assert.deepEqual(await store.listUsage({ start: minute, end: '2026-01-02T00:00:00.000Z' }), [{ deployment_id: 'd1', minute, replica_seconds: 60, requests: 5 }]);
  });
});
