/**
 * The deployment lifecycle end to end on the real stack: development deployments with live
 * reload, scale to zero and wake-up, autoscaling, names and labels, deactivate and activate,
 * delete and the usage log, and promoting the development deployment.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { eventually } from '../helpers/ports';
import { TestStack } from '../helpers/stack';

const example = (name: string): string => path.join(PROJECT_ROOT, 'examples', name);
const fixture = (name: string): string => path.join(PROJECT_ROOT, 'test', 'fixtures', 'models', name);

interface Deployment {
  id: string;
  model_id: string;
  name: string;
  status: string;
  labels: Record<string, string>;
  replicas: { desired: number; ready: number };
  environments: string[];
}

describe('deployment lifecycle (real stack)', function () {
  this.timeout(600_000);
  let stack: TestStack;

  async function push(dir: string, ...flags: string[]): Promise<Deployment> {
    const result = await stack.cli(['push', dir, '--wait', '--output', 'json', ...flags]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    return JSON.parse(result.stdout);
  }

  async function get(model: string, ref: string): Promise<Deployment> {
    const answer = await stack.api('GET', `/v1/models/${model}/deployments/${ref}`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body;
  }

  before(async () => {
    stack = await TestStack.create({ GANTRY_USAGE_FLUSH_SECONDS: '1' });
    await stack.start();
  });

  after(async () => {
    await stack?.destroy();
  });

  describe('push --watch', () => {
    let dir: string;
    let watch: ChildProcess;
    let output = '';
    let modelId: string;

    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-watch-'));
      fs.cpSync(example('echo'), dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'config.yaml'), 'model_name: watched\nenvironment_variables:\n  GREETING: hello\n');
    });

    after(() => {
      watch?.kill('SIGINT');
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('refuses --watch with --promote, --environment or --deployment-name', async () => {
      for (const flag of [['--promote'], ['--environment', 'staging'], ['--deployment-name', 'x']]) {
        const result = await stack.cli(['push', dir, '--watch', ...flag]);
        assert.equal(result.code, 1);
        assert.match(result.stderr, /--watch updates the development deployment/);
      }
    });

    it('serves a saved change on the development URL within 2 seconds, and keeps the old code when the new one breaks', async () => {
      watch = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'gantry.js'), 'push', dir, '--watch'], {
        env: { ...stack.env, GANTRY_URL: stack.apiUrl, GANTRY_GATEWAY_URL: stack.gatewayUrl, GANTRY_API_KEY: stack.apiKey },
      });
      watch.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      watch.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      await eventually('the watch session to start', async () => (/watching .* for changes/.test(output) ? true : undefined), 120_000);
      modelId = /\/models\/([a-z0-9]+)\/development\/predict/.exec(output)![1]!;
      const route = `/models/${modelId}/development/predict`;
      assert.deepEqual((await stack.predict(route, { v: 1 })).body, { echo: { v: 1 }, greeting: 'hello' });
      const development = await get(modelId, 'development');
      assert.equal(development.name, 'development');
      assert.equal(development.replicas.desired, 1);

      const modelFile = path.join(dir, 'model', 'model.py');
      const original = fs.readFileSync(modelFile, 'utf8');
      fs.writeFileSync(modelFile, original.replace('"echo": model_input', '"echo": model_input, "version": 2'));
      const saved = Date.now();
      await eventually('the new code to answer', async () => ((await stack.predict(route, {})).body.version === 2 ? true : undefined), 10_000, 20);
      const seconds = (Date.now() - saved) / 1000;
      assert.ok(seconds < 2, `served ${seconds} s after the save`);
      await eventually('the reload to be printed', async () => (/revision 1 live-reloaded in [\d.]+ s/.test(output) ? true : undefined));
      const pid = (await stack.api('GET', `/v1/models/${modelId}/deployments/development`)).body;
      assert.equal(pid.status, 'ACTIVE');

      fs.writeFileSync(modelFile, original.replace('def predict(self, model_input):', 'def predict(self, model_input)'));
      await eventually(
        'the failure to be printed',
        async () => (/revision 2 failed to load; the previous code keeps serving:\s+SyntaxError/.test(output) ? true : undefined),
        20_000,
      );
      const still = await stack.predict(route, {});
      assert.equal(still.status, 200);
      assert.equal(still.body.version, 2, 'the previous code keeps serving');

      fs.writeFileSync(modelFile, original.replace('"echo": model_input', '"echo": model_input, "version": 3'));
      await eventually('a good change after a broken one', async () => ((await stack.predict(route, {})).body.version === 3 ? true : undefined), 20_000);
      watch.kill('SIGINT');
      await eventually('the session to end', async () => (/stopped watching/.test(output) ? true : undefined));
    });

    it('serves a change saved while the first build runs', async () => {
      const slow = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-watch-build-'));
      fs.cpSync(fixture('slow-import'), slow, { recursive: true });
      fs.writeFileSync(path.join(slow, 'config.yaml'), 'model_name: watched-during-build\nenvironment_variables:\n  IMPORT_SECONDS: "2"\n');
      let log = '';
      const session = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'gantry.js'), 'push', slow, '--watch'], {
        env: { ...stack.env, GANTRY_URL: stack.apiUrl, GANTRY_GATEWAY_URL: stack.gatewayUrl, GANTRY_API_KEY: stack.apiKey },
      });
      session.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()));
      session.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
      try {
        await eventually('the first push', async () => (/creating the development deployment/.test(log) ? true : undefined), 60_000, 20);
        const building = await stack.api('GET', '/v1/models/watched-during-build/deployments/development');
        assert.equal(building.body.status, 'BUILDING', 'the change is saved while the first build runs');
        const modelFile = path.join(slow, 'model', 'model.py');
        fs.writeFileSync(modelFile, fs.readFileSync(modelFile, 'utf8').replace('"imported_slowly": True', '"imported_slowly": True, "saved": "during the first build"'));
        const modelId = building.body.model_id;
        const served = await eventually(
          'the saved change to be served',
          async () => {
            const answer = await stack.predict(`/models/${modelId}/development/predict`, {});
            return answer.status === 200 && answer.body.saved ? answer.body : undefined;
          },
          120_000,
          250,
        );
        assert.equal(served.saved, 'during the first build');
        await eventually('the reload to be printed', async () => (/revision 1 live-reloaded/.test(log) ? true : undefined));
      } finally {
        session.kill('SIGINT');
        fs.rmSync(slow, { recursive: true, force: true });
      }
    });

    it('refuses to rename the development deployment', async () => {
      const rename = await stack.api('PATCH', `/v1/models/${modelId}/deployments/development`, { name: 'other' });
      assert.equal(rename.status, 409);
    });

    it('promotes the development code as a new published deployment serving production', async () => {
      const result = await stack.cli(['promote', 'watched', 'development', '--follow']);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      const deployments = (await stack.api('GET', `/v1/models/${modelId}/deployments`)).body.deployments as Deployment[];
      const published = deployments.find((d) => d.name === 'deployment-1');
      assert.ok(published, JSON.stringify(deployments.map((d) => d.name)));
      assert.deepEqual(published.environments, ['production']);
      const answer = await stack.predict(`/models/${modelId}/production/predict`, { p: 1 });
      assert.equal(answer.status, 200);
      assert.equal(answer.deploymentId, published.id);
      assert.equal(answer.body.version, 3, 'the development code, published');
    });
  });

  it('scales a min_replica 0 deployment to zero when idle and answers the next request from a woken replica', async () => {
    const deployment = await push(example('echo'), '--model-name', 'sleepy');
    const settings = await stack.api('PATCH', `/v1/models/${deployment.model_id}/deployments/${deployment.id}/autoscaling_settings`, {
      min_replica: 0,
      scale_down_delay: 2,
      autoscaling_window: 10,
    });
    assert.equal(settings.status, 200, JSON.stringify(settings.body));
    await eventually(
      'scaled to zero',
      async () => {
        const now = await get(deployment.model_id, deployment.id);
        return now.status === 'SCALED_TO_ZERO' && now.replicas.ready === 0 && now.replicas.desired === 0 ? true : undefined;
      },
      60_000,
    );
    const started = Date.now();
    const answer = await stack.predict(`/models/${deployment.model_id}/production/predict`, { wake: true });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body.echo, { wake: true });
    assert.ok(Date.now() - started < 30_000);
    await eventually('ACTIVE again', async () => {
      const awake = await get(deployment.model_id, deployment.id);
      return awake.status === 'ACTIVE' && awake.replicas.ready === 1 ? true : undefined;
    });
  });

  it('scales up to max_replica under load above concurrency_target and back down when idle', async () => {
    const deployment = await push(fixture('slow-predict'));
    const route = `/v1/models/${deployment.model_id}/deployments/${deployment.id}/autoscaling_settings`;
    assert.equal((await stack.api('PATCH', route, { min_replica: 1, max_replica: 3, concurrency_target: 1, autoscaling_window: 10, scale_down_delay: 3 })).status, 200);
    let loading = true;
    const loops = Array.from({ length: 4 }, async () => {
      while (loading) {
        const answer = await stack.predict(`/models/${deployment.model_id}/production/predict`, { sleep: 0.3 });
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
      }
    });
    try {
      await eventually(
        'three ready replicas',
        async () => {
          const now = await get(deployment.model_id, deployment.id);
          return now.replicas.desired === 3 && now.replicas.ready === 3 ? true : undefined;
        },
        90_000,
      );
    } finally {
      loading = false;
      await Promise.all(loops);
    }
    await eventually(
      'back to one replica',
      async () => {
        const now = await get(deployment.model_id, deployment.id);
        return now.replicas.desired === 1 && now.replicas.ready === 1 ? true : undefined;
      },
      90_000,
    );
  });

  it('names deployments at push and by PATCH, keeps names unique, and filters by labels', async () => {
    const first = await push(example('echo'), '--model-name', 'labelled', '--deployment-name', 'blue', '--labels', '{"team":"ml","tier":"gold"}');
    const second = await push(example('echo'), '--model-name', 'labelled', '--labels', '{"team":"ml"}');
    assert.equal(first.name, 'blue');
    assert.deepEqual(first.labels, { team: 'ml', tier: 'gold' });
    assert.equal((await stack.api('PATCH', `/v1/models/labelled/deployments/${second.id}`, { name: 'blue' })).status, 409);
    const renamed = await stack.cli(['deployments', 'rename', 'labelled', second.name, 'green']);
    assert.equal(renamed.code, 0, renamed.stderr);
    const relabelled = await stack.api('PATCH', `/v1/models/labelled/deployments/green`, { labels: { team: 'search' } });
    assert.equal(relabelled.status, 200);
    assert.deepEqual(relabelled.body.labels, { team: 'search' });
    assert.equal((await stack.api('PATCH', `/v1/models/labelled/deployments/green`, { labels: { 'bad key': 'x' } })).status, 422);

    const byLabel = async (query: string): Promise<string[]> =>
      ((await stack.api('GET', `/v1/models/labelled/deployments?${query}`)).body.deployments as Deployment[]).map((d) => d.name).sort();
    assert.deepEqual(await byLabel('label=team:ml'), ['blue']);
    assert.deepEqual(await byLabel('label=team:ml&label=tier:gold'), ['blue']);
    assert.deepEqual(await byLabel('label=team:ml&label=tier:silver'), []);
    assert.deepEqual(await byLabel('label=team:search'), ['green']);
    assert.equal((await stack.api('GET', '/v1/models/labelled/deployments?label=nocolon')).status, 422);
    const cli = await stack.cli(['deployments', 'labelled', '--label', 'team=search']);
    assert.match(cli.stdout, /green/);
    assert.doesNotMatch(cli.stdout, /blue/);
  });

  it('deactivates (404 on the deployment and environment paths) and activates (200 again)', async () => {
    const deployment = await push(example('echo'), '--model-name', 'switchy');
    const paths = [`/models/${deployment.model_id}/production/predict`, `/models/${deployment.model_id}/deployment/${deployment.id}/predict`];
    const deactivated = await stack.cli(['deployments', 'deactivate', 'switchy', deployment.name, '--wait']);
    assert.equal(deactivated.code, 0, deactivated.stderr);
    assert.match(deactivated.stdout, /INACTIVE/);
    for (const route of paths) {
      const answer = await stack.predict(route, {});
      assert.equal(answer.status, 404, route);
      assert.match(answer.body.error.message, /is deactivated/);
    }
    const listed = await get(deployment.model_id, deployment.id);
    assert.equal(listed.replicas.ready, 0);
    const activated = await stack.cli(['deployments', 'activate', 'switchy', deployment.name, '--wait']);
    assert.equal(activated.code, 0, activated.stderr);
    for (const route of paths) assert.equal((await stack.predict(route, {})).status, 200, route);
  });

  it("refuses to delete production's current deployment, deletes it once replaced, and keeps it in the usage log", async () => {
    const first = await push(example('echo'), '--model-name', 'doomed');
    for (let i = 0; i < 3; i++) assert.equal((await stack.predict(`/models/${first.model_id}/deployment/${first.id}/predict`, { i })).status, 200);
    const refused = await stack.api('DELETE', `/v1/models/doomed/deployments/${first.id}`);
    assert.equal(refused.status, 409);
    assert.match(refused.body.error.message, /promote another deployment to production first/);

    const second = await push(example('echo'), '--model-name', 'doomed');
    const promoted = await stack.cli(['promote', 'doomed', second.id, '--follow']);
    assert.equal(promoted.code, 0, promoted.stdout + promoted.stderr);
    const deleted = await stack.cli(['deployments', 'delete', 'doomed', first.id]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal((await stack.predict(`/models/${first.model_id}/deployment/${first.id}/predict`, {})).status, 404);
    assert.equal((await stack.api('GET', `/v1/models/doomed/deployments/${first.id}`)).status, 404);
    const listed = (await stack.api('GET', '/v1/models/doomed/deployments')).body.deployments as Deployment[];
    assert.deepEqual(
      listed.map((d) => d.id),
      [second.id],
    );
    await eventually('the build released', async () => (!fs.existsSync(path.join(stack.home, 'builds', first.id)) ? true : undefined));
    assert.ok(fs.readdirSync(path.join(stack.home, 'logs')).includes(`${second.id}.jsonl`));
    await eventually('its log files removed', async () => (fs.readdirSync(path.join(stack.home, 'logs')).some((name) => name.startsWith(first.id)) ? undefined : true));
    await eventually('the removal logged', async () => (stack.logged(new RegExp(`^removed \\d+ log files? of deleted deployment ${first.id}`), 'node') ? true : undefined));

    const usage = await eventually(
      'the usage of the deleted deployment',
      async () => {
        const report = (await stack.api('GET', '/v1/usage')).body;
        const row = report.deployments.find((d: { deployment_id: string }) => d.deployment_id === first.id);
        return row && row.requests >= 3 && row.replica_seconds > 0 ? row : undefined;
      },
      30_000,
    );
    assert.equal(usage.model_name, 'doomed');
    assert.equal(usage.deployment_name, 'deployment-1');
    assert.ok(usage.deleted_at, 'deleted_at is set');
    assert.ok(usage.replica_seconds > 0);
    assert.ok(usage.hours.length >= 1);
    const cli = await stack.cli(['usage']);
    assert.match(cli.stdout, new RegExp(`doomed +deployment-1 +${first.id}`));
    assert.equal((await stack.api('GET', '/v1/usage?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z')).status, 422);
  });
});
