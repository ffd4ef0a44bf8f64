/**
 * The API boundary: every bad input gets a clear 4xx JSON error and changes nothing. Runs the
 * real Express app over real HTTP on a real SQLite store; workflow starts are recorded.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createPromotionActivities } from '../../src/activities/promotions';
import { createApp } from '../../src/api/app';
import { hashApiKey } from '../../src/auth/key-hash';
import { packModelDirectory } from '../../src/cli/package-archive';
import { homePaths } from '../../src/home';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import type { WorkflowsClient } from '../../src/temporal/workflows-client';

const KEY = 'test-key-0123456789';

describe('API boundary', () => {
  let dir: string;
  let store: SqliteStore;
  let server: Server;
  let url: string;
  let started: string[];
  let temporalDown: boolean;
  let archive: string;

  before(async () => {
    archive = (await packModelDirectory(path.join(PROJECT_ROOT, 'examples', 'echo'))).file;
  });

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-api-'));
    store = new SqliteStore(path.join(dir, 'gantry.db'));
    await store.createApiKey({ name: 'tester', prefix: 'test-key', secretHash: hashApiKey(KEY), role: 'admin' });
    started = [];
    temporalDown = false;
    const workflows: WorkflowsClient = {
      async startDeploy(_model, deployment) {
        if (temporalDown) throw new Error('connect ECONNREFUSED 127.0.0.1:7233');
        started.push(deployment.id);
      },
      async startDevelopmentUpdate(_model, deployment, input) {
        started.push(`development:${deployment.id}:${input.revision}`);
        return { result: async () => ({ deployment_id: deployment.id, revision: input.revision, status: 'UPDATED' as const }) };
      },
      async startPromotion(model, candidate, input) {
        started.push(`promotion:${candidate.id}`);
        // What the worker does first: the workflow records its promotion (or refuses it there).
        await createPromotionActivities({ store, paths: homePaths(dir), basePython: 'python3' }).beginPromotion({
          promotionId: input.promotionId,
          record: {
            id: input.promotionId,
            model_id: model.id,
            environment: input.environment,
            candidate_deployment_id: candidate.id,
            settings: input.settings,
            actor: input.actor,
            workflow_id: `promotion:${model.id}:${input.environment}`,
            started_at: input.startedAt!,
          },
        });
      },
      async actOnPromotion() {
        throw new Error('no promotion runs in these tests');
      },
      async signalPromotion() {
        throw new Error('no promotion runs in these tests');
      },
      async promotionStatus() {
        return undefined;
      },
      async describe() {
        return undefined;
      },
      async startInputOf() {
        return undefined;
      },
    };
    const app = createApp({ store, paths: homePaths(dir), workflows, deployTimeoutSeconds: 60, maxArchiveBytes: 64 * 1024, basePython: 'python3' });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    await new Promise((resolve) => server.close(resolve));
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  after(() => fs.rmSync(path.dirname(archive), { recursive: true, force: true }));

  async function push(options: unknown, file: Blob | undefined = undefined, key = KEY) {
    const form = new FormData();
    if (options !== undefined) form.append('options', typeof options === 'string' ? options : JSON.stringify(options));
    form.append('archive', file ?? (await fs.openAsBlob(archive)), 'package.tar.gz');
    const response = await fetch(`${url}/v1/deployments`, { method: 'POST', headers: { authorization: `Api-Key ${key}` }, body: form });
    return { status: response.status, body: (await response.json()) as any };
  }

  async function nothingChanged(): Promise<void> {
    assert.deepEqual(await store.listModels(), []);
    assert.deepEqual(started, []);
    assert.deepEqual(fs.existsSync(path.join(dir, 'archives')) ? fs.readdirSync(path.join(dir, 'archives')) : [], []);
    assert.deepEqual(fs.existsSync(path.join(dir, 'tmp')) ? fs.readdirSync(path.join(dir, 'tmp')) : [], []);
  }

  it('creates the model and deployment-1 and starts its deploy workflow', async () => {
    const answer = await push({ model_name: 'echo', labels: { team: 'ml' } });
    assert.equal(answer.status, 201);
    assert.equal(answer.body.name, 'deployment-1');
    assert.equal(answer.body.status, 'BUILDING');
    assert.deepEqual(answer.body.labels, { team: 'ml' });
    assert.deepEqual(started, [answer.body.id]);
    assert.ok(fs.existsSync(path.join(dir, 'archives', `${answer.body.id}.tar.gz`)));
    const audit = await store.listAudit(answer.body.model_id);
    assert.equal(audit[0]?.action, 'PUSH');
    assert.equal(audit[0]?.actor, 'tester');
  });

  it('records where each audited action came from: the CLI, the dashboard, or any other client', async () => {
    const model = await store.findOrCreateModel('echo');
    const create = (name: string, client?: string) =>
      fetch(`${url}/v1/models/echo/environments`, {
        method: 'POST',
        headers: { authorization: `Api-Key ${KEY}`, 'content-type': 'application/json', ...(client ? { 'x-gantry-client': client } : {}) },
        body: JSON.stringify({ name }),
      });
    assert.equal((await create('from-cli', 'cli')).status, 201);
    assert.equal((await create('from-dashboard', 'dashboard')).status, 201);
    assert.equal((await create('from-curl')).status, 201);
    assert.equal((await create('from-anything', 'something-else')).status, 201);
    await store.appendAudit({ model_id: model.id, actor: 'gantry (repair)', action: 'REPAIRED', target: null, details: {} });
    await store.appendAudit({ model_id: model.id, actor: 'temporal (signal)', action: 'PAUSE', target: null, details: {} });
    const sources = Object.fromEntries((await store.listAudit(model.id)).map((entry) => [entry.target ?? entry.action, entry.source]));
    assert.deepEqual(sources, { 'from-cli': 'cli', 'from-dashboard': 'dashboard', 'from-curl': 'api', 'from-anything': 'api', REPAIRED: 'repair', PAUSE: 'temporal' });
  });

  it('answers 401 without a valid key', async () => {
    assert.equal((await push({ model_name: 'echo' }, undefined, 'wrong-key-wrong-key')).status, 401);
    const none = await fetch(`${url}/v1/models`);
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as any).error.code, 'unauthorized');
    await nothingChanged();
  });

  it('answers 422 naming the field for invalid options, 400 for unparseable ones', async () => {
    const invalid = await push({ model_name: 'echo', labels: { 'bad key': 'x' } });
    assert.equal(invalid.status, 422);
    assert.match(invalid.body.error.message, /labels/);
    assert.ok(Array.isArray(invalid.body.error.details));
    assert.equal((await push({ model_name: 'echo', surprise: 1 })).status, 422);
    assert.equal((await push({ model_name: 'echo', deployment_name: 'production' })).status, 422);
    assert.equal((await push('{not json')).status, 400);
    assert.equal((await push(undefined)).status, 400);
    await nothingChanged();
  });

  it('answers 400 for an archive that is not gzip and for a request that is not multipart', async () => {
    assert.equal((await push({ model_name: 'echo' }, new Blob(['plain text']))).status, 400);
    const json = await fetch(`${url}/v1/deployments`, {
      method: 'POST',
      headers: { authorization: `Api-Key ${KEY}`, 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(json.status, 400);
    await nothingChanged();
  });

  it('answers 413 for an archive over the limit', async () => {
    const big = new Uint8Array(100 * 1024);
    big[0] = 0x1f;
    big[1] = 0x8b;
    const answer = await push({ model_name: 'echo' }, new Blob([big]));
    assert.equal(answer.status, 413);
    assert.equal(answer.body.error.code, 'payload_too_large');
    await nothingChanged();
  });

  it('answers 413 for a JSON body over the limit and 400 for broken JSON', async () => {
    const first = await push({ model_name: 'echo' });
    const route = `${url}/v1/models/echo/deployments/${first.body.id}/autoscaling_settings`;
    const huge = await fetch(route, {
      method: 'PATCH',
      headers: { authorization: `Api-Key ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ x: 'y'.repeat(2_000_000) }),
    });
    assert.equal(huge.status, 413);
    const broken = await fetch(route, { method: 'PATCH', headers: { authorization: `Api-Key ${KEY}`, 'content-type': 'application/json' }, body: '{"min_replica":' });
    assert.equal(broken.status, 400);
  });

  it('reads a JSON body sent without a JSON content-type (curl -d) as JSON, and answers 400 for one that is not JSON', async () => {
    const first = await push({ model_name: 'echo' });
    const route = `${url}/v1/models/echo/deployments/${first.body.id}/autoscaling_settings`;
    const form = { authorization: `Api-Key ${KEY}`, 'content-type': 'application/x-www-form-urlencoded' };
    const patched = await fetch(route, { method: 'PATCH', headers: form, body: '{"max_replica":3}' });
    assert.equal(patched.status, 200);
    assert.equal((await store.getDeployment(first.body.id))!.autoscaling.max_replica, 3);
    const notJson = await fetch(route, { method: 'PATCH', headers: form, body: 'max_replica=4' });
    assert.equal(notJson.status, 400);
    assert.match(((await notJson.json()) as { error: { message: string } }).error.message, /not valid JSON/);
    assert.equal((await store.getDeployment(first.body.id))!.autoscaling.max_replica, 3);
    // A value left unquoted by the shell is not echoed back in the error.
    const unquoted = await fetch(`${url}/v1/secrets`, { method: 'POST', headers: form, body: '{"name":"hf_access_token","value":hf_abcdefghijklmnop}' });
    assert.equal(unquoted.status, 400);
    const text = await unquoted.text();
    assert.doesNotMatch(text, /abcdef/);
    assert.match(text, /not valid JSON: Unexpected token 'h'/);
    assert.deepEqual(await store.listSecrets(), []);
  });

  it('answers 409 for a taken deployment name and leaves nothing behind', async () => {
    await push({ model_name: 'echo', deployment_name: 'v1' });
    const again = await push({ model_name: 'echo', deployment_name: 'v1' });
    assert.equal(again.status, 409);
    assert.equal((await store.listDeployments((await store.getModel('echo'))!.id)).length, 1);
    assert.equal(started.length, 1);
    assert.equal(fs.readdirSync(path.join(dir, 'tmp')).length, 0);
  });

  it('answers 503 and keeps nothing when the deploy workflow cannot start', async () => {
    const first = await push({ model_name: 'echo' });
    temporalDown = true;
    const answer = await push({ model_name: 'echo' });
    assert.equal(answer.status, 503);
    assert.match(answer.body.error.message, /Temporal/);
    const deployments = await store.listDeployments(first.body.model_id);
    assert.deepEqual(
      deployments.map((d) => d.id),
      [first.body.id],
    );
    assert.deepEqual(fs.readdirSync(path.join(dir, 'archives')), [`${first.body.id}.tar.gz`]);
  });

  it('resolves deployments by id, name and production, and answers JSON 404s', async () => {
    const first = await push({ model_name: 'echo' });
    const get = async (route: string) => {
      const response = await fetch(`${url}${route}`, { headers: { authorization: `Api-Key ${KEY}` } });
      return { status: response.status, body: (await response.json()) as any };
    };
    assert.equal((await get(`/v1/models/echo/deployments/${first.body.id}`)).body.name, 'deployment-1');
    assert.equal((await get(`/v1/models/${first.body.model_id}/deployments/deployment-1`)).body.id, first.body.id);
    assert.equal((await get('/v1/models/echo/deployments/production')).status, 404, 'not production until deployed');
    await store.adoptIfNoCurrentDeployment(first.body.model_id, 'production', first.body.id);
    assert.equal((await get('/v1/models/echo/deployments/production')).body.id, first.body.id);
    assert.equal((await get('/v1/models/echo/deployments/nope')).status, 404);
    assert.equal((await get('/v1/models/nope')).body.error.code, 'not_found');
    assert.equal((await get('/v1/nothing-here')).status, 404);
    assert.equal((await get(`/v1/models/echo/deployments/${first.body.id}/logs?tail=0`)).status, 422);
  });

  describe('environments and promotions', () => {
    const call = async (method: string, route: string, body?: unknown) => {
      const response = await fetch(`${url}${route}`, {
        method,
        headers: { authorization: `Api-Key ${KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text ? (JSON.parse(text) as any) : undefined };
    };

    it('creates environments, refusing bad names, duplicates and invalid settings with the field named', async () => {
      await push({ model_name: 'echo' });
      assert.equal((await call('POST', '/v1/models/echo/environments', { name: 'Staging' })).status, 422);
      const bad = await call('POST', '/v1/models/echo/environments', { name: 'staging', promotion_settings: { rolling_deploy_config: { max_surge_percent: 0 } } });
      assert.equal(bad.status, 422);
      assert.match(bad.body.error.message, /promotion_settings\.rolling_deploy_config\.max_surge_percent: exactly one/);
      const cleanup = await call('POST', '/v1/models/echo/environments', { name: 'staging', promotion_settings: { promotion_cleanup_strategy: 'DELETE' } });
      assert.equal(cleanup.status, 422);
      assert.match(cleanup.body.error.message, /promotion_cleanup_strategy/);
      const created = await call('POST', '/v1/models/echo/environments', {
        name: 'staging',
        promotion_settings: { rolling_deploy_config: { max_unavailable_percent: 25, max_surge_percent: 0 } },
      });
      assert.equal(created.status, 201);
      assert.deepEqual(created.body.promotion_settings.rolling_deploy_config, { max_surge_percent: 0, max_unavailable_percent: 25, stabilization_time_seconds: 10 });
      assert.equal(created.body.current_deployment, null);
      assert.equal((await call('POST', '/v1/models/echo/environments', { name: 'staging' })).status, 409);
      const list = await call('GET', '/v1/models/echo/environments');
      assert.deepEqual(
        list.body.environments.map((e: { name: string }) => e.name),
        ['production', 'staging'],
      );
    });

    it('patches settings by merging, and refuses a patch that breaks them without changing anything', async () => {
      await push({ model_name: 'echo' });
      const ok = await call('PATCH', '/v1/models/echo/environments/production', { promotion_settings: { rolling_deploy_config: { stabilization_time_seconds: 0 } } });
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.body.promotion_settings.rolling_deploy_config, { max_surge_percent: 25, max_unavailable_percent: 0, stabilization_time_seconds: 0 });
      const bad = await call('PATCH', '/v1/models/echo/environments/production', { promotion_settings: { promotion_timeout_seconds: 1 } });
      assert.equal(bad.status, 422);
      assert.equal((await call('GET', '/v1/models/echo/environments/production')).body.promotion_settings.promotion_timeout_seconds, 600);
      assert.equal((await call('DELETE', '/v1/models/echo/environments/production')).status, 409);
      assert.equal((await call('DELETE', '/v1/models/echo/environments/nope')).status, 404);
    });

    it('refuses promotions that cannot happen, each with its reason', async () => {
      const first = await push({ model_name: 'echo' });
      const second = await push({ model_name: 'echo' });
      const modelId = first.body.model_id;
      assert.equal((await call('POST', '/v1/models/echo/environments/production/promote', {})).status, 422);
      assert.equal((await call('POST', '/v1/models/echo/environments/production/promote', { deployment_id: 'nope' })).status, 404);
      assert.equal((await call('POST', '/v1/models/echo/environments/nope/promote', { deployment_id: first.body.id })).status, 404);
      const building = await call('POST', '/v1/models/echo/environments/production/promote', { deployment_id: second.body.id });
      assert.equal(building.status, 409);
      assert.match(building.body.error.message, /is BUILDING; only ACTIVE or scaled-to-zero/);

      await store.updateDeployment(first.body.id, { status: 'ACTIVE' });
      await store.updateDeployment(second.body.id, { status: 'ACTIVE' });
      await store.adoptIfNoCurrentDeployment(modelId, 'production', first.body.id);
      const current = await call('POST', '/v1/models/echo/environments/production/promote', { deployment_id: 'deployment-1' });
      assert.equal(current.status, 409);
      assert.match(current.body.error.message, /already the current deployment of production/);

      const promotion = await call('POST', '/v1/models/echo/environments/production/promote', { deployment_id: 'deployment-2' });
      assert.equal(promotion.status, 202);
      assert.equal(promotion.body.status, 'RELEASING');
      assert.match(promotion.body.id, /^[a-z0-9]{8}$/);
      assert.ok(started.includes(`promotion:${second.body.id}`));
      const again = await call('POST', '/v1/models/echo/environments/production/promote', { deployment_id: 'deployment-2' });
      assert.equal(again.status, 409);
      assert.match(again.body.error.message, new RegExp(`already in flight: ${promotion.body.id}`));
      assert.equal(again.body.error.details.promotion_id, promotion.body.id);

      await call('POST', '/v1/models/echo/environments', { name: 'staging' });
      const clash = await call('POST', '/v1/models/echo/environments/staging/promote', { deployment_id: 'deployment-2' });
      assert.equal(clash.status, 409, 'a deployment whose replicas another promotion controls');
      const history = await call('GET', '/v1/models/echo/environments/production/promotions');
      assert.deepEqual(
        history.body.promotions.map((p: { id: string }) => p.id),
        [promotion.body.id],
      );
    });

    it('answers 409 for an action with no promotion in flight and 404 for unknown actions', async () => {
      await push({ model_name: 'echo' });
      const pause = await call('POST', '/v1/models/echo/environments/production/pause_promotion');
      assert.equal(pause.status, 409);
      assert.match(pause.body.error.message, /no promotion in flight/);
      assert.equal((await call('POST', '/v1/models/echo/environments/production/explode_promotion')).status, 404);
      assert.equal((await call('GET', '/v1/models/echo/environments/production/promotion')).status, 404);
    });

    it('lists the audit log newest first with who did what', async () => {
      await push({ model_name: 'echo' });
      await call('POST', '/v1/models/echo/environments', { name: 'qa' });
      const audit = await call('GET', '/v1/models/echo/audit_logs');
      assert.deepEqual(
        audit.body.audit_logs.map((e: { action: string }) => e.action),
        ['CREATE_ENVIRONMENT', 'PUSH'],
      );
      assert.ok(audit.body.audit_logs.every((e: { actor: string; at: string }) => e.actor === 'tester' && !Number.isNaN(Date.parse(e.at))));
    });
  });
});
